"""One validation pass that bounds depth, aliases and estimated cost (QUERY_TOO_COMPLEX)."""

from dataclasses import dataclass

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

from db.services.validation import MAX_PAGE

# Lists without a `first` argument (a patch's approvals, comments, audit trail) count as this many items.
UNBOUNDED_LIST_ESTIMATE = 10
LIST_FIELDS = {"approvals", "comments", "auditTrail", "shapValues", "edges", "items", "applied", "skipped", "drift"}
# `__schema`/`__type` subtrees have their own depth allowance: GraphiQL's and graphql-core's standard
# introspection queries are 15 levels deep (nested `ofType`), deeper than any data query needs.
INTROSPECTION_MAX_DEPTH = 20
INTROSPECTION_FIELDS = {"__schema", "__type"}


@dataclass(frozen=True)
class _Measure:
    """A selection set measured once: levels below and including it, aliases in it, cost at multiplier 1."""

    height: int = 0
    aliases: int = 0
    cost: int = 0
    introspection_height: int = 0


def complexity_rule(*, max_depth: int, max_aliases: int, max_cost: int) -> type[ValidationRule]:
    class Complexity(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._fragment_sets = {
                definition.name.value: definition.selection_set for definition in context.document.definitions if isinstance(definition, FragmentDefinitionNode)
            }
            # Each fragment is measured once per document, however often it is spread: walking every spread
            # again made `fragment A { ...B ...B } fragment B { ...C ...C } ...` cost 2^n steps in the event loop.
            self._fragment_measures: dict[str, _Measure] = {}
            self._measuring: set[str] = set()

        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: object) -> None:
            measure = self._measure(node.selection_set)
            problems = []
            if measure.height > max_depth:
                problems.append(f"depth {measure.height} exceeds {max_depth}")
            introspection_limit = max(max_depth, INTROSPECTION_MAX_DEPTH)
            if measure.introspection_height > introspection_limit:
                problems.append(f"introspection depth {measure.introspection_height} exceeds {introspection_limit}")
            if measure.aliases > max_aliases:
                problems.append(f"{measure.aliases} aliases exceed {max_aliases}")
            if measure.cost > max_cost:
                problems.append(f"estimated cost {measure.cost} exceeds {max_cost}")
            if problems:
                self.report_error(GraphQLError("Query too complex: " + "; ".join(problems), node, extensions={"code": "QUERY_TOO_COMPLEX"}))

        def _measure(self, selection_set: SelectionSetNode | None) -> _Measure:
            """Cost is linear in the multiplier, so a set's cost at multiplier m is m x its cost at 1."""
            if selection_set is None:
                return _Measure()
            height, aliases, cost, introspection_height = 1, 0, 0, 0
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    child = self._measure(selection.selection_set)
                    if selection.name.value in INTROSPECTION_FIELDS:
                        introspection_height = max(introspection_height, 1 + child.height, child.introspection_height)
                    else:
                        height = max(height, 1 + child.height)
                        introspection_height = max(introspection_height, child.introspection_height)
                    aliases += (selection.alias is not None) + child.aliases
                    cost += 1 + _fan_out(selection) * child.cost
                else:
                    if isinstance(selection, InlineFragmentNode):
                        child = self._measure(selection.selection_set)
                    elif isinstance(selection, FragmentSpreadNode):
                        child = self._fragment(selection.name.value)
                    else:  # pragma: no cover - no other selection kinds exist
                        continue
                    height = max(height, child.height)
                    introspection_height = max(introspection_height, child.introspection_height)
                    aliases += child.aliases
                    cost += child.cost
            return _Measure(height=height, aliases=aliases, cost=cost, introspection_height=introspection_height)

        def _fragment(self, name: str) -> _Measure:
            if name in self._fragment_measures:
                return self._fragment_measures[name]
            if name in self._measuring or name not in self._fragment_sets:
                return _Measure()  # a cycle or an unknown fragment: other validation rules report those
            self._measuring.add(name)
            try:
                measure = self._fragment_measures[name] = self._measure(self._fragment_sets[name])
            finally:
                self._measuring.discard(name)
            return measure

    return Complexity


def _fan_out(field: FieldNode) -> int:
    for argument in field.arguments or ():
        if argument.name.value == "first":
            if isinstance(argument.value, IntValueNode):
                return max(min(int(argument.value.value), MAX_PAGE), 1)
            return MAX_PAGE  # a variable: assume the largest page
    if field.name.value in LIST_FIELDS:
        return 1 if field.name.value in {"edges", "items"} else UNBOUNDED_LIST_ESTIMATE
    if field.name.value in {"pendingPatches", "patches", "auditLog", "pendingQueue"}:
        return 100 if field.name.value == "auditLog" else 50
    return 1
