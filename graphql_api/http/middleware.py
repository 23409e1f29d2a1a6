"""ASGI middlewares of the HTTP side: the request id and access log, the request body limit, and the 503 of a
GraphQL request whose one operation found the database unavailable."""

import json
import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphql_api.errors import RETRY_AFTER_SECONDS, RequestRefused, classify, operations_failed_unavailable
from graphql_api.paths import GRAPHQL_PATH, PROBE_PATHS

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
            if scope["type"] == "http" and scope.get("path") not in PROBE_PATHS:
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
    refused = classify(RequestRefused(f"request body too large (limit {limit} bytes)", http_status=413))
    body = json.dumps({"errors": [refused.formatted()]}).encode()
    await send({"type": "http.response.start", "status": refused.http_status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class UnavailableStatus:
    """HTTP 503 + Retry-After for a GraphQL request of one operation that failed as a whole with
    SERVICE_UNAVAILABLE (load balancers and clients retry on 503; the body stays the GraphQL response).
    Batches and partial results keep their status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(GRAPHQL_PATH):
            await self.app(scope, receive, send)
            return
        operations: list[bool] = []
        token = operations_failed_unavailable.set(operations)

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200 and operations == [True]:
                headers = [*message.get("headers", []), (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
                message = {**message, "status": 503, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            operations_failed_unavailable.reset(token)
