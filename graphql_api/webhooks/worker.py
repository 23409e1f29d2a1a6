"""One endpoint's sender: an asyncio task of its own, so a slow or dead endpoint delays nobody else.

Each step reads the endpoint (still ours? enabled? failing?), its open deliveries and the events after its
cursor, then sends the matching events one at a time in seq order. Delivered events are recorded in batches
(one transaction moves the cursor and writes their log rows); an event that fails stops the stream there: it is
retried with exponential backoff and jitter until the retry window ends, then it is FAILED and the endpoint
`failing` until an ADMIN re-enables it or redelivers. Woken by the dispatcher when new audit rows arrive, with a
slow poll as a safety net.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

import httpx
from tenacity import wait_exponential_jitter

from db.engine import Database, OutageLog
from db.enums import DeliveryStatus, WebhookFormat
from db.models import WebhookDelivery, WebhookEndpoint
from db.services import webhook_delivery
from db.services.webhook_delivery import Event, Outcome, Progress
from db.services.webhook_targets import AllowList, Resolver
from db.services.webhooks import secret_key
from db.types import utcnow
from graphql_api.webhooks import formats, sender, signing
from graphql_api.webhooks.feed import EventFeed

log = logging.getLogger("hitl.webhooks")
READ_BATCH = 200
FLUSH_SECONDS = 0.2  # delivered events are recorded at least this often while a batch is being sent
BODY_CACHE = 4096


@dataclass(frozen=True)
class Delivering:
    """What every sender of a process shares: settings, the database, its lease owner name and the metrics."""

    db: Database
    owner: str
    allow: AllowList
    resolver: Resolver
    timeout: float
    max_retry: timedelta
    backoff: Callable[[int], float]
    max_body: int
    poll_seconds: float
    console_url: str | None
    count: Callable[[str], None]  # outcome: delivered, retry, failed
    bodies: "BodyCache"
    feed: EventFeed


def backoff(initial: float, maximum: float) -> Callable[[int], float]:
    """Seconds before attempt n + 1 after n failed ones: exponential, capped, plus up to `initial` of jitter."""
    wait = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)
    return lambda attempts: wait(SimpleNamespace(attempt_number=attempts))


class BodyCache:
    """Each event's body is encoded once per format and shared by every endpoint that gets it."""

    def __init__(self, size: int = BODY_CACHE) -> None:
        self._bodies: OrderedDict[tuple[int, str], bytes] = OrderedDict()
        self._size = size

    def get(self, event: Event, fmt: WebhookFormat, now: datetime, console_url: str | None) -> bytes:
        key = (event.seq, fmt.value)
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = formats.encode(event, fmt, now, console_url)
            if len(self._bodies) > self._size:
                self._bodies.popitem(last=False)
        return body


class Stop(Exception):
    """This process no longer sends for the endpoint (lease lost, disabled, deleted)."""


class _Reread(Exception):
    """A write found the endpoint changed under the sender: read it again before going on."""


def _as_row(outcome: Outcome, endpoint_id: uuid.UUID) -> WebhookDelivery:
    """The log row an outcome was written as (to update it at the next attempt)."""
    return WebhookDelivery(
        id=outcome.existing or outcome.id, endpoint_id=endpoint_id, event_seq=outcome.event_seq, kind=outcome.kind, status=outcome.status.value,
        attempts=outcome.attempts, first_attempt_at=outcome.first_attempt_at, next_attempt_at=outcome.next_attempt_at,
    )


