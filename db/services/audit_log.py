"""Reading the audit log: filtered pages, per-patch trails, and events after a cursor."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import AuditEntry
from db.services import audit, cursors
from db.services.patches import parse_id
from db.services.paging import Page, fetch_page
from db.services.validation import aware, page_size, text_field


@dataclass
class AuditFilter:
    decision_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def seq_cursor(seq: int) -> str:
    return cursors.encode(seq)


def seq_from_cursor(cursor: str, *, field: str = "after") -> int:
    return cursors.decode(cursor, kinds=(int,), field=field)[0]


async def page(*, session: AsyncSession, first: int | None = 100, after: str | None = None, flt: AuditFilter | None = None) -> Page[AuditEntry]:
    """Entries in seq order (the order they were committed)."""
    flt = flt or AuditFilter()
    limit = page_size(first, default=100)
    conditions = []
    if flt.decision_id is not None:
        conditions.append(AuditEntry.decision_id == parse_id(flt.decision_id, field="decisionId"))
    if flt.actor is not None:
        conditions.append(AuditEntry.actor == text_field(flt.actor, field="actor", max_length=200))
    if flt.action is not None:
        conditions.append(AuditEntry.action == text_field(flt.action, field="action", max_length=64))
    if flt.since is not None:
        conditions.append(AuditEntry.at >= aware(flt.since, field="since"))
    if flt.until is not None:
        conditions.append(AuditEntry.at < aware(flt.until, field="until"))
    seek = [AuditEntry.seq > seq_from_cursor(after)] if after is not None else []
    return await fetch_page(
        session=session,
        model=AuditEntry,
        filters=conditions,
        seek=seek,
        order_by=(AuditEntry.seq,),
        limit=limit,
        cursor_of=lambda entry: seq_cursor(entry.seq),
    )


async def head_cursor(*, session: AsyncSession) -> str:
    """The cursor of the newest entry (of seq 0 in an empty log): an `after` that replays nothing yet."""
    return seq_cursor(await audit.head_seq(session=session))


async def trails(*, session: AsyncSession, decision_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[AuditEntry]]:
    rows = (await session.exec(select(AuditEntry).where(AuditEntry.decision_id.in_(list(decision_ids))).order_by(AuditEntry.seq))).all()
    grouped: dict[uuid.UUID, list[AuditEntry]] = {decision_id: [] for decision_id in decision_ids}
    for row in rows:
        grouped[row.decision_id].append(row)
    return grouped


async def after_seq(*, session: AsyncSession, seq: int, limit: int = 500) -> list[AuditEntry]:
    """Events committed after `seq`, in order: the replay source of the event stream."""
    return list((await session.exec(select(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq).limit(limit))).all())


@dataclass(frozen=True)
class ActionAt:
    seq: int
    action: str


async def actions_after(*, session: AsyncSession, seq: int, limit: int = 500) -> list[ActionAt]:
    """Just the positions and actions after `seq` (for following the log without building events)."""
    statement = select(AuditEntry.seq, AuditEntry.action).where(AuditEntry.seq > seq).order_by(AuditEntry.seq).limit(limit)
    return [ActionAt(seq=row[0], action=row[1]) for row in (await session.exec(statement)).all()]
