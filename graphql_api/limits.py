"""ASGI middlewares (request id + log context, a request body size limit) and the bounds on request JSON
and GraphQL variables that HTTP and WebSocket share."""

import json
import re
import time
import uuid
from itertools import accumulate

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID = re.compile(r"^[A-Za-z0-9\-_.]{1,64}$")
access_log = structlog.get_logger("hitl.access")


class RequestContext:
    """Binds a request id (incoming X-Request-ID when sane) to the logs and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, path=scope.get("path"))
        started = time.perf_counter()
        status = {"code": None}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            # A WebSocket's frames go straight out: it may carry thousands of subscription events.
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        finally:
            if scope["type"] == "http" and scope.get("path") not in ("/health", "/ready", "/metrics"):
                access_log.info(
                    "request", method=scope.get("method"), status=status["code"], duration_ms=round((time.perf_counter() - started) * 1000, 2)
                )


class BodySizeLimit:
    """413 for bodies over the limit, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        received = 0
        responded = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not responded:
                await _too_large(send, self.max_bytes)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = b'{"errors":[{"message":"request body too large (limit %d bytes)","extensions":{"code":"BAD_USER_INPUT"}}]}' % limit
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


# --- request JSON and variables -------------------------------------------------------------------------
# The body limit bounds a request's bytes, not what they decode to. Nested deeply enough, JSON made the
# decoder recurse to Python's recursion limit: a plain 500 or a reset connection, and, in `hitl serve`, a
# garbage collection that struck on that stack ran its timing callback (graphql_api.gc_pauses) past the limit
# (RecursionError printed to the log). Nesting is therefore measured before decoding, without recursion.
# A 2 MiB body holds 100k list items, each of which became an SQL bind parameter (on PostgreSQL asyncpg
# refuses more than 32,767; on SQLite the request took 1 s and +77 MiB of RSS). No valid request comes near
# these bounds (API.md and db.services.validation: lists <= 500 items, texts <= 512 KiB).
# The lexer reads a document character by character: a 2 MiB string literal took ~0.7 s of the event loop,
# and strawberry's parser cache then kept the text and its tree (~3 MB each). Large values go in variables.
MAX_QUERY_CHARS = 100_000
MAX_JSON_DEPTH = 64  # a batch, an operation and its variables: at most 2 + MAX_VARIABLES_DEPTH
MAX_VARIABLES_DEPTH = 20  # variables object = 1; the deepest real input (a SHAP value) is 5
MAX_VARIABLE_LIST_ITEMS = 1_000
MAX_VARIABLE_VALUES = 10_000  # every list item, object entry and scalar, in all variables of one operation
MAX_VARIABLE_STRING = 1024 * 1024  # characters
# WebSocket messages bypass BodySizeLimit (uvicorn accepts up to 16 MiB): one 14 MB message of small list items
# decoded to ~80 MB of objects. Messages over HTTP's default body limit are refused before decoding.
MAX_WS_MESSAGE_CHARS = 2 * 1024 * 1024

_NEITHER_QUOTE_NOR_BRACKET = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_nested_deeper_than(limit: int, raw: bytes) -> bool:
    """Whether arrays and objects nest deeper than `limit` in this JSON text (brackets in strings do not count).
    C-level passes only (bytes methods, itertools): no recursion and no Python step per character. A 2.4 MB
    body of 60k small objects took 35 ms (json.loads: 64 ms), 1.2 MB with a bracket in every string 54 ms
    (json.loads: 52 ms). Up to the first character JSON refuses, it reads the text as JSON does, so the
    decoder never recurses deeper than the depth measured here."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # the opening brackets bound the depth
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Quotes and brackets only. Two adjacent quotes enclose nothing: dropping them keeps the others' parity.
    skeleton = unescaped.translate(None, _NEITHER_QUOTE_NOR_BRACKET).replace(b'""', b"")
    outside_strings = b"".join(skeleton.split(b'"')[::2])
    depths = accumulate(map(_BRACKET_STEP.__getitem__, outside_strings))
    return next(filter(limit.__lt__, depths), None) is not None


def decode_json(data: str | bytes) -> object:
    """json.loads of a document nested at most MAX_JSON_DEPTH deep; deeper is malformed (JSONDecodeError,
    which callers answer as such). Whatever does decode has its variables checked (variables_problem) before
    anything recursive walks them."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if json_nested_deeper_than(MAX_JSON_DEPTH, raw):
        raise json.JSONDecodeError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "", 0)
    return json.loads(data)


def query_problem(query: object) -> str | None:
    if isinstance(query, str) and len(query) > MAX_QUERY_CHARS:
        return f"the GraphQL document is longer than {MAX_QUERY_CHARS} characters (send large values as variables)"
    return None


def request_problem(query: object, variables: object, extensions: object) -> tuple[str, str] | None:
    """(code, message) refusing one operation whose document or variables are out of bounds, or None."""
    if problem := query_problem(query):
        return "QUERY_TOO_COMPLEX", problem
    if problem := variables_problem(variables) or variables_problem(extensions):
        return "BAD_USER_INPUT", problem
    return None


# The parser's own limits (the token limit, graphql-core's nesting limit) are complexity limits, not typos:
# 10,000 aliases or 1,000 nested fields are refused as QUERY_TOO_COMPLEX like 31 aliases or 13 levels are.
_PARSER_LIMITS = re.compile(r"^Syntax Error: Document (contains more than \d+ tokens|is nested too deeply)")


def parser_limit_code(message: str, code: str | None) -> str | None:
    """QUERY_TOO_COMPLEX for a parser-limit error that is uncoded or coded as mere bad input, else `code`."""
    if code in (None, "BAD_USER_INPUT") and _PARSER_LIMITS.match(message or ""):
        return "QUERY_TOO_COMPLEX"
    return code


def variables_problem(variables: object) -> str | None:
    """Why these GraphQL variables are refused (BAD_USER_INPUT), or None. Iterative: no recursion on input."""
    if variables is None:
        return None
    stack: list[tuple[object, int]] = [(variables, 1)]
    values = 0
    while stack:
        value, depth = stack.pop()
        values += 1
        if values > MAX_VARIABLE_VALUES:
            return f"variables hold more than {MAX_VARIABLE_VALUES} values"
        if isinstance(value, str):
            if len(value) > MAX_VARIABLE_STRING:
                return f"a variable holds a string longer than {MAX_VARIABLE_STRING} characters"
        elif isinstance(value, (list, dict)):
            if depth > MAX_VARIABLES_DEPTH:
                return f"variables nested deeper than {MAX_VARIABLES_DEPTH} levels"
            if isinstance(value, list) and len(value) > MAX_VARIABLE_LIST_ITEMS:
                return f"a variable holds a list of more than {MAX_VARIABLE_LIST_ITEMS} items"
            if len(value) > MAX_VARIABLE_VALUES:
                return f"variables hold more than {MAX_VARIABLE_VALUES} values"
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return None
