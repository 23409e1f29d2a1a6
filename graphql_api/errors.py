"""Coded GraphQL errors (API.md) and masking of everything unexpected.

A database that cannot serve right now (down or restarting, connection lost, no pooled connection free
within HITL_DB_POOL_TIMEOUT_SECONDS, statement timeout) is SERVICE_UNAVAILABLE with extensions.retryable
and extensions.reason, logged once per operation without SQL or traceback; an HTTP request made of one
operation that failed that way as a whole answers 503 with Retry-After (see `unavailable_status`).
"""

import logging
from contextvars import ContextVar

import structlog

from graphql import GraphQLError
from strawberry.types import ExecutionContext

from db.engine import DATABASE_UNAVAILABLE, POOL_EXHAUSTED, STATEMENT_TIMEOUT, unavailable_reason
from db.services.errors import DomainError

log = logging.getLogger("hitl.errors")
INTERNAL = "INTERNAL_SERVER_ERROR"
INTERNAL_MESSAGE = "Internal server error"
UNAVAILABLE = "SERVICE_UNAVAILABLE"
UNAVAILABLE_MESSAGES = {
    DATABASE_UNAVAILABLE: "The database is unavailable; retry shortly",
    POOL_EXHAUSTED: "The service is overloaded (no database connection became free in time); retry shortly",
    STATEMENT_TIMEOUT: "The database did not answer in time; retry shortly",
}
RETRY_AFTER_SECONDS = 1

# Per HTTP request (set by `unavailable_status`): one entry per executed operation, True when that
# operation failed as a whole (no data) with SERVICE_UNAVAILABLE.
_operations: ContextVar[list[bool] | None] = ContextVar("hitl_graphql_operations", default=None)


def coded(error: GraphQLError, request_id: str | None) -> GraphQLError:
    original = error.original_error
    # graphql-core wraps a variable's coercion error (e.g. an unknown enum value in a list) in another
    # GraphQLError: the request is at fault, exactly as when there is no original error at all.
    while isinstance(original, GraphQLError):
        original = original.original_error
    if original is not None and not isinstance(original, DomainError) and (reason := unavailable_reason(original)):
        extensions = {"code": UNAVAILABLE, "reason": reason, "retryable": True, "requestId": request_id}
        message = UNAVAILABLE_MESSAGES[reason]
    elif isinstance(original, DomainError):
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


def code_errors(context: ExecutionContext) -> None:
    """After an operation: every error leaves with extensions.code; SQL, parameters and stack traces never
    leave. A database that could not serve is logged once, and an HTTP request of one such operation is
    answered 503 (unavailable_status)."""
    request_id = getattr(context.context, "request_id", None)
    result = context.result
    if result is not None and getattr(result, "errors", None):
        result.errors = [coded(error, request_id) for error in result.errors]
    if context.pre_execution_errors:
        context.pre_execution_errors = [coded(error, request_id) for error in context.pre_execution_errors]
    errors = (getattr(result, "errors", None) or []) + list(context.pre_execution_errors or [])
    unavailable = [error for error in errors if (error.extensions or {}).get("code") == UNAVAILABLE]
    if unavailable:
        reasons = sorted({error.extensions["reason"] for error in unavailable})
        log.warning(
            "database unavailable (%s) in %s; answered %s", ",".join(reasons), context.operation_name or "operation", UNAVAILABLE,
            extra={"request_id": request_id},
        )
    if (operations := _operations.get()) is not None:
        operations.append(bool(unavailable) and getattr(result, "data", None) is None)


def bind_operation_name(context: ExecutionContext) -> None:
    """The GraphQL operation name goes on the request's log lines (the access log included)."""
    if name := context.operation_name:
        structlog.contextvars.bind_contextvars(operation=name[:100])


class unavailable_status:  # noqa: N801 - an ASGI middleware, named for what it does
    """HTTP 503 + Retry-After for a GraphQL request of one operation that failed as a whole with
    SERVICE_UNAVAILABLE (load balancers and clients retry on 503; the body stays the GraphQL response).
    Batches and partial results keep their status."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or not scope.get("path", "").startswith("/graphql"):
            await self.app(scope, receive, send)
            return
        operations: list[bool] = []
        token = _operations.set(operations)

        async def send_status(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start" and message["status"] == 200 and operations == [True]:
                headers = [*message.get("headers", []), (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
                message = {**message, "status": 503, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            _operations.reset(token)
