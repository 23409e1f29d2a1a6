"""Queries: parse → authorize (permission class) → one service call → map."""

from datetime import datetime

import strawberry

from db.services import analytics, audit, audit_log, auto_approval, ml_models, patches, queue
from graphql_api import mapping
from graphql_api.context import Context
from graphql_api.permissions import CanRead
from graphql_api.types.inputs import AuditFilter, PatchFilter, PendingFilter
from graphql_api.types.pages import (
    AnalyticsSummary,
    AuditChainReport,
    AuditEntryConnection,
    AutoApprovalState,
    MlModel,
    PatchConnection,
    Viewer,
)
from graphql_api.types.patch import Patch

Info = strawberry.Info[Context, None]
READ = [CanRead]


@strawberry.type
class Query:
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

    @strawberry.field(permission_classes=READ)
    async def audit_log(
        self, info: Info, first: int | None = 100, after: str | None = None, filter: AuditFilter | None = None  # noqa: A002
    ) -> AuditEntryConnection:
        flt = filter.to_filter() if filter else None
        async with info.context.db.read() as session:
            return mapping.audit_connection(await audit_log.page(session=session, first=first, after=after, flt=flt))

    @strawberry.field(permission_classes=READ)
    async def verify_audit_chain(self, info: Info) -> AuditChainReport:
        async with info.context.db.read() as session:
            report = await audit.verify_chain(session=session)
        return AuditChainReport(valid=report.valid, entries_checked=report.entries_checked, first_broken_seq=report.first_broken_seq)

    @strawberry.field(permission_classes=READ)
    async def ml_model(self, info: Info) -> MlModel | None:
        async with info.context.db.read() as session:
            model = await ml_models.active(session=session)
        return mapping.ml_model(model) if model else None

    @strawberry.field(permission_classes=READ)
    async def auto_approval_state(self, info: Info) -> AutoApprovalState:
        services = info.context.services
        async with info.context.db.read() as session:
            state = await auto_approval.pause_state(session=session)
            model = await ml_models.active(session=session)
        threshold = auto_approval.threshold_in_force(services.policy, model)
        return mapping.auto_approval_state(state, services.policy, model, threshold)

    @strawberry.field(permission_classes=READ)
    def me(self, info: Info) -> Viewer:
        actor = info.context.actor()
        return Viewer(subject=actor.subject, roles=sorted(role.value for role in actor.roles))
