"""The WebSocket half of /graphql: authentication from connection_init (the close code graphql_api.errors
gives the refusal: 4401 for a bad or missing token), closing the socket when the token expires, tracking sockets
so shutdown can tell clients to go elsewhere, and the same bounds as over HTTP (graphql_api.request_limits):
oversized or too deeply nested messages are malformed, an operation whose document or variables are out of
bounds or do not parse gets a coded error, and the socket keeps serving.

graphql_api.app puts this mixin in front of the HTTP half (graphql_api.http.graphql_http) to make the router.
"""

import asyncio
import contextlib
import json
import time
import weakref
from collections.abc import AsyncGenerator

from graphql import GraphQLError, parse
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from db.services.errors import DomainError
from graphql_api import request_limits
from graphql_api.errors import UNKNOWN_OPERATION, WS_CLOSE_REASON, RequestRefused, classify, coded_formatted
from graphql_api.live.delivery import current_operation
from graphql_api.live.shared_execution import data_frame, encode_payload, frame_prefix
from graphql_api.schema import MAX_TOKENS


class _TransportWsHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws: a refused connection_init closes with the refusal's own code, not strawberry's 4403."""

    def on_request_accepted(self) -> None:
        super().on_request_accepted()
        # Once cancelled by connection_init, the timer task keeps its CancelledError (traceback, frames, this
        # handler) for as long as the connection is open, which is hours for a dashboard.
        self.connection_init_timeout_task.add_done_callback(self._forget_init_timer)

    def _forget_init_timer(self, task: asyncio.Task) -> None:
        if self.connection_init_timeout_task is task:
            self.connection_init_timeout_task = None

    async def handle_connection_init(self, message) -> None:  # noqa: ANN001
        close = self.websocket.close
        context = self.context

        async def close_refused(code: int, reason: str) -> None:
            # strawberry closes every ConnectionRejectionError with 4403; on_ws_connect noted the refusal's code.
            if code == 4403 and (refusal := getattr(context, "refusal_close_code", None)):
                code, reason = refusal, WS_CLOSE_REASON.get(refusal, reason)
            await close(code=code, reason=reason)

        self.websocket.close = close_refused  # type: ignore[method-assign]
        try:
            await super().handle_connection_init(message)
        finally:
            self.websocket.close = close  # type: ignore[method-assign]

    async def run_operation(self, operation) -> None:  # noqa: ANN001
        current_operation.set(operation)  # the operation's own task: its subscription resolver runs in it
        await super().run_operation(operation)

    async def handle_subscribe(self, message) -> None:  # noqa: ANN001
        problem = _operation_problem(message.get("payload"))
        if problem and self.connection_acknowledged and message.get("id") not in self.operations:
            self.context.services.metrics.record_graphql_errors([problem], UNKNOWN_OPERATION)
            await self.send_message({"id": message["id"], "type": "error", "payload": [problem]})
            return
        await super().handle_subscribe(message)


class _LegacyWsHandler(BaseGraphQLWSHandler):
    async def handle_start(self, message) -> None:  # noqa: ANN001
        problem = _operation_problem(message.get("payload"))
        if problem and self.connection_acknowledged:
            self.context.services.metrics.record_graphql_errors([problem], UNKNOWN_OPERATION)
            await self.send_message({"id": message["id"], "type": "error", "payload": problem})
            return
        await super().handle_start(message)


def _operation_problem(payload: object) -> dict | None:
    """The GraphQL error refusing an operation whose document or variables are out of bounds, or that does not
    parse, or None."""
    if not isinstance(payload, dict):
        return None  # strawberry answers malformed messages itself
    query = payload.get("query")
    try:
        request_limits.check_operation(query, payload.get("variables"), payload.get("extensions"))
    except RequestRefused as refused:
        return classify(refused).formatted()
    if isinstance(query, str):
        # Parsed here first because over a WebSocket a syntax error (including the token and nesting limits)
        # raised by strawberry's ParserCache escapes the operation task: graphql-transport-ws answered a bare
        # `complete`, graphql-ws nothing at all, and the traceback went to the log. Subscribe messages are
        # rare (subscriptions are long-lived), so parsing twice costs nothing that matters.
        try:
            parse(query, max_tokens=MAX_TOKENS)
        except GraphQLError as error:
            return {**error.formatted, "extensions": classify(error).all_extensions}
    return None


class _WebSocketAdapter(ASGIWebSocketAdapter):
    """strawberry's adapter, refusing messages over request_limits.MAX_WS_MESSAGE_CHARS before decoding them: they
    are malformed (graphql-transport-ws closes with 4400; graphql-ws ignores them)."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                try:
                    if len(text) > request_limits.MAX_WS_MESSAGE_CHARS:
                        raise json.JSONDecodeError(f"message longer than {request_limits.MAX_WS_MESSAGE_CHARS} characters", "", 0)
                    message = self.view.decode_json(text)
                except json.JSONDecodeError as exc:
                    del text
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from exc
                    continue
                del text
                yield message
        except KeyError as exc:
            raise NonTextMessageReceived from exc
        except WebSocketDisconnect:
            pass


