"""Coded GraphQL errors (API.md) and masking of everything unexpected."""

import logging
from collections.abc import Iterator

import structlog

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from db.services.errors import DomainError

log = logging.getLogger("hitl.errors")
INTERNAL = "INTERNAL_SERVER_ERROR"
INTERNAL_MESSAGE = "Internal server error"


def coded(error: GraphQLError, request_id: str | None) -> GraphQLError:
    original = error.original_error
    if isinstance(original, DomainError):
        extensions = {"code": original.code, **original.extensions}
        message = original.message
    elif original is None:
        # Parse, validation and variable errors: the request itself is at fault.
        extensions = {"code": (error.extensions or {}).get("code", "BAD_USER_INPUT")}
        message = error.message
    else:
        log.error(
            "unexpected error in %s",
            ".".join(str(part) for part in error.path or []) or "operation",
            exc_info=(type(original), original, original.__traceback__),
            extra={"request_id": request_id},
        )
        extensions = {"code": INTERNAL, "requestId": request_id}
        message = INTERNAL_MESSAGE
    return GraphQLError(message, nodes=error.nodes, source=error.source, positions=error.positions, path=error.path, extensions=extensions)


class CodedErrors(SchemaExtension):
    """Every error leaves with extensions.code; SQL, parameters and stack traces never leave."""

    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        request_id = getattr(context.context, "request_id", None)
        result = context.result
        if result is not None and getattr(result, "errors", None):
            result.errors = [coded(error, request_id) for error in result.errors]
        if context.pre_execution_errors:
            context.pre_execution_errors = [coded(error, request_id) for error in context.pre_execution_errors]


class OperationLogContext(SchemaExtension):
    """Binds the GraphQL operation name to the request's log lines (the access log included)."""

    def on_operation(self) -> Iterator[None]:
        name = self.execution_context.operation_name
        if name:
            structlog.contextvars.bind_contextvars(operation=name[:100])
        yield
