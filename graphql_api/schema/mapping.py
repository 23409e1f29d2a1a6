"""Domain results → GraphQL types (kept out of the resolvers so they stay one call each)."""

from datetime import datetime

from db.models import MlModel as MlModelRow
from db.models import Patch as PatchRow
from db.services.auto_approval import PauseState
from db.services.guard import GuardReport
from db.services.policy import Policy
from db.services.paging import Page
from graphql_api.schema.types.auto_approval import AutoApprovalGuard, AutoApprovalState, MlModel, ModelDrift
from graphql_api.schema.types.connections import AuditEntryConnection, AuditEntryEdge, PageInfo, PatchConnection, PatchEdge
from graphql_api.schema.types.groups import PatchGroup, PatchGroupConnection, PatchGroupEdge
from graphql_api.schema.types.patch import AuditEntry, Patch

# Shown as the threshold of a model whose auto-approval is off: no confidence can exceed it.
DISABLED_THRESHOLD = 1.0


def patch_connection(page: Page, now: datetime) -> PatchConnection:
    edges = [PatchEdge(cursor=cursor, node=Patch.from_model(row, now)) for row, cursor in zip(page.items, page.cursors, strict=True)]
    return PatchConnection(edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor), total_count=page.total_count)


def audit_connection(page: Page) -> AuditEntryConnection:
    edges = [AuditEntryEdge(cursor=cursor, node=AuditEntry.from_model(row)) for row, cursor in zip(page.items, page.cursors, strict=True)]
    return AuditEntryConnection(
        edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor), total_count=page.total_count
    )


def _disabled_reason(model: MlModelRow | None) -> str | None:
    if model is None or model.threshold is not None:
        return None
    return (model.metrics.get("autoApproval") or {}).get("reason") or "auto-approval is off for this model"


def drift(model: MlModelRow, measured: dict | None) -> list[ModelDrift]:
    if measured is None or measured.get("modelVersion") != model.version:
        return []
    return [ModelDrift(feature=f, psi=v) for f, v in sorted(measured["psi"].items(), key=lambda kv: (-kv[1], kv[0]))]


def ml_model(model: MlModelRow, measured: dict | None = None) -> MlModel:
    return MlModel(
        version=model.version,
        trained_at=model.trained_at,
        training_samples=model.training_samples,
        threshold=model.threshold if model.threshold is not None else DISABLED_THRESHOLD,
        metrics=model.metrics,
        feature_names=list(model.feature_names),
        auto_approval_enabled=model.threshold is not None,
        auto_approval_disabled_reason=_disabled_reason(model),
        active=bool(model.active),
        drift=drift(model, measured),
    )


def guard(report: GuardReport) -> AutoApprovalGuard:
    return AutoApprovalGuard(
        window_size=report.window_size,
        outcomes=report.window.outcomes,
        failures=report.window.failures,
        precision_upper_bound=report.window.upper_bound,
        tripped=report.tripped,
        tripped_at=report.tripped_at,
        reason=report.reason,
        model_version=report.window.model_version,
    )


def auto_approval_state(
    state: PauseState, policy: Policy, model: MlModelRow | None, threshold: float | None, report: GuardReport
) -> AutoApprovalState:
    return AutoApprovalState(
        paused=state.paused,
        reason=state.reason,
        changed_by=state.changed_by,
        changed_at=state.changed_at,
        threshold=threshold if threshold is not None else DISABLED_THRESHOLD,
        policy={**policy.describe(), "activeModelVersion": model.version if model else None},
        auto_approval_enabled=threshold is not None and not state.paused,
        auto_approval_disabled_reason=("paused: " + (state.reason or "")) if state.paused else _disabled_reason(model),
        guard=guard(report),
    )


def patch(row: PatchRow | None, now: datetime) -> Patch | None:
    return Patch.from_model(row, now) if row is not None else None


def group_connection(page: Page) -> PatchGroupConnection:
    edges = [PatchGroupEdge(cursor=cursor, node=PatchGroup.from_summary(row)) for row, cursor in zip(page.items, page.cursors, strict=True)]
    return PatchGroupConnection(
        edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor), total_count=page.total_count
    )
