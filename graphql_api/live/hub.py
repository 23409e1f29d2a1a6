"""Per-process fan-out of audit events to subscriptions.

The hub is the only reader of new events in a process: it reads each new audit row once (in seq order,
contiguously, from the database), builds its PatchEvent once, and hands the same object to every
subscriber. Subscribers have bounded buffers; one that stops reading is disconnected (it can resume
with its cursor). Live queue pages are computed once per distinct (filter, first) per change, after a
short coalescing window, and shared. None of this runs on a mutation's request path: the hub is woken
by the broker and works in its own task.
"""

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from db.broker import LocalBroker, PostgresBroker
from db.engine import Database, OutageLog
from db.enums import PatchEventKind, SystemAction
from db.models import AuditEntry
from db.services import analytics, audit, audit_log, groups, patches, queue
from db.types import utcnow
from graphql_api.live.delivery import DirectWriter, writer_for_this_operation
from graphql_api.metrics import Metrics
from graphql_api.schema.types.groups import PatchGroup, PatchGroupPage
from graphql_api.schema.types.live import PatchEvent, PendingQueue
from graphql_api.schema.types.patch import Patch

log = logging.getLogger("hitl.hub")

SLOW_CONSUMER_CLOSE_CODE = 4408
SLOW_CONSUMER_REASON = "slow consumer: reconnect and resume with patchEvents(after: <last cursor>)"
READ_BATCH = 500
# Subscribers given an event between two turns of the event loop: ~30 µs each when written directly, so a mutation
# waits at most a few ms behind a fan-out to thousands (tests/benchmarks/README.md, "Fan-out to subscribers").
DELIVERY_SLICE = 200
PATCH_EVENT_KINDS = {kind.value for kind in PatchEventKind}


class SlowConsumer(Exception):
    pass


@dataclass(eq=False)
class EventSubscriber:
    """One patchEvents subscription's bounded mailbox. A deque and one waiter rather than an asyncio.Queue:
    a subscription holds it for hours and every event is offered to every subscriber, so its size and the
    cost of `offer` count once per subscriber. `writer` (graphql_api.live.delivery), when the transport has
    one, sends events itself while the subscription's generator is parked with nothing queued."""

    kinds: frozenset[str] | None
    decision_id: uuid.UUID | None
    buffer: int
    on_overflow: Callable[[], None]
    writer: DirectWriter | None = None
    last: int = 0  # the seq of the last event sent or skipped: replay and live may both see an event
    pending: deque = field(init=False, default_factory=deque)
    waiter: asyncio.Future | None = field(init=False, default=None)
    overflowed: bool = False

    def matches(self, event: PatchEvent) -> bool:
        return (self.kinds is None or event.kind.value in self.kinds) and (
            self.decision_id is None or event.patch.row.id == self.decision_id
        )

    def writes_directly(self) -> bool:
        """True while the generator is parked in `next` with nothing queued: whatever it sent is out."""
        return self.writer is not None and not self.pending and not self.overflowed and self.waiter is not None and not self.waiter.done()

    def deliver(self, event: PatchEvent, rendered: dict[tuple, str]) -> None:
        """The event, written directly when it can go out now exactly as the generator would send it,
        otherwise queued for the generator."""
        if self.writes_directly() and event.seq > self.last and self.matches(event):
            data_json = rendered.get(self.writer.share_key)
            if data_json is not None and self.writer.write(data_json):
                self.last = event.seq
                return
        self.offer(event)

    def offer(self, event: PatchEvent) -> None:
        if self.overflowed or not self.matches(event):
            return
        if len(self.pending) >= self.buffer:
            self.overflowed = True
            self.on_overflow()
            return
        self.pending.append(event)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next(self) -> PatchEvent:
        while not self.pending:
            if self.overflowed:
                raise SlowConsumer(SLOW_CONSUMER_REASON)
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.pending.popleft()


