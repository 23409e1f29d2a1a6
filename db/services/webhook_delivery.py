"""The delivery side of webhooks: leases, the events after an endpoint's cursor, and recording progress.

One replica sends for an endpoint at a time: it holds the endpoint's lease (`lease_owner`, `lease_until`),
claimed with SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL (replicas never wait on each other) and renewed
well before it runs out. Every write of progress is conditional on still holding the lease and on the cursor
being where the sender left it, so a replica that lost its lease (or an ADMIN who moved the cursor) stops it.
A replica that dies leaves its lease to run out; the next owner resumes from the stored cursor, so events
sent but not yet recorded are sent again: duplicates happen only around a crash.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import PRIORITY_RANK, DeliveryStatus, PatchEventKind, Priority
from db.models import AuditEntry, Patch, WebhookDelivery, WebhookEndpoint
from db.services import audit

PATCH_EVENT_KINDS = frozenset(kind.value for kind in PatchEventKind)


async def claim(*, session: AsyncSession, owner: str, now: datetime, lease_seconds: float) -> set[uuid.UUID]:
    """Renew this owner's leases and take the free or expired ones of enabled endpoints; the ids now held.
    Leases on endpoints that are disabled meanwhile are given back.

    Renewing waits for the row (its own sender may be writing progress to it that instant: skipping it would
    drop a lease this replica holds); taking skips rows another transaction holds, so replicas never queue."""
    until = now + timedelta(seconds=lease_seconds)
    connection = await session.connection()
    renewed = await connection.execute(
        update(WebhookEndpoint).where(WebhookEndpoint.lease_owner == owner, WebhookEndpoint.enabled).values(lease_until=until)
        .returning(WebhookEndpoint.id)
    )
    held = set(renewed.scalars().all())
    free = or_(WebhookEndpoint.lease_owner.is_(None), WebhookEndpoint.lease_until < now)
    statement = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled, free).order_by(WebhookEndpoint.id)
    if session.bind.dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    taken = set((await session.exec(statement)).all()) - held
    if taken:
        await connection.execute(update(WebhookEndpoint).where(WebhookEndpoint.id.in_(taken)).values(lease_owner=owner, lease_until=until))
    await connection.execute(
        update(WebhookEndpoint).where(WebhookEndpoint.lease_owner == owner, ~WebhookEndpoint.enabled).values(lease_owner=None, lease_until=None)
    )
    return held | taken


async def release(*, session: AsyncSession, owner: str) -> None:
    """At shutdown: another replica may take over at once instead of when the leases run out."""
    await (await session.connection()).execute(update(WebhookEndpoint).where(WebhookEndpoint.lease_owner == owner).values(lease_owner=None, lease_until=None))


async def load(*, session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
    return (await session.exec(select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))).first()


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    actor: str
    at: datetime
    patch: Patch


@dataclass
class Batch:
    events: list[Event]
    last_seq: int | None  # the last audit row read (system entries included), None when nothing followed
    full: bool  # more rows may follow


async def events_after(*, session: AsyncSession, seq: int, limit: int) -> Batch:
    """The patch events after `seq` in order, each with its patch (current state), in two queries."""
    rows = (
        await session.exec(
            select(AuditEntry.seq, AuditEntry.action, AuditEntry.actor, AuditEntry.at, AuditEntry.decision_id)
            .where(AuditEntry.seq > seq)
            .order_by(AuditEntry.seq)
            .limit(limit)
        )
    ).all()
    if not rows:
        return Batch(events=[], last_seq=None, full=False)
    wanted = [row for row in rows if row[1] in PATCH_EVENT_KINDS]
    ids = list({row[4] for row in wanted})
    found = {patch.id: patch for patch in (await session.exec(select(Patch).where(Patch.id.in_(ids)))).all()} if ids else {}
    events = [Event(seq=row[0], kind=row[1], actor=row[2], at=row[3], patch=found[row[4]]) for row in wanted if row[4] in found]
    return Batch(events=events, last_seq=rows[-1][0], full=len(rows) == limit)


def matches(endpoint: WebhookEndpoint, event: Event) -> bool:
    if endpoint.kinds is not None and event.kind not in endpoint.kinds:
        return False
    if endpoint.min_priority is not None:
        return PRIORITY_RANK[Priority(event.patch.priority)] <= PRIORITY_RANK[Priority(endpoint.min_priority)]
    return True


OPEN_STATUSES = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value)


async def open_deliveries(*, session: AsyncSession, endpoint_id: uuid.UUID, limit: int = 100) -> list[WebhookDelivery]:
    """Deliveries still to be sent: the head of the stream being retried (after the cursor) and earlier ones an
    ADMIN asked to send again (at or before it), in seq order. A partial index keeps this off the whole log."""
    statement = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status.in_(OPEN_STATUSES))
        .order_by(WebhookDelivery.event_seq)
        .limit(limit)
    )
    return list((await session.exec(statement)).all())


async def event_at(*, session: AsyncSession, seq: int) -> Event | None:
    batch = await events_after(session=session, seq=seq - 1, limit=1)
    return batch.events[0] if batch.events and batch.events[0].seq == seq else None


@dataclass
class Outcome:
    """What one attempt of one event came to, for the log."""

    event_seq: int
    kind: str
    status: DeliveryStatus
    attempts: int
    at: datetime
    status_code: int | None = None
    error: str | None = None
    first_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    existing: uuid.UUID | None = None  # the log row to update, when the event was tried before
    id: uuid.UUID = field(default_factory=uuid.uuid4)  # the new log row's id otherwise

    def values(self) -> dict:
        return {
            "status": self.status.value, "attempts": self.attempts, "last_status_code": self.status_code,
            "last_error": self.error, "first_attempt_at": self.first_attempt_at or self.at, "next_attempt_at": self.next_attempt_at,
            "delivered_at": self.at if self.status == DeliveryStatus.DELIVERED else None,
        }


@dataclass
class Progress:
    """Outcomes not yet written, and where the cursor goes with them."""

    cursor: int
    outcomes: list[Outcome] = field(default_factory=list)
    last_delivered: int | None = None


async def record(
    *, session: AsyncSession, endpoint_id: uuid.UUID, owner: str, expected_cursor: int, progress: Progress, failing: bool = False
) -> bool:
    """Write the outcomes and move the cursor, only while this owner holds the lease and the cursor is still
    `expected_cursor`; False (nothing written) otherwise."""
    values: dict = {"cursor_seq": progress.cursor}
    if progress.last_delivered is not None:
        values["last_delivered_seq"] = progress.last_delivered
    if failing:
        values["failing"] = True
    moved = await (await session.connection()).execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.lease_owner == owner, WebhookEndpoint.cursor_seq == expected_cursor)
        .values(**values)
    )
    if moved.rowcount != 1:
        return False
    new = [
        {"id": outcome.id, "endpoint_id": endpoint_id, "event_seq": outcome.event_seq, "kind": outcome.kind, **outcome.values()}
        for outcome in progress.outcomes
        if outcome.existing is None
    ]
    if new:
        await (await session.connection()).execute(insert(WebhookDelivery), new)
    for outcome in progress.outcomes:
        if outcome.existing is not None:
            await (await session.connection()).execute(update(WebhookDelivery).where(WebhookDelivery.id == outcome.existing).values(**outcome.values()))
    return True


async def lag(*, session: AsyncSession) -> tuple[int, list[tuple[uuid.UUID, int, bool]]]:
    """The audit head, and every endpoint's (id, events behind it, failing)."""
    head = await audit.head_seq(session=session)
    rows = (await session.exec(select(WebhookEndpoint.id, WebhookEndpoint.cursor_seq, WebhookEndpoint.failing))).all()
    return head, [(row[0], max(head - row[1], 0), bool(row[2])) for row in rows]

