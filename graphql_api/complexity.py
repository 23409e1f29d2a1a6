"""One validation pass that bounds depth, aliases and estimated cost (QUERY_TOO_COMPLEX)."""

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

# Lists without a `first` argument (a patch's approvals, comments, audit trail) count as this many items.
UNBOUNDED_LIST_ESTIMATE = 10
LIST_FIELDS = {"approvals", "comments", "auditTrail", "shapValues", "edges", "items"}
MAX_PAGE = 500


def complexity_rule(*, max_depth: int, max_aliases: int, max_cost: int) -> type[ValidationRule]:
    class Complexity(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: object) -> None:
            fragments = {name: fragment.selection_set for name, fragment in self._fragments().items()}
            stats = {"depth": 0, "aliases": 0, "cost": 0}
            self._walk(node.selection_set, fragments, depth=1, multiplier=1, stats=stats, seen=frozenset())
            problems = []
            if stats["depth"] > max_depth:
                problems.append(f"depth {stats['depth']} exceeds {max_depth}")
            if stats["aliases"] > max_aliases:
                problems.append(f"{stats['aliases']} aliases exceed {max_aliases}")
            if stats["cost"] > max_cost:
                problems.append(f"estimated cost {stats['cost']} exceeds {max_cost}")
            if problems:
                self.report_error(GraphQLError("Query too complex: " + "; ".join(problems), node, extensions={"code": "QUERY_TOO_COMPLEX"}))

        def _fragments(self) -> dict:
            context: ValidationContext = self.context
            return {definition.name.value: definition for definition in context.document.definitions if hasattr(definition, "type_condition")}

        def _walk(self, selection_set: SelectionSetNode | None, fragments: dict, *, depth: int, multiplier: int, stats: dict, seen: frozenset) -> None:
            if selection_set is None:
                return
            stats["depth"] = max(stats["depth"], depth)
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    if selection.alias is not None:
                        stats["aliases"] += 1
                    stats["cost"] += multiplier
                    child = multiplier * _fan_out(selection)
                    self._walk(selection.selection_set, fragments, depth=depth + 1, multiplier=child, stats=stats, seen=seen)
                elif isinstance(selection, InlineFragmentNode):
                    self._walk(selection.selection_set, fragments, depth=depth, multiplier=multiplier, stats=stats, seen=seen)
                elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                    name = selection.name.value
                    self._walk(fragments.get(name), fragments, depth=depth, multiplier=multiplier, stats=stats, seen=seen | {name})

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
