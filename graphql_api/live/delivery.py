"""Live patchEvents frames written by the hub straight to each subscriber's socket.

Through strawberry, every event wakes one task per subscriber, which resumes five nested async generators
(our resolver, graphql-core's mapping and cancellation wrappers, strawberry's stream and result handling)
to send a frame whose text is the same for every subscriber of the same operation but for its id
(tests/benchmarks/README.md, "Fan-out to subscribers"). Once a subscription's replay is over and its
generator is waiting for the next event, the hub writes that frame itself: the result is executed once per
distinct operation, as on the strawberry path, and each subscriber costs a socket write.

A subscriber goes back to the strawberry path, event by event, whenever the direct write cannot be exactly
what strawberry would send: its generator is busy or has events queued (order), the result has errors
(strawberry formats them), the socket is not writable right now (flow control: the queued path waits,
and a consumer that stays slow overflows its buffer and is cut off as before), or the operation is over.
graphql-ws (the legacy protocol) and servers started without LeanWebSocketProtocol (which announces its direct
write in the connection's ASGI scope) always use that path.
"""

from collections.abc import Callable
from contextvars import ContextVar

from graphql_api.live.shared_execution import SharedEventExecutor, current_executor, data_frame, encode_payload, frame_prefix
from graphql_api.live.ws_protocol import DIRECT_WRITE_EXTENSION

# The graphql-transport-ws operation running in this task (set by graphql_api.live.websocket), read by its resolver.
current_operation: ContextVar[object | None] = ContextVar("hitl_current_operation", default=None)


class DirectWriter:
    __slots__ = ("executor", "operation", "prefix", "write_text")

    def __init__(self, operation, executor: SharedEventExecutor, write_text: Callable[[str], bool]) -> None:  # noqa: ANN001
        self.operation, self.executor, self.write_text = operation, executor, write_text
        self.prefix = frame_prefix(operation.id, "next")

    @property
    def share_key(self) -> tuple:
        return self.executor.share_key

    async def render(self, event: object) -> str | None:
        """The JSON of the event's data for this operation, or None when the result has errors."""
        result = self.executor.event_result(event)
        if self.executor.is_awaitable(result):
            result = await result
        return None if result.errors else encode_payload(result.data)

    def write(self, data_json: str) -> bool:
        """Send the `next` frame now; False (nothing sent) if it cannot go out without waiting or the
        operation is over."""
        operation = self.operation
        if operation.completed or operation.handler.operations.get(operation.id) is not operation:
            return False
        return self.write_text(data_frame(self.prefix, data_json))


def writer_for_this_operation() -> DirectWriter | None:
    """The direct writer of the subscription whose resolver runs in this task, if its transport has one."""
    operation, executor = current_operation.get(), current_executor.get()
    if operation is None or executor is None:
        return None
    websocket = getattr(operation.handler.websocket, "ws", None)  # strawberry's adapter holds starlette's WebSocket
    write_text = getattr(websocket, "scope", {}).get("extensions", {}).get(DIRECT_WRITE_EXTENSION)
    if write_text is None:
        return None
    return DirectWriter(operation, executor, write_text)
