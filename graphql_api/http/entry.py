"""ASGI middlewares that hand requests for the GraphQL path straight to the GraphQL router.

Neither FastAPI's routing nor its dependency solving does anything for /graphql that the router does not do
itself, and they cost:
- over HTTP, ~15% of an approval's server CPU (py-spy, the approvals benchmark);
- on a WebSocket, ~20 suspended middleware and routing coroutines with their closures, kept for the life of
  the connection (hours for a dashboard) and scanned by every full garbage collection.
Each entry sits just inside the middlewares that do act on its kind of request: the WebSocket one inside the
request id only, in front of FastAPI itself (ServiceApp); the HTTP one inside the request id, the body limit,
the 503 mapping and the request metrics. Anything else (another path, another method) goes on to FastAPI
unchanged.
"""

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket


class _GraphQLEntry:
    scope_type: str

    def __init__(self, app: ASGIApp, router, context_getter: Callable[[HTTPConnection], Awaitable[object]], path: str) -> None:  # noqa: ANN001
        self.app, self.router, self.context_getter, self.path = app, router, context_getter, path

    def handles(self, scope: Scope) -> bool:
        return scope["type"] == self.scope_type and _route_path(scope) == self.path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.handles(scope):
            await self.app(scope, receive, send)
            return
        await self.serve(scope, receive, send)

    async def context_for(self, connection: HTTPConnection):  # noqa: ANN201
        context = await self.context_getter(connection)
        context.request = connection  # what strawberry's FastAPI dependency sets
        return context

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class WebSocketEntry(_GraphQLEntry):
    scope_type = "websocket"

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        context = await self.context_for(websocket)
        try:
            await self.router.run(websocket, context=context, root_value=None)
        finally:
            if context.expiry_timer is not None:
                context.expiry_timer.cancel()
            # Said, not left to the weak set: a closed socket can stay reachable for a while (a task still winding down).
            context.services.hub.forget_connection(context.connection)


class HttpEntry(_GraphQLEntry):
    """GET and POST only: other methods get FastAPI's answer (405 with Allow, HEAD)."""

    scope_type = "http"

    def handles(self, scope: Scope) -> bool:
        return super().handles(scope) and scope["method"] in ("GET", "POST")

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        context = await self.context_for(request)
        # The sub-response strawberry's FastAPI route injects: no status and no headers of its own.
        sub_response = Response()
        del sub_response.headers["content-length"]
        sub_response.status_code = None  # type: ignore[assignment]
        context.response = sub_response
        self.router.temporal_response = sub_response  # read by the router's run() before its first await
        response = await self.router.run(request, context=context, root_value=None)
        await response(scope, receive, send)


class ServiceApp(FastAPI):
    """FastAPI behind `front`, an ASGI app create_app builds around FastAPI's own entry: the request id, then
    the WebSocket entry. FastAPI's own layers (its entry, telemetry, body limit and error middleware) do
    nothing for a WebSocket, yet stayed suspended for the connection's life: ~2.5 KiB per dashboard."""

    def __init__(self, **settings: object) -> None:
        super().__init__(**settings)
        self.front: ASGIApp = super().__call__

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        await self.front(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path as routes see it (without the root path a proxy mounts the service under)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path
