"""The strawberry schema: queries, mutations, subscriptions and the guarding extensions.

The public API lives in this package: resolvers (queries, mutations, subscriptions) stay thin (parse, authorize
with a permission class, call one db.services function, map the result with `mapping`)."""

from collections.abc import Iterator

import strawberry
from graphql import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig

from graphql_api.schema import input_builders
from graphql_api.schema.complexity import complexity_rule
from graphql_api.config import Settings
from graphql_api.errors import bind_operation_name, code_errors
from graphql_api.schema.mutations import Mutation
from graphql_api.schema.queries import Query
from graphql_api.schema.subscriptions import Subscription

MAX_TOKENS = 5_000
PARSED_DOCUMENTS = 512
# Dashboards and scripts send the same few small documents; a larger one is parsed and validated each
# time, so distinct large documents (up to ~2 MB each under MAX_TOKENS) cannot fill 512 cache slots.
CACHEABLE_QUERY_CHARS = 8_192


def _cacheable(context) -> bool:  # noqa: ANN001 - strawberry's ExecutionContext
    return len(context.query or "") <= CACHEABLE_QUERY_CHARS


class SmallDocumentParserCache(ParserCache):
    def on_parse(self) -> Iterator[None]:
        if _cacheable(self.execution_context):
            yield from super().on_parse()
        else:
            yield


class SmallDocumentValidationCache(ValidationCache):
    def on_validate(self) -> Iterator[None]:
        if _cacheable(self.execution_context):
            yield from super().on_validate()
        else:
            yield


class OperationHooks(SchemaExtension):
    """What the service does around every operation, as one strawberry hook: the operation name on the log
    lines, the token limit and the extra validation rules before parsing, coded errors after. Strawberry keeps
    each operation hook suspended for an open subscription's whole life (~0.9 KiB per hook per subscription);
    as five extensions (MaxTokensLimiter, AddValidationRules, DisableIntrospection and two of ours) they
    were five."""

    def __init__(self, *, max_tokens: int, validation_rules: tuple[type[ASTValidationRule], ...]) -> None:
        self.max_tokens, self.validation_rules = max_tokens, validation_rules

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        bind_operation_name(context)
        context.parse_options["max_tokens"] = self.max_tokens
        context.validation_rules = context.validation_rules + self.validation_rules
        yield
        code_errors(context)


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:  # noqa: ANN001
        """Expected errors (coded: bad input, conflicts, refusals) are answers, not incidents; the unexpected
        ones are logged once, with their request id, by graphql_api.errors.code_errors."""


def build_schema(settings: Settings, *, execution_context_class: type | None = None) -> strawberry.Schema:
    """The served schema; the app passes graphql_api.live.shared_execution's executor, which runs each
    subscription event once per distinct operation."""
    rules = (complexity_rule(max_depth=settings.max_query_depth, max_aliases=settings.max_aliases, max_cost=settings.max_query_cost),)
    if not settings.graphql_introspection:
        rules += (NoSchemaIntrospectionCustomRule,)
    extensions = [
        lambda: OperationHooks(max_tokens=MAX_TOKENS, validation_rules=rules),
        # Dashboards and scripts send the same documents again and again: parse and validate each once.
        lambda: SmallDocumentParserCache(maxsize=PARSED_DOCUMENTS),
        lambda: SmallDocumentValidationCache(maxsize=PARSED_DOCUMENTS),
    ]
    built = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(batching_config={"max_operations": settings.max_batch_size}),
        execution_context_class=execution_context_class,
    )
    input_builders.install(getattr(known, "definition", None) for known in built.schema_converter.type_map.values())
    return built


# For `strawberry export-schema graphql_api.schema:schema` and the drift test: the SDL does not depend on settings.
schema = build_schema(Settings(_env_file=None))
