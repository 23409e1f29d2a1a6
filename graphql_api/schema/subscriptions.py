"""Subscriptions: patchEvents (replay from the audit log, then live), pendingQueue and analyticsSummary
(live values shared by every subscriber of the same shape). All state lives in the process hub
(graphql_api.live.hub), reached through the context's services."""

import contextlib
from collections.abc import AsyncGenerator

import strawberry

from db.services import audit_log, queue
from db.services.patches import parse_id
from db.services.validation import page_size
from graphql_api.schema.context import Context
from graphql_api.schema.permissions import CanRead
from graphql_api.schema.types.inputs import PatchEventFilter, PendingFilter
from graphql_api.schema.types.groups import PatchGroupPage
from graphql_api.schema.types.live import PatchEvent, PendingQueue
from graphql_api.schema.types.reports import AnalyticsSummary

Info = strawberry.Info[Context, None]


@contextlib.contextmanager
def _counted(info: Info):  # noqa: ANN202
    gauge = info.context.services.metrics.active_subscriptions
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


async def _live_page(info: Info, first: int | None, flt: PendingFilter | None, *, grouped: bool) -> AsyncGenerator[object, None]:
    """The hub's shared live page of this shape: at once, then after each coalescing window with a change (written by
    the hub itself while this generator is parked, graphql_api.live.hub.PageFollower)."""
    hub = info.context.services.hub
    key, shape = await hub.subscribe_queue(first=page_size(first), flt=flt.to_filter() if flt else queue.PendingFilter(), grouped=grouped)
    follower = hub.follow_page(shape)
    with _counted(info):
        try:
            while True:
                yield await follower.next()
        finally:
            hub.unsubscribe_queue(key, follower)


@strawberry.type
class Subscription:
    @strawberry.subscription(permission_classes=[CanRead])
    async def patch_events(self, info: Info, after: str | None = None, filter: PatchEventFilter | None = None) -> AsyncGenerator[PatchEvent, None]:  # noqa: A002
        hub = info.context.services.hub
        kinds = frozenset(kind.value for kind in filter.kinds) if filter and filter.kinds else None
        decision_id = parse_id(filter.decision_id, field="decisionId") if filter and filter.decision_id else None
        last = audit_log.seq_from_cursor(after) if after else await hub.position()
        subscriber = hub.subscribe_events(kinds=kinds, decision_id=decision_id, connection=info.context.connection, last=last)
        with _counted(info):
            try:
                async for event in hub.replay(last):
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
        async for page in _live_page(info, first, filter, grouped=False):
            yield page

    @strawberry.subscription(permission_classes=[CanRead])
    async def pending_groups(self, info: Info, first: int | None = 50, filter: PendingFilter | None = None) -> AsyncGenerator[PatchGroupPage, None]:  # noqa: A002
        async for page in _live_page(info, first, filter, grouped=True):
            yield page

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