class WebSocketGraphQL:
    """Mixin for strawberry's GraphQLRouter: the WebSocket protocols' handlers, authentication at connection_init,
    the token-expiry close, and subscription frames encoded once per shared result."""

    metrics = None  # graphql_api.metrics.Metrics, set by graphql_api.app
    graphql_transport_ws_handler_class = _TransportWsHandler
    graphql_ws_handler_class = _LegacyWsHandler
    websocket_adapter_class = _WebSocketAdapter

    def encode_json(self, data: object) -> str:
        """Subscription results shared by many subscribers are encoded once (graphql_api.live.shared_execution)."""
        if isinstance(data, dict) and data.get("type") in ("next", "data") and set(data.get("payload") or ()) == {"data"}:
            body = encode_payload(data["payload"]["data"])
            return data_frame(frame_prefix(data["id"], data["type"]), body)
        newly_coded = []
        if isinstance(data, dict) and data.get("type") == "error":
            newly_coded = coded_formatted(data.get("payload"))
        elif isinstance(data, dict) and data.get("type") in ("next", "data") and isinstance(data.get("payload"), dict):
            newly_coded = coded_formatted(data["payload"].get("errors"))
        if newly_coded and self.metrics is not None:
            self.metrics.record_graphql_errors(newly_coded, UNKNOWN_OPERATION)
        return super().encode_json(data)

    async def on_ws_connect(self, context):  # noqa: ANN001, ANN201
        services = context.services
        try:
            credential = services.authenticator.from_connection_params(context.connection_params)
            credential.actor.require("read", "subscribing")
        except DomainError as exc:
            refusal = classify(exc)
            context.refusal_close_code = refusal.ws_close_code
            raise ConnectionRejectionError({"message": refusal.message, "code": refusal.code}) from None
        context.credential, context.auth_error = credential, None
        websocket = context.connection
        services.hub.track_connection(websocket)
        if credential.expires_at is not None:
            delay = max(credential.expires_at - time.time(), 0) + services.settings.jwt_leeway_seconds
            socket_ref = weakref.ref(websocket)  # the timer must not keep a closed socket alive until expiry
            # Cancelled when the connection ends (graphql_api.http.entry): tokens live for hours and dashboards reconnect.
            context.expiry_timer = asyncio.get_running_loop().call_later(delay, lambda: _close_if_open(socket_ref, 4401, "token expired"))
        # The connection_ack's payload: the server's clock (epoch ms). A client that reconnects can tell the events
        # replayed to it (they happened before this moment) from live ones, whatever its own clock says.
        return {"serverTime": int(time.time() * 1000)}


def _close_if_open(socket_ref: weakref.ref, code: int, reason: str) -> None:
    websocket = socket_ref()
    if websocket is not None:
        asyncio.ensure_future(_close(websocket, code, reason))


async def _close(websocket, code: int, reason: str) -> None:  # noqa: ANN001
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=reason)
