"""The model that predicts, and the state of auto-approval (kill switch, threshold, policy)."""

from datetime import datetime

import strawberry
from strawberry.scalars import JSON


@strawberry.type
class ModelDrift:
    feature: str
    psi: float


@strawberry.type
class AutoApprovalGuard:
    window_size: int
    outcomes: int
    failures: int
    precision_upper_bound: float | None
    tripped: bool
    tripped_at: datetime | None
    reason: str | None
    model_version: str | None = strawberry.field(description="The model whose window this is (the active one, else the newest with outcomes).")


@strawberry.type
class MlModel:
    version: str
    trained_at: datetime
    training_samples: int
    threshold: float
    metrics: JSON
    feature_names: list[str]
    auto_approval_enabled: bool
    auto_approval_disabled_reason: str | None
    active: bool
    drift: list[ModelDrift] = strawberry.field(
        description="PSI per feature, highest first: the training rows vs the last HITL_DRIFT_WINDOW submissions, as last "
        "measured for this model (empty until measured, and for a model that is not active)."
    )


@strawberry.type
class AutoApprovalState:
    paused: bool
    reason: str | None
    changed_by: str | None
    changed_at: datetime | None
    threshold: float
    policy: JSON
    auto_approval_enabled: bool
    auto_approval_disabled_reason: str | None
    guard: AutoApprovalGuard
