"""A small GraphQL-over-WebSocket test client speaking graphql-transport-ws or the legacy graphql-ws."""

import asyncio
import itertools
import json
from contextlib import asynccontextmanager

import websockets

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class WsClient:
    def __init__(self, connection, protocol: str) -> None:
        self.connection = connection
        self.protocol = protocol
        self._ids = itertools.count(1)

    async def init(self, payload: dict | None) -> dict:
        await self.connection.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
        while True:
            message = json.loads(await asyncio.wait_for(self.connection.recv(), 10))
            if message["type"] != "ka":
                return message

    async def subscribe(self, query: str, variables: dict | None = None) -> str:
        op_id = str(next(self._ids))
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.connection.send(json.dumps({"id": op_id, "type": kind, "payload": {"query": query, "variables": variables or {}}}))
        return op_id

    async def next_payload(self, timeout: float = 10) -> dict:
        """The next data/error message (pings and keep-alives are answered or skipped)."""
        while True:
            message = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
            if message["type"] == "ping":
                await self.connection.send(json.dumps({"type": "pong"}))
                continue
            if message["type"] in ("ka", "pong"):
                continue
            return message

    async def data(self, timeout: float = 10) -> dict:
        message = await self.next_payload(timeout)
        assert message["type"] in ("next", "data"), message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]


@asynccontextmanager
async def connect(base_http_url: str, *, token: str | None, protocol: str = TRANSPORT_WS, init: bool = True, headers: dict | None = None):
    url = base_http_url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[protocol], proxy=None, compression=None, additional_headers=headers, max_size=2**24) as connection:
        client = WsClient(connection, protocol)
        if init:
            ack = await client.init({"Authorization": f"Bearer {token}"} if token else {})
            assert ack["type"] == "connection_ack", ack
        yield client


# Subscription documents several test modules send.
EVENTS = "subscription($after: String, $filter: PatchEventFilter) { patchEvents(after: $after, filter: $filter) { cursor seq kind actor patch { patchId status } } }"
BRIEF_EVENTS = "subscription($after: String) { patchEvents(after: $after) { seq kind patch { patchId } } }"
