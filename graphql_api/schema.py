"""The strawberry schema: queries, mutations, subscriptions and the guarding extensions."""

import strawberry
from strawberry.extensions import AddValidationRules, DisableIntrospection, MaxTokensLimiter, ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig

from graphql_api.complexity import complexity_rule
from graphql_api.config import Settings
from graphql_api.errors import CodedErrors, OperationLogContext
from graphql_api.mutations import Mutation
from graphql_api.shared_execution import SharedEventExecutor
from graphql_api.queries import Query
from graphql_api.subscriptions import Subscription

MAX_TOKENS = 5_000
PARSED_DOCUMENTS = 512


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:  # noqa: ANN001
        """Expected errors (coded: bad input, conflicts, refusals) are answers, not incidents; the unexpected
        ones are logged once, with their request id, by graphql_api.errors.CodedErrors."""


def build_schema(settings: Settings) -> strawberry.Schema:
    rule = complexity_rule(max_depth=settings.max_query_depth, max_aliases=settings.max_aliases, max_cost=settings.max_query_cost)
    extensions = [
        CodedErrors,
        OperationLogContext,
        # Dashboards and scripts send the same documents again and again: parse and validate each once.
        lambda: ParserCache(maxsize=PARSED_DOCUMENTS),
        lambda: ValidationCache(maxsize=PARSED_DOCUMENTS),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules([rule]),
    ]
    if not settings.graphql_introspection:
        extensions.append(DisableIntrospection)
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(batching_config={"max_operations": settings.max_batch_size}),
        execution_context_class=SharedEventExecutor,
    )


# For `strawberry export-schema graphql_api.schema:schema` and the drift test: the SDL does not depend on settings.
schema = build_schema(Settings(_env_file=None))