class CoalescingWindow:
    """How long the hub lets changes gather before it makes the live pages. The first change after a quiet moment
    waits the base window (a reviewer's decision shows at once). When the next change comes within the window that
    was just used, changes are streaming in (a mass-CVE burst): the window doubles, up to `longest`, so a subscriber
    then gets a few pages a second rather than one per base window, and the server's time goes to the submissions."""

    def __init__(self, base: float, longest: float) -> None:
        self.base, self.longest = base, max(base, longest)
        self.current = base

    def after_quiet(self, quiet_seconds: float) -> float:
        """The window for a change that came `quiet_seconds` after the last pages were made."""
        self.current = min(self.current * 2, self.longest) if quiet_seconds < self.current else self.base
        return self.current

    async def gather(self, changed: asyncio.Event, window: float) -> None:
        """Let changes gather for `window`, clearing `changed` as they come, but end once none came for a base
        window: when a burst stops, its last page is at most a base window late, not a grown one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window
        while (left := deadline - loop.time()) > 0:
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), min(self.base, left))
            except TimeoutError:
                return


@dataclass(eq=False)
class Latest:
    """A live value: only the newest one matters (queue pages, analytics)."""

    value: object = None
    version: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, value: object) -> None:
        self.value, self.version = value, self.version + 1
        self.changed.set()

    async def wait_newer(self, seen: int) -> tuple[object, int]:
        while self.version <= seen:
            self.changed.clear()
            await self.changed.wait()
        return self.value, self.version


@dataclass(eq=False)
class PageFollower:
    """One pendingQueue/pendingGroups subscription of a shape. Its generator takes the newest page whenever it is
    woken; while it is parked with everything it yielded sent, the hub writes a new page's frame itself instead
    (graphql_api.live.delivery), as for patchEvents, and the generator stays parked."""

    latest: Latest
    writer: DirectWriter | None
    seen: int = 0  # the newest page version this subscriber was sent, either way
    waiter: asyncio.Future | None = field(init=False, default=None)

    def writes_directly(self) -> bool:
        return self.writer is not None and self.waiter is not None and not self.waiter.done()

    def deliver(self, version: int, rendered: dict[tuple, str]) -> None:
        if version <= self.seen:
            return
        if self.writes_directly():
            data_json = rendered.get(self.writer.share_key)
            if data_json is not None and self.writer.write(data_json):
                self.seen = version
                return
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next(self) -> object:
        while self.latest.version <= self.seen:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        self.seen = self.latest.version
        return self.latest.value


@dataclass(eq=False)
class QueueShape:
    first: int
    flt: queue.PendingFilter
    groups: bool = False  # a pendingGroups page rather than a pendingQueue page
    latest: Latest = field(default_factory=Latest)
    subscribers: int = 0
    followers: set[PageFollower] = field(default_factory=set)
    fingerprint: object = None
    first_page: asyncio.Future | None = None  # the computation of the first page (subscribe_queue)


class Hub:
    def __init__(
        self,
        db: Database,
        broker: LocalBroker | PostgresBroker,
        metrics: Metrics,
        *,
        on_model_change: Callable[[], object] | None = None,
        buffer: int = 1000,
        delivery_slice: int = DELIVERY_SLICE,
        coalesce_seconds: float = 0.05,
        coalesce_max_seconds: float = 0.15,
        poll_seconds: float = 2.0,
        analytics_min_interval: float = 1.0,
    ) -> None:
        self.db, self.broker, self.metrics = db, broker, metrics
        self.on_model_change = on_model_change
        self.buffer, self.poll_seconds = buffer, poll_seconds
        self.coalescing = CoalescingWindow(coalesce_seconds, coalesce_max_seconds)
        self.delivery_slice = delivery_slice
        self.analytics_min_interval = analytics_min_interval
        self.last_seq: int | None = None
        self._wake = asyncio.Event()
        self._subscribers: set[EventSubscriber] = set()
        self._shapes: dict[tuple, QueueShape] = {}
        self._summary = Latest()
        self._summary_subscribers = 0
        self._queues_dirty = asyncio.Event()
        self._summary_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        # Weak: a closed socket must not be kept alive by the hub (it is only needed to say 1001 on shutdown).
        self._connections: weakref.WeakSet = weakref.WeakSet()
        self._outage = OutageLog(log)  # reads failing for want of a database are logged once per outage
        self._listeners: list[Callable[[list], None]] = []

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Never fails for want of a database (the app must still serve /ready and /health): until the
        database answers, the hub has no position and takes the head as its start when it does."""
        try:
            await self._init_position()
        except Exception:  # noqa: BLE001
            log.warning("database unavailable at start; the hub will start from the head when it answers", exc_info=True)
        await self.broker.start(self.wake)
        self._tasks = [
            asyncio.create_task(self._pump(), name="hub-pump"),
            asyncio.create_task(self._poll(), name="hub-poll"),
            asyncio.create_task(self._refresh_queues(), name="hub-queues"),
            asyncio.create_task(self._refresh_summary(), name="hub-analytics"),
        ]

    async def stop(self) -> None:
        await self.db.cancel_when_idle(self._tasks)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.broker.stop()

    def wake(self) -> None:
        self._wake.set()

    def add_listener(self, listener: Callable[[list], None]) -> None:
        """`listener(rows)` gets every batch of new audit rows (each with `seq` and `action`) as soon as the hub has
        read it, before the fan-out (the webhook dispatcher: graphql_api.webhooks)."""
        self._listeners.append(listener)

    async def _init_position(self) -> None:
        async with self.db.read() as session:
            self.last_seq = await audit.head_seq(session=session)

    async def position(self) -> int:
        """The seq up to which events have been handed out (the start of a live-only subscription)."""
        if self.last_seq is None:
            await self._init_position()
        return self.last_seq

    def track_connection(self, websocket: object) -> None:
        self._connections.add(websocket)

    def forget_connection(self, websocket: object) -> None:
        self._connections.discard(websocket)

    async def close_all(self, code: int = 1001, reason: str = "server going away: reconnect to another replica") -> None:
        """On shutdown: tell every client to reconnect elsewhere (1001 going away)."""
        for websocket in list(self._connections):
            with contextlib.suppress(Exception):
                await websocket.close(code=code, reason=reason)

    # --- reading events once -----------------------------------------------------------------------
    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain()
            except Exception as exc:  # noqa: BLE001 - the database may be briefly away; the poll retries
                self._read_failed(exc)
            else:
                if self._outage.recovered():
                    log.warning("database back: events caught up to seq %s", self.last_seq)

    def _read_failed(self, exc: Exception, *, level: int = logging.WARNING) -> None:
        self._outage.failed(
            exc,
            "reading new events failed",
            lambda reason: f"database unavailable ({reason}): subscribers get the missed events from seq {self.last_seq} once it answers",
            level=level,
        )

    async def _poll(self) -> None:
        """Safety net for notifications lost while the listener was reconnecting."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                async with self.db.read() as session:
                    if self.last_seq is None or self._outage.down or await audit.head_seq(session=session) > self.last_seq:
                        self.wake()
            except Exception as exc:  # noqa: BLE001
                self._read_failed(exc, level=logging.DEBUG)

    async def _drain(self) -> None:
        if self.last_seq is None:
            await self._init_position()
            return
        while True:
            async with self.db.read() as session:
                if self._subscribers:
                    rows = await audit_log.after_seq(session=session, seq=self.last_seq, limit=READ_BATCH)
                    events = await build_events(session, rows)
                else:  # no patchEvents subscriber: pages and listeners need only positions and actions
                    rows, events = await audit_log.actions_after(session=session, seq=self.last_seq, limit=READ_BATCH), []
            if not rows:
                return
            for listener in self._listeners:
                listener(rows)
            for event in events:
                await self._deliver(event)
            if any(row.action == SystemAction.MODEL_ACTIVATED.value for row in rows) and self.on_model_change:
                await self.on_model_change()
            self.last_seq = rows[-1].seq
            self._queues_dirty.set()
            self._summary_dirty.set()
            if len(rows) < READ_BATCH:
                return

    # --- patchEvents ---------------------------------------------------------------------------------
    def subscribe_events(self, *, kinds: frozenset[str] | None, decision_id: uuid.UUID | None, connection: object, last: int) -> EventSubscriber:
        """Called by a patchEvents resolver in its operation's task (which tells the direct writer, if any).
        Register before replaying: whatever the hub delivers from then on is queued, the replay covers the rest."""
        subscriber = EventSubscriber(
            kinds=kinds, decision_id=decision_id, buffer=self.buffer, on_overflow=_slow_consumer_closer(connection),
            writer=writer_for_this_operation(), last=last,
        )
        self._subscribers.add(subscriber)
        return subscriber

    async def replay(self, after: int) -> AsyncGenerator[PatchEvent, None]:
        """The stored events after seq `after`, in order. A generator of its own so that its session and batches
        are freed once the replay is over, not kept by the subscription for as long as it lives."""
        while True:
            async with self.db.read() as session:
                rows = await audit_log.after_seq(session=session, seq=after, limit=READ_BATCH)
                events = await build_events(session, rows)
            for event in events:
                yield event
            if len(rows) < READ_BATCH:
                return
            after = rows[-1].seq

    async def _deliver(self, event: PatchEvent) -> None:
        """Every subscriber gets the event in seq order; for those that can be written to directly, its
        result is executed once per distinct operation first (awaiting may need the database)."""
        rendered = await _rendered_once(event, [s.writer for s in self._subscribers if s.writes_directly() and s.matches(event)])
        for count, subscriber in enumerate(list(self._subscribers), 1):
            subscriber.deliver(event, rendered)
            if count % self.delivery_slice == 0:
                await asyncio.sleep(0)  # requests run between slices, not after the whole fan-out

    def unsubscribe_events(self, subscriber: EventSubscriber) -> None:
        self._subscribers.discard(subscriber)

    # --- pendingQueue ----------------------------------------------------------------------------------
    async def subscribe_queue(self, *, first: int, flt: queue.PendingFilter, grouped: bool = False) -> tuple[tuple, QueueShape]:
        """A live page shared by every subscriber of its shape: the pending queue, or with `grouped` its groups.

        The shape's first page is computed in a task of its own that every subscriber waits for: a subscriber that
        goes away meanwhile (a page reload) must not cancel the page the others wait for, and a failed read is tried
        again by the next subscriber."""
        key = (grouped, first, tuple(flt.priority), tuple(flt.severity), flt.package_name, flt.cve_id, flt.sla_status)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = QueueShape(first=first, flt=flt, groups=grouped)
        shape.subscribers += 1
        try:
            if shape.latest.version == 0:
                first_page = shape.first_page
                if first_page is None or (first_page.done() and (first_page.cancelled() or first_page.exception() is not None)):
                    first_page = shape.first_page = asyncio.ensure_future(self._compute_shape(shape))
                await asyncio.shield(first_page)
        except BaseException:
            self.unsubscribe_queue(key)
            raise
        return key, shape

    def follow_page(self, shape: QueueShape) -> PageFollower:
        """Called by a live page's resolver in its operation's task (which tells the direct writer, if any)."""
        follower = PageFollower(latest=shape.latest, writer=writer_for_this_operation())
        shape.followers.add(follower)
        return follower

    def unsubscribe_queue(self, key: tuple, follower: PageFollower | None = None) -> None:
        shape = self._shapes.get(key)
        if shape is not None:
            shape.followers.discard(follower)
            shape.subscribers -= 1
            if shape.subscribers <= 0:
                del self._shapes[key]

    async def _deliver_page(self, shape: QueueShape) -> None:
        """The page just published to every follower of its shape: executed once per distinct operation and written
        directly where it can be, the other followers woken to take it themselves."""
        page, version = shape.latest.value, shape.latest.version
        rendered = await _rendered_once(page, [follower.writer for follower in shape.followers if follower.writes_directly()])
        for count, follower in enumerate(list(shape.followers), 1):
            if shape.latest.version != version:
                return  # a newer page was published meanwhile: its delivery reaches every follower
            follower.deliver(version, rendered)
            if count % self.delivery_slice == 0:
                await asyncio.sleep(0)

    async def _compute_shape(self, shape: QueueShape) -> None:
        if shape.groups:
            return await self._compute_groups(shape)
        now = utcnow()
        as_of = await self.position()
        async with self.db.read() as session:
            page = await queue.pending_page(session=session, first=shape.first, flt=shape.flt, now=now)
        fingerprint = (page.total_count, [(row.id, row.version) for row in page.items])
        if fingerprint != shape.fingerprint:
            shape.fingerprint = fingerprint
            items = [Patch.from_model(row, now) for row in page.items]
            shape.latest.publish(PendingQueue(total_count=page.total_count, items=items, as_of_seq=as_of))
            await self._deliver_page(shape)

    async def _compute_groups(self, shape: QueueShape) -> None:
        as_of = await self.position()
        async with self.db.read() as session:
            page = await groups.group_page(session=session, first=shape.first, flt=shape.flt, now=utcnow())
        fingerprint = (page.total_count, page.items)
        if fingerprint != shape.fingerprint:
            shape.fingerprint = fingerprint
            items = [PatchGroup.from_summary(summary) for summary in page.items]
            shape.latest.publish(PatchGroupPage(total_count=page.total_count, items=items, as_of_seq=as_of))
            await self._deliver_page(shape)

    async def _refresh_queues(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            made = loop.time()
            await self._queues_dirty.wait()
            # changes inside the window become one page
            await self.coalescing.gather(self._queues_dirty, self.coalescing.after_quiet(loop.time() - made))
            self._queues_dirty.clear()
            for shape in list(self._shapes.values()):
                try:
                    await self._compute_shape(shape)
                except Exception:  # noqa: BLE001
                    log.warning("pending queue refresh failed", exc_info=True)
                    self._queues_dirty.set()

    # --- analyticsSummary --------------------------------------------------------------------------------
    async def subscribe_summary(self) -> Latest:
        self._summary_subscribers += 1
        if self._summary.version == 0:
            await self._compute_summary()
        return self._summary

    def unsubscribe_summary(self) -> None:
        self._summary_subscribers -= 1

    async def _compute_summary(self) -> None:
        async with self.db.read() as session:
            summary = await analytics.summary(session=session, now=utcnow())
        if summary != self._summary.value:
            self._summary.publish(summary)

    async def _refresh_summary(self) -> None:
        while True:
            await self._summary_dirty.wait()
            self._summary_dirty.clear()
            if self._summary_subscribers > 0:
                try:
                    await self._compute_summary()
                except Exception:  # noqa: BLE001
                    log.warning("analytics refresh failed", exc_info=True)
            await asyncio.sleep(self.analytics_min_interval)  # at most once a second


async def _rendered_once(value: object, writers: list[DirectWriter]) -> dict[tuple, str]:
    """The frame data of `value` for each distinct operation among `writers` (executed once per operation; awaiting
    may need the database). An operation whose execution fails is left out: its subscribers take the value through
    strawberry, which reports the failure to them."""
    distinct = {writer.share_key: writer for writer in reversed(writers)}
    results = await asyncio.gather(*(writer.render(value) for writer in distinct.values()), return_exceptions=True)
    rendered = {}
    for key, result in zip(distinct, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("executing a live value failed", exc_info=result)
        else:
            rendered[key] = result
    return rendered


def _slow_consumer_closer(connection: object) -> Callable[[], None]:
    def close() -> None:
        if connection is not None:
            asyncio.get_running_loop().create_task(_close_quietly(connection))

    return close


async def _close_quietly(connection) -> None:  # noqa: ANN001
    with contextlib.suppress(Exception):
        await connection.close(code=SLOW_CONSUMER_CLOSE_CODE, reason=SLOW_CONSUMER_REASON)


async def build_events(session, rows: list[AuditEntry]) -> list[PatchEvent]:  # noqa: ANN001
    """Audit rows → PatchEvents (patch rows fetched in one query); service-level entries are skipped."""
    wanted = [row for row in rows if row.action in PATCH_EVENT_KINDS]
    found = await patches.get_many(session=session, ids=list({row.decision_id for row in wanted}))
    now = utcnow()
    mapped = {patch_id: Patch.from_model(row, now) for patch_id, row in found.items()}
    return [
        PatchEvent(
            cursor=audit_log.seq_cursor(row.seq),
            seq=row.seq,
            kind=PatchEventKind(row.action),
            actor=row.actor,
            at=row.at,
            patch=mapped[row.decision_id],
        )
        for row in wanted
        if row.decision_id in mapped
    ]
