"""The one mapping from an exception to what a client is told: the coded GraphQL error of API.md
(`extensions.code`), the HTTP status and the WebSocket close code. Every transport calls `classify`.

- A DomainError (db.services.errors, and RequestRefused below) carries its own code and extensions.
- A database that cannot serve right now (down or restarting, connection lost, no pooled connection free
  within HITL_DB_POOL_TIMEOUT_SECONDS, statement timeout) is SERVICE_UNAVAILABLE with extensions.retryable and
  extensions.reason (HTTP 503 with Retry-After), logged once per operation without SQL or traceback.
- A GraphQL error with nothing behind it (parse, validation, variable coercion) is the request's fault:
  BAD_USER_INPUT, or QUERY_TOO_COMPLEX for the parser's own limits; a code it already has is kept, so
  classifying a coded error again changes nothing.
- A request that is not well-formed GraphQL-over-HTTP (cross-web's HTTPException) keeps its status.
- Anything else is INTERNAL_SERVER_ERROR: logged once with its traceback and request id, its text never shown.
"""

import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass, field

import structlog
from cross_web import HTTPException
from graphql import GraphQLError
from strawberry.types import ExecutionContext

from db.engine import DATABASE_UNAVAILABLE, POOL_EXHAUSTED, STATEMENT_TIMEOUT, exception_chain, unavailable_reason
from db.services.errors import DomainError

log = logging.getLogger("hitl.errors")

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
BAD_USER_INPUT = "BAD_USER_INPUT"
CONFLICT = "CONFLICT"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
UNAVAILABLE = "SERVICE_UNAVAILABLE"
INTERNAL = "INTERNAL_SERVER_ERROR"
INTERNAL_MESSAGE = "Internal server error"
UNAVAILABLE_MESSAGES = {
    DATABASE_UNAVAILABLE: "The database is unavailable; retry shortly",
    POOL_EXHAUSTED: "The service is overloaded (no database connection became free in time); retry shortly",
    STATEMENT_TIMEOUT: "The database did not answer in time; retry shortly",
}
RETRY_AFTER_SECONDS = 1

HTTP_STATUS = {
    UNAUTHENTICATED: 401,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    BAD_USER_INPUT: 400,
    CONFLICT: 409,
    QUERY_TOO_COMPLEX: 400,
    UNAVAILABLE: 503,
    INTERNAL: 500,
}
# The labels of hitl_graphql_errors_total (graphql_api.metrics): bounded sets, anything else is OTHER / unknown.
CODES = tuple(HTTP_STATUS)
OPERATION_TYPES = ("query", "mutation", "subscription")
UNKNOWN_OPERATION = "unknown"  # refused or unparsable before its type was known

# graphql-transport-ws close codes for a refused connection (the graphql-ws library's CloseCode names).
WS_CLOSE_CODE = {UNAUTHENTICATED: 4401, FORBIDDEN: 4403, BAD_USER_INPUT: 4400}
WS_CLOSE_REASON = {4401: "Unauthorized", 4403: "Forbidden", 4400: "Bad request"}

# The parser's own limits (the token limit, graphql-core's nesting limit) are complexity limits, not typos:
# 10,000 aliases or 1,000 nested fields are refused as QUERY_TOO_COMPLEX like 31 aliases or 13 levels are.
_PARSER_LIMITS = re.compile(r"^Syntax Error: Document (contains more than \d+ tokens|is nested too deeply)")


