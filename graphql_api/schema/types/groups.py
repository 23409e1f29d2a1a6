"""Patch groups: one fix across many services (db.services.groups)."""

from datetime import datetime
from typing import TYPE_CHECKING

import strawberry
from strawberry.scalars import JSON

from db import enums
from db.services import groups
from db.services.group_decisions import GroupDecision as DomainGroupDecision, GroupOutcome
from graphql_api.schema.types.connections import PageInfo, PatchConnection, PatchEdge
from graphql_api.schema.types.enums import Priority
from graphql_api.schema.types.patch import Patch

if TYPE_CHECKING:
    from graphql_api.schema.context import Context

GroupDecision = strawberry.enum(DomainGroupDecision, name="GroupDecision")


@strawberry.type
class PatchGroup:
    key: str
    cve_id: str | None
    package_name: str
    target_version: str
    size: int
    pending_count: int
    highest_priority: Priority
    oldest_pending_at: datetime | None
    status_counts: JSON
    requires_escalation_count: int

    @strawberry.field
    async def members(
        self, info: strawberry.Info["Context", None], first: int | None = 50, after: str | None = None, pending_only: bool = True
    ) -> PatchConnection:
        now = info.context.now
        async with info.context.db.read() as session:
            page = await groups.members_page(session=session, key=self.key, first=first, after=after, pending_only=pending_only)
        edges = [PatchEdge(cursor=cursor, node=Patch.from_model(row, now)) for row, cursor in zip(page.items, page.cursors, strict=True)]
        return PatchConnection(edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor), total_count=page.total_count)

    @classmethod
    def from_summary(cls, summary: groups.GroupSummary) -> "PatchGroup":
        return cls(
            key=summary.key,
            cve_id=summary.cve_id,
            package_name=summary.package_name,
            target_version=summary.target_version,
            size=summary.size,
            pending_count=summary.pending_count,
            highest_priority=enums.Priority(summary.highest_priority),
            oldest_pending_at=summary.oldest_pending_at,
            status_counts=dict(sorted(summary.status_counts.items())),
            requires_escalation_count=summary.requires_escalation_count,
        )


@strawberry.type
class PatchGroupEdge:
    cursor: str
    node: PatchGroup


@strawberry.type
class PatchGroupConnection:
    edges: list[PatchGroupEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class PatchGroupPage:
    total_count: int
    items: list[PatchGroup]
    as_of_seq: int


@strawberry.type
class GroupDecisionSkip:
    patch: Patch
    code: str
    message: str


@strawberry.type
class GroupDecisionResult:
    group: PatchGroup
    applied: list[Patch]
    skipped: list[GroupDecisionSkip]

    @classmethod
    def from_outcome(cls, outcome: GroupOutcome, summary: groups.GroupSummary, now: datetime) -> "GroupDecisionResult":
        return cls(
            group=PatchGroup.from_summary(summary),
            applied=[Patch.from_model(row, now) for row in outcome.applied],
            skipped=[GroupDecisionSkip(patch=Patch.from_model(skip.patch, now), code=skip.code, message=skip.message) for skip in outcome.skipped],
        )

