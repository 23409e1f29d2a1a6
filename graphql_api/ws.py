"""WebSocket side of /graphql: authentication from connection_init (4401 when refused), closing the socket
when the token expires, and tracking sockets so shutdown can tell clients to go elsewhere."""

import asyncio
import contextlib
import json
import time
import weakref

from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.types.unset import UNSET

from db.services.errors import DomainError
from graphql_api.http_router import HttpGraphQLRouter
from graphql_api.shared_execution import encode_payload


class _TransportWsHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws: a refused connection_init closes with 4401 (API.md), not strawberry's 4403."""

    async def handle_connection_init(self, message) -> None:  # noqa: ANN001
        close = self.websocket.close

        async def close_unauthorized(code: int, reason: str) -> None:
            await close(code=4401 if code == 4403 else code, reason="Unauthorized" if code == 4403 else reason)

        self.websocket.close = close_unauthorized  # type: ignore[method-assign]
        try:
            await super().handle_connection_init(message)
        finally:
            self.websocket.close = close  # type: ignore[method-assign]


class SubscriptionRouter(HttpGraphQLRouter):
    """Authenticates WebSocket clients from connection_init and closes the socket when the token expires."""

    graphql_transport_ws_handler_class = _TransportWsHandler

    def encode_json(self, data: object) -> str:
        """Subscription results shared by many subscribers are encoded once (graphql_api.shared_execution)."""
        if isinstance(data, dict) and data.get("type") in ("next", "data") and set(data.get("payload") or ()) == {"data"}:
            body = encode_payload(data["payload"]["data"], super().encode_json)
            kind = data["type"]
            return f'{{"id":{json.dumps(data["id"])},"type":"{kind}","payload":{{"data":{body}}}}}'
        return super().encode_json(data)

    async def on_ws_connect(self, context):  # noqa: ANN001, ANN201
        services = context.services
        try:
            credential = services.authenticator.from_connection_params(context.connection_params)
            credential.actor.require("read", "subscribing")
        except DomainError as exc:
            raise ConnectionRejectionError({"message": exc.message, "code": exc.code}) from None
        context.credential, context.auth_error = credential, None
        websocket = context.connection
        services.hub.track_connection(websocket)
        if credential.expires_at is not None:
            delay = max(credential.expires_at - time.time(), 0) + services.settings.jwt_leeway_seconds
            socket_ref = weakref.ref(websocket)  # the timer must not keep a closed socket alive until expiry
            asyncio.get_running_loop().call_later(delay, lambda: _close_if_open(socket_ref, 4401, "token expired"))
        return UNSET


def _close_if_open(socket_ref: weakref.ref, code: int, reason: str) -> None:
    websocket = socket_ref()
    if websocket is not None:
        asyncio.ensure_future(_close(websocket, code, reason))


async def _close(websocket, code: int, reason: str) -> None:  # noqa: ANN001
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=reason)
