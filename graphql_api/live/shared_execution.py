"""Execute and encode each subscription event once per process, not once per subscriber.

The hub hands the same event object (PatchEvent, PendingQueue, AnalyticsSummary) to every subscriber.
graphql-core then builds one executor per subscriber per event; this executor class shares the result
among subscribers whose operation (document text, operation name and variables) is the same, and
`encode_payload` shares the JSON text of that result. Per subscriber what remains is a dictionary
lookup and the socket write. Permissions were checked when each subscription started; the socket is
closed when its token expires.
"""

import asyncio
import json
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any

from graphql import print_ast
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_api.errors import coded

_RESULTS = "_hitl_shared_results"
_ENCODED_CACHE_SIZE = 1024
_encoded: OrderedDict[int, tuple[object, str]] = OrderedDict()
# The executor of the operation running in this task: a subscription resolver, called next in the same task,
# reads it to have the hub execute its events (graphql_api.live.delivery).
current_executor: ContextVar["SharedEventExecutor | None"] = ContextVar("hitl_current_executor", default=None)


def _shared_store(payload: object) -> dict | None:
    """A per-event memo kept on the event object itself, so it lives exactly as long as the event."""
    namespace = getattr(payload, "__dict__", None)
    return None if namespace is None else namespace.setdefault(_RESULTS, {})


class _SharedResult:
    """Stands in for a per-event executor when another subscriber already executed this event."""

    __slots__ = ("result",)

    def __init__(self, result: object) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None):  # noqa: ANN201, ARG002
        return guarded(self.result)


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    _share_key: tuple | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current_executor.set(self)

    @property
    def share_key(self) -> tuple:
        """Operations with the same key get the same result for the same event."""
        if self._share_key is None:
            document = self.operation.loc.source.body if self.operation.loc else print_ast(self.operation)
            variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=str)
            self._share_key = (document, self.operation.name.value if self.operation.name else None, variables)
        return self._share_key

    def build_per_event_executor(self, payload: Any):  # noqa: ANN201
        if (store := _shared_store(payload)) is not None and self.share_key in store:
            return _SharedResult(store[self.share_key])  # no copy of the executor per subscriber per event
        executor = super().build_per_event_executor(payload)
        # graphql-core 3.3 copies the executor shallowly, sharing a memo keyed by id() of per-event lists it
        # keeps alive: without a fresh one every event would stay in memory for the life of the subscription.
        executor._relevant_sub_fields = {}
        executor._share_key = self.share_key
        return executor

    def event_result(self, payload: Any):  # noqa: ANN201
        """The result of one event, as graphql-core's map_source_to_response_event computes it (an
        ExecutionResult or an awaitable of one), shared like the per-subscriber path's."""
        return self.build_per_event_executor(payload).execute_operation(False)

    def execute_operation(self, serially: bool | None = None):  # noqa: ANN201
        if self._share_key is None:  # not a subscription event
            return super().execute_operation(serially)
        # Built by build_per_event_executor only when no result for this event and key was stored yet.
        result = super().execute_operation(serially)
        self.context_value.services.metrics.subscription_executions.inc()
        if self.is_awaitable(result):
            result = asyncio.ensure_future(self._coded_later(result))  # every subscriber of this shape awaits it
        else:
            result = self._coded(result)
        if (store := _shared_store(self.root_value)) is not None:
            store[self._share_key] = result
        return guarded(result)

    def _coded(self, result):  # noqa: ANN001, ANN202
        """An event's errors leave with it, long before the operation's end where graphql_api.errors.code_errors
        codes the errors of queries and mutations: unexpected ones are logged once and masked here."""
        if result.errors:
            result.errors = [coded(error, getattr(self.context_value, "request_id", None)) for error in result.errors]
            self.context_value.services.metrics.record_graphql_errors(result.errors, "subscription")
        return result

    async def _coded_later(self, result):  # noqa: ANN001, ANN202
        return self._coded(await result)


def guarded(result):  # noqa: ANN001, ANN201
    """What one subscriber awaits of a shared result still being computed: its own shield of the shared task.
    Every subscriber's task awaits the result, and a task cancelled while awaiting a future cancels that future
    (asyncio): without the shield, one subscriber leaving mid-execution would end the subscription of every other
    subscriber of the same operation with a CancelledError, silently."""
    return asyncio.shield(result) if isinstance(result, asyncio.Future) else result


def frame_prefix(operation_id: str, kind: str) -> str:
    """The start of a data frame, kept per subscription; data_frame completes it. Together the same text as the
    JSON of {"id": operation_id, "type": kind, "payload": {"data": data}}."""
    return f'{{"id":{json.dumps(operation_id)},"type":"{kind}","payload":{{"data":'


def data_frame(prefix: str, data_json: str) -> str:
    return f"{prefix}{data_json}}}}}"


def encode_payload(data: object) -> str:
    """JSON of a shared result's data (as strawberry encodes it), encoded once: a small identity cache keeps
    the object alive."""
    key = id(data)
    cached = _encoded.get(key)
    if cached is not None and cached[0] is data:
        return cached[1]
    text = json.dumps(data, separators=(",", ":"))
    _encoded[key] = (data, text)
    if len(_encoded) > _ENCODED_CACHE_SIZE:
        _encoded.popitem(last=False)
    return text