class RequestRefused(DomainError):
    """A request refused by a transport bound before GraphQL sees it (body too large, document too long,
    variables too deep): its code, and the HTTP status when it is not the code's own (413)."""

    def __init__(self, message: str, *, code: str = BAD_USER_INPUT, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


@dataclass(frozen=True)
class Classified:
    """What the client is told about one exception."""

    code: str
    message: str
    extensions: dict = field(default_factory=dict)  # besides `code`
    status: int | None = None  # an HTTP status other than the code's own

    @property
    def http_status(self) -> int:
        return self.status or HTTP_STATUS.get(self.code, 500)

    @property
    def ws_close_code(self) -> int:
        return WS_CLOSE_CODE.get(self.code, 4400 if self.http_status < 500 else 1011)

    @property
    def all_extensions(self) -> dict:
        return {"code": self.code, **self.extensions}

    def formatted(self) -> dict:
        """The error as it appears in a GraphQL response's `errors` list."""
        return {"message": self.message, "extensions": self.all_extensions}

    def rest_body(self) -> dict:
        """The error as the REST aliases answer it."""
        return {"error": {"code": self.code, "message": self.message, **self.extensions}}

    def graphql_error(self, like: GraphQLError | None = None) -> GraphQLError:
        """A GraphQLError with this code at the position (nodes, path) of `like`."""
        if like is None:
            return GraphQLError(self.message, extensions=self.all_extensions)
        return GraphQLError(
            self.message, nodes=like.nodes, source=like.source, positions=like.positions, path=like.path, extensions=self.all_extensions
        )


def classify(exc: BaseException, *, request_id: str | None = None, where: str = "operation") -> Classified:
    """The one mapping (module docstring). `where` names the failing place in the log of an unexpected error."""
    if isinstance(exc, GraphQLError):
        original = exc.original_error
        # graphql-core wraps a variable's coercion error (e.g. an unknown enum value in a list) in another
        # GraphQLError: the request is at fault, exactly as when there is no original error at all.
        while isinstance(original, GraphQLError):
            original = original.original_error
        if original is None:
            extensions = dict(exc.extensions or {})
            code = parser_limit_code(exc.message, extensions.pop("code", None)) or BAD_USER_INPUT
            return Classified(code, exc.message, extensions)
        return classify(original, request_id=request_id, where=".".join(str(part) for part in exc.path or []) or where)
    if isinstance(exc, DomainError):
        return Classified(exc.code, exc.message, dict(exc.extensions), getattr(exc, "http_status", None))
    if reason := unavailable_reason(exc):
        return Classified(UNAVAILABLE, UNAVAILABLE_MESSAGES[reason], {"reason": reason, "retryable": True, "requestId": request_id})
    if isinstance(exc, HTTPException):
        code = getattr(exc, "code", None) or (INTERNAL if exc.status_code >= 500 else NOT_FOUND if exc.status_code == 404 else BAD_USER_INPUT)
        return Classified(code, exc.reason, status=exc.status_code)
    log.error("unexpected error in %s", where, exc_info=(type(exc), exc, exc.__traceback__), extra={"request_id": request_id})
    return Classified(INTERNAL, INTERNAL_MESSAGE, {"requestId": request_id})


def parser_limit_code(message: str, code: str | None) -> str | None:
    """QUERY_TOO_COMPLEX for a parser-limit error that is uncoded or coded as mere bad input, else `code`."""
    if code in (None, BAD_USER_INPUT) and _PARSER_LIMITS.match(message or ""):
        return QUERY_TOO_COMPLEX
    return code


def coded(error: GraphQLError, request_id: str | None = None) -> GraphQLError:
    """The GraphQL error as it leaves: classified, at its own position."""
    return classify(error, request_id=request_id).graphql_error(error)


def coded_formatted(errors: object) -> list[dict]:
    """Formatted error dicts (what strawberry sends over a WebSocket) given their codes, in place; returns those
    that had none (errors strawberry made itself, which no operation hook has seen or counted)."""
    newly_coded = []
    for error in errors if isinstance(errors, list) else [errors]:
        if isinstance(error, dict) and "message" in error:
            extensions = error.get("extensions") or {}
            classified = classify(GraphQLError(str(error["message"]), extensions=extensions))
            if classified.code != extensions.get("code"):
                error["extensions"] = classified.all_extensions
            if extensions.get("code") is None:
                newly_coded.append(error)
    return newly_coded


def _cause_names(error: GraphQLError) -> list[str]:
    """The exception classes behind a database failure, outermost first: what an operator needs to tell a dropped
    session from a refused connection. Class names only: messages may hold SQL or parameters."""
    return [type(cause).__name__ for cause in exception_chain(getattr(error, "original_error", None))]


# --- around every GraphQL operation ----------------------------------------------------------------------
# Per HTTP request (set by http.middleware.UnavailableStatus): one entry per executed operation, True when that
# operation failed as a whole (no data) with SERVICE_UNAVAILABLE.
operations_failed_unavailable: ContextVar[list[bool] | None] = ContextVar("hitl_graphql_operations", default=None)


def code_errors(context: ExecutionContext) -> None:
    """After an operation: every error leaves with extensions.code; SQL, parameters and stack traces never
    leave. Each is counted (hitl_graphql_errors_total). A database that could not serve is logged once, and an
    HTTP request of one such operation is answered 503 (http.middleware.UnavailableStatus)."""
    request_id = getattr(context.context, "request_id", None)
    result = context.result
    raised = list(getattr(result, "errors", None) or [])  # before coding: the exceptions behind them, for the log
    if result is not None and getattr(result, "errors", None):
        result.errors = [coded(error, request_id) for error in result.errors]
    if context.pre_execution_errors:
        context.pre_execution_errors = [coded(error, request_id) for error in context.pre_execution_errors]
    errors = (getattr(result, "errors", None) or []) + list(context.pre_execution_errors or [])
    # A result made of the pre-execution errors (validation) carries them again: count the response's errors.
    # A subscription's errors left long before this hook unwinds, and were counted as they left (its events' in
    # live.shared_execution, the others by live.websocket); its result here is only the last event's again.
    sent = getattr(result, "errors", None) if result is not None else context.pre_execution_errors
    kind = operation_type(context)
    if sent and kind != "subscription" and (services := getattr(context.context, "services", None)) is not None:
        services.metrics.record_graphql_errors(sent, kind)
    unavailable = [error for error in errors if (error.extensions or {}).get("code") == UNAVAILABLE]
    if unavailable:
        reasons = sorted({error.extensions["reason"] for error in unavailable})
        causes = list(dict.fromkeys(name for error in raised for name in _cause_names(error)))
        log.warning(
            "database unavailable (%s) in %s; answered %s", ",".join(reasons), context.operation_name or "operation", UNAVAILABLE,
            extra={"request_id": request_id, "causes": causes},
        )
    if (operations := operations_failed_unavailable.get()) is not None:
        operations.append(bool(unavailable) and getattr(result, "data", None) is None)


def operation_type(context: ExecutionContext) -> str:
    """query, mutation or subscription; unknown when the document did not parse or names no such operation."""
    try:
        return context.operation_type.value
    except Exception:  # noqa: BLE001 - strawberry raises when there is no (matching) operation
        return UNKNOWN_OPERATION


def code_of(error: GraphQLError | dict) -> str | None:
    """The extensions.code an error (a GraphQLError, or one formatted as a dict) already carries."""
    extensions = error.get("extensions") if isinstance(error, dict) else error.extensions
    return (extensions or {}).get("code")


def bind_operation_name(context: ExecutionContext) -> None:
    """The GraphQL operation name goes on the request's log lines (the access log included)."""
    if name := context.operation_name:
        structlog.contextvars.bind_contextvars(operation=name[:100])
