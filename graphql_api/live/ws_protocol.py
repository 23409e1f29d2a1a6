"""uvicorn's WebSocket protocol (websockets-sansio, its default) with less state per open connection.

A dashboard keeps its connection for hours, and every open connection held, besides what it needs:
- the handshake's parsed request and response (headers and all, ~5 KiB), never read after the accept;
- an asyncio.Queue for incoming messages and an asyncio.Event for write flow control: four deques and one
  deque, ~3 KiB, where one list and a waiting future do.
Measured with tracemalloc at 1,000 subscriptions (tests/benchmarks/README.md, "Memory per open subscription").
`hitl serve` passes this class to uvicorn (graphql_api.server); the protocol's behaviour is uvicorn's own. It also
puts its `write_text` in the connection's ASGI scope (extensions[DIRECT_WRITE_EXTENSION]) for
graphql_api.live.delivery.
"""

import asyncio

from websockets.exceptions import InvalidState
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

DIRECT_WRITE_EXTENSION = "hitl.websocket.write_text"


class Mailbox:
    """What the protocol uses of asyncio.Queue: put_nowait, get and empty, without the deques."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list = []
        self._waiters: list[asyncio.Future] = []

    def put_nowait(self, item: object) -> None:
        self._items.append(item)
        self._wake_one()

    def _wake_one(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> object:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: the wake-up goes to another waiter
                raise
            finally:
                self._waiters.remove(waiter)
        return self._items.pop(0)


class Flag:
    """What the protocol uses of asyncio.Event: set, clear and wait, without the deque."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            self._waiters.remove(waiter)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Mailbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    def handle_connect(self, event) -> None:  # noqa: ANN001
        super().handle_connect(event)
        self.scope["extensions"][DIRECT_WRITE_EXTENSION] = self.write_text

    async def send(self, message) -> None:  # noqa: ANN001
        await super().send(message)
        if message["type"] == "websocket.accept" and self.request is not None:
            # The handshake is over: uvicorn reads neither again. websockets' parser keeps the request object
            # in a local of its generator for the connection's life, so its headers are emptied as well.
            self.request.headers.clear()
            self.request = self.response = None

    def write_text(self, text: str) -> bool:
        """Send a text frame now, as `send` does for a `websocket.send` message, if it can go without waiting:
        False (nothing sent) when the connection is closing or closed, or the transport asked to stop writing."""
        if not self.handshake_complete or self.disconnected or self.close_sent or self.initial_response is not None:
            return False
        if not self.writable.is_set() or self.transport.is_closing():
            return False
        try:
            self.conn.send_text(text.encode())
        except InvalidState:
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True