class EndpointSender:
    """Keeps the endpoint's settings, the head being retried and the unrecorded progress in memory between steps:
    the fast path (a new event, the endpoint healthy) reads nothing but the shared feed and writes once per
    FLUSH_SECONDS. It reads the endpoint again when told it changed (`refresh`), every lease renewal, and after
    a write found the lease or the cursor not as expected."""

    def __init__(self, endpoint_id: uuid.UUID, shared: Delivering) -> None:
        self.endpoint_id, self.shared = endpoint_id, shared
        self._wake = asyncio.Event()
        self.stopping = False
        self.task: asyncio.Task | None = None
        self.endpoint: WebhookEndpoint | None = None
        self.stale = True
        self.head: WebhookDelivery | None = None  # the event after the cursor being retried
        self.again: list[WebhookDelivery] = []  # earlier deliveries to send once more
        self.stored = 0  # the cursor as written
        self.progress = Progress(cursor=0)
        self.flushed_at = time.monotonic()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"hitl-webhook-{self.endpoint_id}")

    def wake(self) -> None:
        self._wake.set()

    def refresh(self) -> None:
        self.stale = True
        self._wake.set()

    def stop(self) -> None:
        self.stopping = True
        self._wake.set()

    async def _run(self) -> None:
        outage = OutageLog(log)
        async with sender.client() as http:
            while not self.stopping:
                try:
                    wait = await self._step(http)
                    outage.recovered()
                except Stop:
                    return
                except _Reread:
                    self.stale, wait = True, 0.0
                except Exception as exc:  # noqa: BLE001 - the database may be away; the next step retries
                    outage.failed(exc, "webhook delivery step failed", lambda reason: f"webhook delivery paused: database unavailable ({reason})")
                    self.stale, wait = True, self.shared.poll_seconds
                if wait > 0 and not self.stopping:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
            with contextlib.suppress(Exception):  # stopping (shutdown, lease moved): record what was sent
                await self._flush()

    async def _reload(self) -> None:
        await self._flush()
        async with self.shared.db.read() as session:
            endpoint = await webhook_delivery.load(session=session, endpoint_id=self.endpoint_id)
            if endpoint is None or not endpoint.enabled or endpoint.lease_owner != self.shared.owner:
                raise Stop
            open_ = await webhook_delivery.open_deliveries(session=session, endpoint_id=endpoint.id)
        self.endpoint, self.stale = endpoint, False
        self.stored, self.progress = endpoint.cursor_seq, Progress(cursor=endpoint.cursor_seq)
        self.head = next((row for row in open_ if row.event_seq > endpoint.cursor_seq), None)
        self.again = [row for row in open_ if row.event_seq <= endpoint.cursor_seq]

    async def _step(self, http: httpx.AsyncClient) -> float:
        """One round; returns how long to wait before the next (0: go on at once)."""
        self._wake.clear()
        if self.stale or self.endpoint is None:
            await self._reload()
        shared, endpoint, now = self.shared, self.endpoint, utcnow()
        due = [row for row in self.again if row.next_attempt_at is not None and row.next_attempt_at <= now]
        if due:
            await self._redeliver(http, endpoint, due)
        if endpoint.failing:
            return await self._flush_or_wait(shared.poll_seconds)
        if self.head is not None and self.head.next_attempt_at is not None and self.head.next_attempt_at > now:
            return await self._flush_or_wait(min((self.head.next_attempt_at - now).total_seconds(), shared.poll_seconds))
        batch = await shared.feed.after(self.progress.cursor, READ_BATCH)
        return await self._send_batch(http, endpoint, batch)

    async def _flush_or_wait(self, wait: float) -> float:
        """Record progress once FLUSH_SECONDS have passed since the last write; until then wait no longer than that."""
        if self.progress.cursor == self.stored and not self.progress.outcomes:
            return wait
        left = FLUSH_SECONDS - (time.monotonic() - self.flushed_at)
        if left <= 0:
            await self._flush()
            return wait
        return min(wait, left)

    async def _send_batch(self, http: httpx.AsyncClient, endpoint: WebhookEndpoint, batch: webhook_delivery.Batch) -> float:
        progress = self.progress
        for event in batch.events:
            if self.stopping:
                return 0.0
            if not webhook_delivery.matches(endpoint, event):
                progress.cursor = event.seq
                continue
            head = self.head if self.head is not None and self.head.event_seq == event.seq else None
            outcome = await self._attempt(http, endpoint, event, head)
            progress.outcomes.append(outcome)
            if outcome.status != DeliveryStatus.DELIVERED:
                failing = outcome.status == DeliveryStatus.FAILED
                await self._flush(failing=failing)
                endpoint.failing = failing
                self.head = _as_row(outcome, endpoint.id)
                if outcome.next_attempt_at is None:
                    return self.shared.poll_seconds
                return min(max((outcome.next_attempt_at - utcnow()).total_seconds(), 0.0), self.shared.poll_seconds)
            self.head = None
            progress.cursor = progress.last_delivered = event.seq
            if time.monotonic() - self.flushed_at >= FLUSH_SECONDS:
                await self._flush()
                progress = self.progress
        if not batch.full and batch.last_seq is not None:
            progress.cursor = max(progress.cursor, batch.last_seq)  # trailing service-level entries
        return 0.0 if batch.full else await self._flush_or_wait(self.shared.poll_seconds)

    async def _flush(self, *, failing: bool = False) -> None:
        """Write the outcomes and the cursor, only while this replica holds the lease and the cursor is where it
        left it (else _Reread: the lease moved, or an ADMIN moved the cursor)."""
        progress = self.progress
        if progress.cursor == self.stored and not progress.outcomes and not failing:
            self.flushed_at = time.monotonic()
            return
        async with self.shared.db.write() as session:
            written = await webhook_delivery.record(
                session=session, endpoint_id=self.endpoint_id, owner=self.shared.owner, expected_cursor=self.stored, progress=progress,
                failing=failing,
            )
        if not written:
            self.progress = Progress(cursor=self.stored)
            raise _Reread
        self.stored, self.progress, self.flushed_at = progress.cursor, Progress(cursor=progress.cursor), time.monotonic()

    async def _redeliver(self, http: httpx.AsyncClient, endpoint: WebhookEndpoint, rows: list[WebhookDelivery]) -> None:
        async with self.shared.db.read() as session:
            events = {row.id: await webhook_delivery.event_at(session=session, seq=row.event_seq) for row in rows}
        for row in rows:
            event = events.get(row.id)
            if event is None:  # the patch is gone: nothing left to send
                outcome = Outcome(row.event_seq, row.kind, DeliveryStatus.FAILED, row.attempts, utcnow(), error="event not found", existing=row.id)
            else:
                outcome = await self._attempt(http, endpoint, event, row)
            self.progress.outcomes.append(outcome)
            self.again.remove(row)
            if outcome.status == DeliveryStatus.RETRYING:
                self.again.append(_as_row(outcome, endpoint.id))
        await self._flush()

    async def _attempt(self, http: httpx.AsyncClient, endpoint: WebhookEndpoint, event: Event, before: WebhookDelivery | None) -> Outcome:
        shared = self.shared
        now = utcnow()
        fmt = WebhookFormat(endpoint.format)
        body = shared.bodies.get(event, fmt, now, shared.console_url)
        headers = signing.headers(secret_key(endpoint.secret), formats.event_id(event), int(time.time()), body)
        headers["content-type"] = formats.CONTENT_TYPES[fmt]
        result = await sender.post(
            http, endpoint.url, body, headers, allow=shared.allow, resolver=shared.resolver, timeout=shared.timeout, max_body=shared.max_body
        )
        attempts = (before.attempts if before is not None else 0) + 1
        first = before.first_attempt_at if before is not None and before.first_attempt_at is not None else now
        existing = before.id if before is not None else None
        done = utcnow()
        if result.ok:
            shared.count("delivered")
            return Outcome(event.seq, event.kind, DeliveryStatus.DELIVERED, attempts, done, status_code=result.status_code, first_attempt_at=first, existing=existing)
        if done - first >= shared.max_retry:
            shared.count("failed")
            log.warning("webhook delivery failed for good: endpoint %s, event %s, %s attempts: %s", endpoint.id, event.seq, attempts, result.error)
            return Outcome(
                event.seq, event.kind, DeliveryStatus.FAILED, attempts, done, status_code=result.status_code, error=result.error,
                first_attempt_at=first, existing=existing,
            )
        shared.count("retry")
        return Outcome(
            event.seq, event.kind, DeliveryStatus.RETRYING, attempts, done, status_code=result.status_code, error=result.error,
            first_attempt_at=first, next_attempt_at=done + timedelta(seconds=shared.backoff(attempts)), existing=existing,
        )

