"""The pending queue and the filtered patch listing, both with keyset pagination."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, literal, or_, tuple_
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import OPEN_STATUSES, PRIORITY_RANK, PatchStatus, Priority, Severity, SlaStatus
from db.models import Patch
from db.services import cursors, status_counts
from db.services.paging import Page, fetch_page
from db.services.errors import BadUserInput
from db.services.validation import aware, int_range, page_size, text_field

MAX_OFFSET = 1_000_000

@dataclass
class PendingFilter:
    priority: Sequence[str] = ()
    severity: Sequence[str] = ()
    package_name: str | None = None
    cve_id: str | None = None
    sla_status: str | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.priority or self.severity) and (self.package_name, self.cve_id, self.sla_status) == (None, None, None)


@dataclass
class PatchFilter:
    status: Sequence[str] = ()
    severity: Sequence[str] = ()
    decided_by: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _enum_values(values: Sequence[str], enum: type, field_name: str) -> list[str]:
    try:
        return list(dict.fromkeys(enum(value).value for value in values))  # one bind parameter per distinct value
    except ValueError:
        raise BadUserInput(f"unknown {field_name} value", field=field_name) from None


def _sla_condition(status: str, now: datetime):  # noqa: ANN202 - SQL expression
    breached = and_(Patch.sla_deadline.is_not(None), or_(Patch.sla_deadline < now, Patch.sla_breached_at.is_not(None)))
    if status == SlaStatus.BREACHED.value:
        return breached
    if status == SlaStatus.AT_RISK.value:
        return and_(~breached, Patch.sla_at_risk_at <= now)
    if status == SlaStatus.OK.value:
        return or_(Patch.sla_deadline.is_(None), and_(~breached, Patch.sla_at_risk_at > now))
    raise BadUserInput("unknown slaStatus value", field="slaStatus")


def pending_conditions(flt: PendingFilter, now: datetime) -> list:
    conditions = [Patch.status.in_([status.value for status in OPEN_STATUSES])]
    if flt.priority:
        ranks = [PRIORITY_RANK[Priority(value)] for value in _enum_values(flt.priority, Priority, "priority")]
        conditions.append(Patch.priority_rank.in_(ranks))
    if flt.severity:
        conditions.append(Patch.severity.in_(_enum_values(flt.severity, Severity, "severity")))
    if flt.package_name is not None:
        conditions.append(Patch.package_name == text_field(flt.package_name, field="packageName", max_length=214))
    if flt.cve_id is not None:
        conditions.append(Patch.cve_id == text_field(flt.cve_id, field="cveId", max_length=64).upper())
    if flt.sla_status is not None:
        conditions.append(_sla_condition(flt.sla_status, now))
    return conditions


def _typed(column, value):  # noqa: ANN001, ANN202 - bind with the column's own type (UTC, UUID storage)
    return literal(value, type_=column.type)


def queue_seek(after: str | None, columns: tuple) -> list:
    """The keyset condition "after this cursor" in queue order (priority rank, created_at, id) over `columns`."""
    if after is None:
        return []
    rank, created_at, last_id = cursors.decode(after, kinds=(int, datetime, uuid.UUID))
    if rank not in PRIORITY_RANK.values():
        raise BadUserInput("after is not a valid cursor", field="after")
    key = tuple_(literal(rank), _typed(Patch.created_at, created_at), _typed(Patch.id, last_id))
    return [tuple_(*columns) > key]


def pending_cursor(patch: Patch) -> str:
    return cursors.encode(patch.priority_rank, patch.created_at, patch.id)


async def pending_page(
    *,
    session: AsyncSession,
    first: int | None = 50,
    after: str | None = None,
    offset: int = 0,
    flt: PendingFilter | None = None,
    now: datetime,
) -> Page[Patch]:
    """PENDING and ESCALATED patches, CRITICAL→LOW, oldest first, then id (served by ix_patches_pending_queue).

    `after` (keyset) is the stable way to page; `offset` exists for the REST alias."""
    limit = page_size(first)
    offset = int_range(offset, field="offset", low=0, high=MAX_OFFSET)
    flt = flt or PendingFilter()
    conditions = pending_conditions(flt, now)
    seek = queue_seek(after, (Patch.priority_rank, Patch.created_at, Patch.id))
    return await fetch_page(
        session=session,
        model=Patch,
        filters=conditions,
        seek=seek,
        order_by=(Patch.priority_rank, Patch.created_at, Patch.id),
        limit=limit,
        offset=offset,
        cursor_of=pending_cursor,
        # The whole queue's size is kept by triggers; counting 100k open patches took longer than the page.
        total=await status_counts.open_total(session=session) if flt.is_empty else None,
    )


async def pending_count(*, session: AsyncSession) -> int:
    return await status_counts.open_total(session=session)


async def oldest_open_created_at(*, session: AsyncSession) -> datetime | None:
    """When the longest-waiting open (PENDING or ESCALATED) patch was submitted; None when none is open."""
    open_now = Patch.status.in_([status.value for status in OPEN_STATUSES])
    return (await session.exec(select(func.min(Patch.created_at)).where(open_now))).one()


async def patch_page(*, session: AsyncSession, first: int | None = 50, after: str | None = None, flt: PatchFilter | None = None) -> Page[Patch]:
    """All patches, newest first, then id."""
    flt = flt or PatchFilter()
    limit = page_size(first)
    conditions = []
    if flt.status:
        conditions.append(Patch.status.in_(_enum_values(flt.status, PatchStatus, "status")))
    if flt.severity:
        conditions.append(Patch.severity.in_(_enum_values(flt.severity, Severity, "severity")))
    if flt.decided_by is not None:
        conditions.append(Patch.decided_by == text_field(flt.decided_by, field="decidedBy", max_length=200))
    if flt.created_after is not None:
        conditions.append(Patch.created_at >= aware(flt.created_after, field="createdAfter"))
    if flt.created_before is not None:
        conditions.append(Patch.created_at < aware(flt.created_before, field="createdBefore"))
    seek = []
    if after is not None:
        created_at, last_id = cursors.decode(after, kinds=(datetime, uuid.UUID))
        seek.append(tuple_(Patch.created_at, Patch.id) < tuple_(_typed(Patch.created_at, created_at), _typed(Patch.id, last_id)))
    return await fetch_page(
        session=session,
        model=Patch,
        filters=conditions,
        seek=seek,
        order_by=(Patch.created_at.desc(), Patch.id.desc()),
        limit=limit,
        cursor_of=lambda patch: cursors.encode(patch.created_at, patch.id),
    )
