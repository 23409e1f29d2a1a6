"""Patch groups: the patches of one fix (same CVE or none, package and target version) across many services.

A group's key is stored on each patch at submission (db.models.patch_group_key). Groups are listed in queue
order of their most urgent open member; their counts come from one GROUP BY over the members, never from a page.
"""

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select as sa_select
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import OPEN_STATUSES, PRIORITY_RANK, PatchStatus
from db.models import Patch
from db.services import cursors, queue
from db.services.errors import BadUserInput
from db.services.paging import Page, fetch_page
from db.services.validation import page_size

_KEY = re.compile(r"[0-9a-f]{32}")
OPEN_VALUES = tuple(status.value for status in OPEN_STATUSES)
PRIORITY_OF_RANK = {rank: priority.value for priority, rank in PRIORITY_RANK.items()}


def parse_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise BadUserInput("key is not a patch group key", field="key")
    return key


@dataclass
class GroupSummary:
    key: str
    cve_id: str | None
    package_name: str
    target_version: str
    size: int = 0
    pending_count: int = 0
    highest_rank: int | None = None  # over the open members; over all members when none is open
    oldest_pending_at: datetime | None = None
    status_counts: dict[str, int] = field(default_factory=dict)
    requires_escalation_count: int = 0  # open members only a LEAD or ADMIN may decide
    _lowest_rank_any: int | None = None

    @property
    def highest_priority(self) -> str:
        rank = self.highest_rank if self.highest_rank is not None else self._lowest_rank_any
        return PRIORITY_OF_RANK[rank]

    def _add(self, status: str, rank: int, escalation: bool, count: int, oldest: datetime) -> None:
        self.size += count
        self.status_counts[status] = self.status_counts.get(status, 0) + count
        self._lowest_rank_any = rank if self._lowest_rank_any is None else min(self._lowest_rank_any, rank)
        if status in OPEN_VALUES:
            self.pending_count += count
            self.highest_rank = rank if self.highest_rank is None else min(self.highest_rank, rank)
            self.oldest_pending_at = oldest if self.oldest_pending_at is None else min(self.oldest_pending_at, oldest)
            if escalation or status == PatchStatus.ESCALATED.value:
                self.requires_escalation_count += count


async def summaries(*, session: AsyncSession, keys: Sequence[str]) -> dict[str, GroupSummary]:
    """The counts of these groups (all members, every status), in one GROUP BY."""
    if not keys:
        return {}
    statement = (
        sa_select(
            Patch.group_key, Patch.status, Patch.priority_rank, Patch.requires_escalation, func.count(), func.min(Patch.created_at),
            func.min(Patch.cve_id), func.min(Patch.package_name), func.min(Patch.target_version),
        )
        .where(Patch.group_key.in_(list(dict.fromkeys(keys))))
        .group_by(Patch.group_key, Patch.status, Patch.priority_rank, Patch.requires_escalation)
    )
    found: dict[str, GroupSummary] = {}
    for key, status, rank, escalation, count, oldest, cve, package, target in (await session.exec(statement)).all():
        summary = found.get(key)
        if summary is None:
            summary = found[key] = GroupSummary(key=key, cve_id=cve, package_name=package, target_version=target)
        summary._add(status, rank, escalation, count, oldest)
    return found


async def summary(*, session: AsyncSession, key: str) -> GroupSummary | None:
    key = parse_key(key)
    return (await summaries(session=session, keys=[key])).get(key)


async def group_page(
    *, session: AsyncSession, first: int | None = 50, after: str | None = None, flt: queue.PendingFilter | None = None, now: datetime
) -> Page[GroupSummary]:
    """Groups with open members matching the filter, in queue order of their most urgent such member."""
    limit = page_size(first)
    conditions = [*queue.pending_conditions(flt or queue.PendingFilter(), now), Patch.group_key.is_not(None)]
    order = (Patch.priority_rank, Patch.created_at, Patch.id)
    ranked = (
        sa_select(Patch.group_key, *order, func.row_number().over(partition_by=Patch.group_key, order_by=order).label("n"))
        .where(*conditions)
        .subquery()
    )
    head_order = (ranked.c.priority_rank, ranked.c.created_at, ranked.c.id)
    heads = (
        sa_select(ranked.c.group_key, *head_order)
        .where(ranked.c.n == 1, *queue.queue_seek(after, head_order))
        .order_by(*head_order)
        .limit(limit + 1)
    )
    rows = (await session.exec(heads)).all()
    # count(*) over GROUP BY rather than count(DISTINCT): PostgreSQL walks ix_patches_open_group in key order instead
    # of sorting every open member's key.
    grouped = sa_select(Patch.group_key).where(*conditions).group_by(Patch.group_key).subquery()
    total = (await session.exec(sa_select(func.count()).select_from(grouped))).one()[0]
    rows, more = rows[:limit], len(rows) > limit
    found = await summaries(session=session, keys=[row.group_key for row in rows])
    return Page(
        items=[found[row.group_key] for row in rows],
        cursors=[cursors.encode(row.priority_rank, row.created_at, row.id) for row in rows],
        has_next_page=more,
        total_count=total,
    )


async def members_page(
    *, session: AsyncSession, key: str, first: int | None = 50, after: str | None = None, pending_only: bool = True
) -> Page[Patch]:
    """A group's members in queue order (open ones only, unless `pending_only` is false)."""
    key = parse_key(key)
    conditions = [Patch.group_key == key]
    if pending_only:
        conditions.append(Patch.status.in_(OPEN_VALUES))
    order = (Patch.priority_rank, Patch.created_at, Patch.id)
    return await fetch_page(
        session=session,
        model=Patch,
        filters=conditions,
        seek=queue.queue_seek(after, order),
        order_by=order,
        limit=page_size(first),
        cursor_of=queue.pending_cursor,
    )


_OPEN = select(Patch).where(Patch.status.in_(OPEN_VALUES)).order_by(Patch.id)
_LOCK_OPEN = _OPEN.with_for_update().execution_options(populate_existing=True)


async def open_members(*, session: AsyncSession, key: str) -> list[Patch]:
    """The group's open members as they are now, without locks (for a preview)."""
    return list((await session.exec(_OPEN.where(Patch.group_key == key))).all())


async def lock_open_members(*, session: AsyncSession, key: str) -> list[Patch]:
    """The group's open members, row-locked in id order (so that two group decisions never deadlock), detached
    like `patches.lock`. On PostgreSQL a member decided by a transaction this one waited for is re-checked after
    that commit and left out: each member is decided once."""
    rows = list((await session.exec(_LOCK_OPEN.where(Patch.group_key == key))).all())
    for row in rows:
        session.expunge(row)
    return rows


def queue_order(rows: Sequence[Patch]) -> list[Patch]:
    return sorted(rows, key=lambda row: (row.priority_rank, row.created_at, row.id))


def parse_member_ids(values: Sequence[str] | None) -> set[uuid.UUID] | None:
    if values is None:
        return None
    if len(values) > 10_000:
        raise BadUserInput("expectedMemberIds has more than 10000 items", field="expectedMemberIds")
    ids = set()
    for value in values:
        try:
            ids.add(uuid.UUID(str(value)))
        except ValueError:
            raise BadUserInput("expectedMemberIds holds an invalid id", field="expectedMemberIds") from None
    return ids

