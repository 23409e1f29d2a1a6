"""Queries: parse → authorize (permission class) → one service call → map."""

from datetime import datetime

import strawberry

from db.services import analytics, analytics_breakdown, audit_checkpoints, audit_log, auto_approval, drift, group_decisions, groups, guard, ml_models, patches, queue
from graphql_api.schema import mapping
from graphql_api.schema.context import Context
from graphql_api.schema.permissions import CanDecide, CanRead, IsAuthenticated
from graphql_api.schema.types.inputs import AuditCheckpointInput, AuditFilter, PatchFilter, PendingFilter
from graphql_api.schema.types.auto_approval import AutoApprovalState, MlModel
from graphql_api.schema.types.connections import AuditEntryConnection, PatchConnection
from graphql_api.schema.types.enums import AnalyticsInterval
from graphql_api.schema.types.groups import GroupDecision, GroupDecisionResult, PatchGroup, PatchGroupConnection
from graphql_api.schema.types.reports import AnalyticsBreakdown, AnalyticsSummary, AuditChainReport
from graphql_api.schema.types.viewer import Viewer
from graphql_api.schema.types.patch import Patch
from graphql_api.schema.webhooks import WebhookQueries

Info = strawberry.Info[Context, None]
READ = [CanRead]


@strawberry.type
class Query(WebhookQueries):
    @strawberry.field(permission_classes=READ)
    async def patch(self, info: Info, id: strawberry.ID) -> Patch | None:  # noqa: A002 - API.md name
        async with info.context.db.read() as session:
            return mapping.patch(await patches.get(session=session, patch_id=id), info.context.now)

    @strawberry.field(permission_classes=READ)
    async def patch_by_patch_id(self, info: Info, patch_id: str) -> Patch | None:
        async with info.context.db.read() as session:
            return mapping.patch(await patches.get_by_patch_id(session=session, upstream_id=patch_id), info.context.now)

    @strawberry.field(permission_classes=READ)
    async def pending_patches(
        self, info: Info, first: int | None = 50, after: str | None = None, filter: PendingFilter | None = None  # noqa: A002
    ) -> PatchConnection:
        flt = filter.to_filter() if filter else None
        async with info.context.db.read() as session:
            page = await queue.pending_page(session=session, first=first, after=after, flt=flt, now=info.context.now)
        return mapping.patch_connection(page, info.context.now)

    @strawberry.field(permission_classes=READ, description="Groups with pending members, in queue order of their most urgent one.")
    async def patch_groups(
        self, info: Info, first: int | None = 50, after: str | None = None, filter: PendingFilter | None = None  # noqa: A002
    ) -> PatchGroupConnection:
        flt = filter.to_filter() if filter else None
        async with info.context.db.read() as session:
            page = await groups.group_page(session=session, first=first, after=after, flt=flt, now=info.context.now)
        return mapping.group_connection(page)

    @strawberry.field(permission_classes=READ)
    async def patch_group(self, info: Info, key: str) -> PatchGroup | None:
        async with info.context.db.read() as session:
            found = await groups.summary(session=session, key=key)
        return PatchGroup.from_summary(found) if found else None

    @strawberry.field(
        permission_classes=[CanDecide],
        description="What decideGroup would do now for the caller (REVIEWER and up): the pending members it would decide "
        "and those it would skip, with their codes, in queue order. Nothing is written; send the listed ids as expectedMemberIds.",
    )
    async def group_decision_preview(self, info: Info, key: str, decision: GroupDecision) -> GroupDecisionResult:
        actor = info.context.actor()
        async with info.context.db.read() as session:
            outcome = await group_decisions.preview_group(session=session, actor=actor, key=key, decision=decision)
            summary = await groups.summary(session=session, key=outcome.key)
        return GroupDecisionResult.from_outcome(outcome, summary, info.context.now)

    @strawberry.field(permission_classes=READ)
    async def patches(
        self, info: Info, first: int | None = 50, after: str | None = None, filter: PatchFilter | None = None  # noqa: A002
    ) -> PatchConnection:
        flt = filter.to_filter() if filter else None
        async with info.context.db.read() as session:
            page = await queue.patch_page(session=session, first=first, after=after, flt=flt)
        return mapping.patch_connection(page, info.context.now)

    @strawberry.field(permission_classes=READ)
    async def analytics_summary(self, info: Info, since: datetime | None = None, until: datetime | None = None) -> AnalyticsSummary:
        async with info.context.db.read() as session:
            return await analytics.summary(session=session, since=since, until=until, now=info.context.now)

    @strawberry.field(
        permission_classes=READ,
        description="Charts of the patches submitted in [since, until): decision times, rates by priority, and rates per "
        "period (the latest 400 periods with submissions).",
    )
    async def analytics_breakdown(
        self, info: Info, since: datetime | None = None, until: datetime | None = None, interval: AnalyticsInterval = AnalyticsInterval.DAY
    ) -> AnalyticsBreakdown:
        async with info.context.db.read() as session:
            return await analytics_breakdown.breakdown(session=session, since=since, until=until, interval=interval, now=info.context.now)

    @strawberry.field(permission_classes=READ)
    async def audit_log(
        self, info: Info, first: int | None = 100, after: str | None = None, filter: AuditFilter | None = None  # noqa: A002
    ) -> AuditEntryConnection:
        flt = filter.to_filter() if filter else None
        async with info.context.db.read() as session:
            return mapping.audit_connection(await audit_log.page(session=session, first=first, after=after, flt=flt))

    @strawberry.field(
        permission_classes=READ,
        description="The cursor of the newest event (seq 0 when there is none yet): patchEvents(after:) from it "
        "misses nothing from that moment on, across reconnects, even before the subscription's first event arrives.",
    )
    async def latest_event_cursor(self, info: Info) -> str:
        async with info.context.db.read() as session:
            return await audit_log.head_cursor(session=session)

    @strawberry.field(permission_classes=READ)
    async def verify_audit_chain(self, info: Info, checkpoints: list[AuditCheckpointInput] | None = None) -> AuditChainReport:
        claims = [checkpoint.to_claim(index) for index, checkpoint in enumerate(checkpoints or [])]
        key = info.context.services.settings.audit_checkpoint_key_bytes
        async with info.context.db.read() as session:
            report = await audit_checkpoints.verify(session=session, claims=claims, key=key)
        return AuditChainReport(
            valid=report.valid, entries_checked=report.entries_checked, first_broken_seq=report.first_broken_seq, truncated=report.truncated
        )

    @strawberry.field(permission_classes=READ)
    async def ml_model(self, info: Info) -> MlModel | None:
        async with info.context.db.read() as session:
            model = await ml_models.active(session=session)
            measured = await drift.latest(session=session) if model else None
        return mapping.ml_model(model, measured) if model else None

    @strawberry.field(permission_classes=READ, description="The model registry, newest first (1..100).")
    async def ml_models(self, info: Info, first: int | None = 20) -> list[MlModel]:
        async with info.context.db.read() as session:
            models = await ml_models.newest(session=session, first=first)
            measured = await drift.latest(session=session)
        return [mapping.ml_model(model, measured) for model in models]

    @strawberry.field(permission_classes=READ)
    async def auto_approval_state(self, info: Info) -> AutoApprovalState:
        services = info.context.services
        async with info.context.db.read() as session:
            state = await auto_approval.pause_state(session=session)
            model = await ml_models.active(session=session)
            report = await guard.report(session=session, policy=services.policy)
        threshold = auto_approval.threshold_in_force(services.policy, model)
        return mapping.auto_approval_state(state, services.policy, model, threshold, report)

    @strawberry.field(permission_classes=[IsAuthenticated])
    def me(self, info: Info) -> Viewer:
        """Any authenticated caller, with no role too (API.md, "Single sign-on"): the console says "no role here"."""
        actor = info.context.actor()
        return Viewer(subject=actor.subject, roles=sorted(role.value for role in actor.roles))
