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
from typing import Any

from graphql import print_ast
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

_RESULTS = "_hitl_shared_results"
_ENCODED_CACHE_SIZE = 1024
_encoded: OrderedDict[int, tuple[object, str]] = OrderedDict()


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
        return self.result


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    _share_key: tuple | None = None

    def build_per_event_executor(self, payload: Any):  # noqa: ANN201
        if self._share_key is not None and (store := _shared_store(payload)) is not None and self._share_key in store:
            return _SharedResult(store[self._share_key])  # no copy of the executor per subscriber per event
        executor = super().build_per_event_executor(payload)
        # graphql-core 3.3 copies the executor shallowly, sharing a memo keyed by id() of per-event lists it
        # keeps alive: without a fresh one every event would stay in memory for the life of the subscription.
        executor._relevant_sub_fields = {}
        if self._share_key is None:
            document = self.operation.loc.source.body if self.operation.loc else print_ast(self.operation)
            variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=str)
            self._share_key = (document, self.operation.name.value if self.operation.name else None, variables)
        executor._share_key = self._share_key
        return executor

    def execute_operation(self, serially: bool | None = None):  # noqa: ANN201
        store = _shared_store(self.root_value) if self._share_key is not None else None
        if store is None:
            return super().execute_operation(serially)
        if self._share_key in store:
            return store[self._share_key]
        result = super().execute_operation(serially)
        self.context_value.services.metrics.subscription_executions.inc()
        if self.is_awaitable(result):
            result = asyncio.ensure_future(result)  # every subscriber of this shape awaits the same execution
        store[self._share_key] = result
        return result


def encode_payload(data: object, encode) -> str:  # noqa: ANN001
    """JSON of a shared result's data, encoded once (a small identity cache keeps the object alive)."""
    key = id(data)
    cached = _encoded.get(key)
    if cached is not None and cached[0] is data:
        return cached[1]
    text = encode(data)
    _encoded[key] = (data, text)
    if len(_encoded) > _ENCODED_CACHE_SIZE:
        _encoded.popitem(last=False)
    return text
