"""Subscriptions: patchEvents (replay from the audit log, then live), pendingQueue and analyticsSummary
(live values shared by every subscriber of the same shape). All state lives in the process hub."""

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import strawberry

from db.services import audit_log, queue
from db.services.patches import parse_id
from db.services.validation import page_size
from graphql_api.context import Context
from graphql_api.live_delivery import writer_for_this_operation
from graphql_api.hub import READ_BATCH, SLOW_CONSUMER_CLOSE_CODE, SLOW_CONSUMER_REASON, build_events
from graphql_api.permissions import CanRead
from graphql_api.types.inputs import PatchEventFilter, PendingFilter
from graphql_api.types.pages import AnalyticsSummary, PatchEvent, PendingQueue

Info = strawberry.Info[Context, None]


@contextlib.contextmanager
def _counted(info: Info):  # noqa: ANN202
    gauge = info.context.services.metrics.active_subscriptions
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def _closer(info: Info):  # noqa: ANN202
    connection = info.context.connection

    def close() -> None:
        if connection is not None:
            asyncio.get_running_loop().create_task(_close_quietly(connection))

    return close


async def _close_quietly(connection) -> None:  # noqa: ANN001
    with contextlib.suppress(Exception):
        await connection.close(code=SLOW_CONSUMER_CLOSE_CODE, reason=SLOW_CONSUMER_REASON)


async def _replay(info: Info, after: int) -> AsyncGenerator[PatchEvent, None]:
    """The stored events after seq `after`, in order. A generator of its own so that its session and batches
    are freed once the replay is over, not kept by the subscription for as long as it lives."""
    while True:
        async with info.context.db.read() as session:
            rows = await audit_log.after_seq(session=session, seq=after, limit=READ_BATCH)
            events = await build_events(session, rows)
        for event in events:
            yield event
        if len(rows) < READ_BATCH:
            return
        after = rows[-1].seq


@strawberry.type
class Subscription:
    @strawberry.subscription(permission_classes=[CanRead])
    async def patch_events(self, info: Info, after: str | None = None, filter: PatchEventFilter | None = None) -> AsyncGenerator[PatchEvent, None]:  # noqa: A002
        hub = info.context.services.hub
        kinds = frozenset(kind.value for kind in filter.kinds) if filter and filter.kinds else None
        decision_id = parse_id(filter.decision_id, field="decisionId") if filter and filter.decision_id else None
        last = audit_log.seq_from_cursor(after) if after else await hub.position()
        # Register before replaying: whatever the hub delivers from now on is queued, the replay covers the rest.
        subscriber = hub.subscribe_events(
            kinds=kinds, decision_id=decision_id, on_overflow=_closer(info), writer=writer_for_this_operation(), last=last
        )
        with _counted(info):
            try:
                async for event in _replay(info, last):
                    if subscriber.matches(event):
                        yield event
                    subscriber.last = event.seq
                while True:
                    event = await subscriber.next()
                    if event.seq > subscriber.last:
                        subscriber.last = event.seq
                        yield event
            finally:
                hub.unsubscribe_events(subscriber)

    @strawberry.subscription(permission_classes=[CanRead])
    async def pending_queue(self, info: Info, first: int | None = 50, filter: PendingFilter | None = None) -> AsyncGenerator[PendingQueue, None]:  # noqa: A002
        hub = info.context.services.hub
        flt = filter.to_filter() if filter else queue.PendingFilter()
        key, shape = await hub.subscribe_queue(first=page_size(first), flt=flt)
        with _counted(info):
            try:
                seen = 0
                while True:
                    value, seen = await shape.latest.wait_newer(seen)
                    yield value
            finally:
                hub.unsubscribe_queue(key)

    @strawberry.subscription(permission_classes=[CanRead])
    async def analytics_summary(self, info: Info) -> AsyncGenerator[AnalyticsSummary, None]:
        hub = info.context.services.hub
        latest = await hub.subscribe_summary()
        with _counted(info):
            try:
                seen = 0
                while True:
                    value, seen = await latest.wait_newer(seen)
                    yield value
            finally:
                hub.unsubscribe_summary()
