"""Patch counts per status from the trigger-kept deltas (models.PatchStatusDelta)."""

from collections import Counter
from collections.abc import Iterable

from sqlalchemy import delete, func, insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import OPEN_STATUSES
from db.models import PatchStatusDelta

# Folding costs a DELETE and a few INSERTs: not worth it for fewer rows than this.
COMPACT_ABOVE_ROWS = 64


async def total(*, session: AsyncSession, statuses: Iterable[str]) -> int:
    statement = select(func.coalesce(func.sum(PatchStatusDelta.delta), 0)).where(PatchStatusDelta.status.in_(list(statuses)))
    return int((await session.exec(statement)).one())


async def open_total(*, session: AsyncSession) -> int:
    """PENDING + ESCALATED patches."""
    return await total(session=session, statuses=[status.value for status in OPEN_STATUSES])


async def compact(*, session: AsyncSession) -> int:
    """Fold the deltas into one row per status; returns how many rows were folded.

    DELETE ... RETURNING hands each row to exactly one caller, so replicas compacting at the same time
    never count a row twice, and readers see the rows before or after, never half of them.
    """
    rows = (await session.exec(select(func.count()).select_from(PatchStatusDelta))).one()
    if rows <= COMPACT_ABOVE_ROWS:
        return 0
    removed = (await session.exec(delete(PatchStatusDelta).returning(PatchStatusDelta.status, PatchStatusDelta.delta))).all()
    sums = Counter()
    for status, delta in removed:
        sums[status] += delta
    folded = [{"status": status, "delta": delta} for status, delta in sums.items() if delta]
    if folded:
        await session.exec(insert(PatchStatusDelta).values(folded))
    return len(removed)
