"""Domain results → GraphQL types (kept out of the resolvers so they stay one call each)."""

from datetime import datetime

from db.models import MlModel as MlModelRow
from db.models import Patch as PatchRow
from db.services.auto_approval import PauseState
from db.services.policy import Policy
from db.services.paging import Page
from graphql_api.types.pages import (
    AuditEntryConnection,
    AuditEntryEdge,
    AutoApprovalState,
    MlModel,
    PageInfo,
    PatchConnection,
    PatchEdge,
)
from graphql_api.types.patch import AuditEntry, Patch

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


def ml_model(model: MlModelRow) -> MlModel:
    return MlModel(
        version=model.version,
        trained_at=model.trained_at,
        training_samples=model.training_samples,
        threshold=model.threshold if model.threshold is not None else DISABLED_THRESHOLD,
        metrics=model.metrics,
        feature_names=list(model.feature_names),
        auto_approval_enabled=model.threshold is not None,
        auto_approval_disabled_reason=_disabled_reason(model),
    )


def auto_approval_state(state: PauseState, policy: Policy, model: MlModelRow | None, threshold: float | None) -> AutoApprovalState:
    return AutoApprovalState(
        paused=state.paused,
        reason=state.reason,
        changed_by=state.changed_by,
        changed_at=state.changed_at,
        threshold=threshold if threshold is not None else DISABLED_THRESHOLD,
        policy={**policy.describe(), "activeModelVersion": model.version if model else None},
        auto_approval_enabled=threshold is not None and not state.paused,
        auto_approval_disabled_reason=("paused: " + (state.reason or "")) if state.paused else _disabled_reason(model),
    )


def patch(row: PatchRow | None, now: datetime) -> Patch | None:
    return Patch.from_model(row, now) if row is not None else None
