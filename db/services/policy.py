"""Configurable policy values and the pure rules derived from them (no I/O here)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from db.enums import PatchStatus, Severity, SlaStatus, VersionBump
from db.models import Patch

AUTO_APPROVAL_ACTOR = "system:auto-approval"
SLA_ACTOR = "system:sla-watcher"
AT_RISK_FRACTION = 0.8


@dataclass(frozen=True)
class Policy:
    required_approvals_default: int = 1
    required_approvals_critical: int = 2
    sla_seconds: dict[str, int] = field(default_factory=lambda: {"CRITICAL": 300, "HIGH": 600, "MEDIUM": 900, "LOW": 0})
    sla_auto_escalate: bool = False
    auto_approve_min_confidence: float = 0.95
    auto_approve_target_precision: float = 0.99
    auto_approve_min_labels: int = 200
    # A patch touching this many systems or more needs a LEAD (blast radius).
    escalate_affected_systems: int = 10
    # The auto-approval guard (db.services.guard): the window of reported outcomes per model, the failures
    # that trip it whatever the bound says, and the outcomes the bound needs before it may trip it.
    guard_window: int = 200
    guard_max_failures: int = 3
    guard_min_outcomes: int = 10

    def describe(self) -> dict:
        return {
            "minConfidence": self.auto_approve_min_confidence,
            "targetPrecision": self.auto_approve_target_precision,
            "minLabels": self.auto_approve_min_labels,
            "requiresWargamingValidation": True,
            "requiresModelWargamingAgreement": True,
            "excludesVersionBump": [VersionBump.MAJOR.value],
            "excludesRequiresEscalation": True,
            "guard": {"windowSize": self.guard_window, "maxFailures": self.guard_max_failures, "minOutcomes": self.guard_min_outcomes,
                      "bound": "Clopper-Pearson one-sided 95% upper bound of precision"},
        }


def required_approvals(policy: Policy, severity: str) -> int:
    if severity == Severity.CRITICAL.value:
        return policy.required_approvals_critical
    return policy.required_approvals_default


def sla_deadline(policy: Policy, priority: str, created_at: datetime) -> datetime | None:
    seconds = policy.sla_seconds.get(priority, 0)
    return created_at + timedelta(seconds=seconds) if seconds > 0 else None


def sla_status(patch: Patch, now: datetime) -> SlaStatus:
    if patch.sla_deadline is None:
        return SlaStatus.OK
    if patch.sla_breached_at is not None:
        return SlaStatus.BREACHED
    # A decided patch keeps the status it had when it was decided.
    moment = patch.decided_at if patch.decided_at is not None else now
    if moment > patch.sla_deadline:
        return SlaStatus.BREACHED
    total = (patch.sla_deadline - patch.created_at).total_seconds()
    elapsed = (moment - patch.created_at).total_seconds()
    return SlaStatus.AT_RISK if total > 0 and elapsed >= AT_RISK_FRACTION * total else SlaStatus.OK


def ml_wargaming_agreement(patch: Patch) -> bool | None:
    if not patch.ml_prediction or not patch.wargaming:
        return None
    return bool(patch.ml_prediction["prediction"]) == bool(patch.wargaming["validationPassed"])


def escalation_reasons(policy: Policy, patch: Patch) -> list[str]:
    """Why a patch may only be decided by a LEAD or ADMIN (empty when a REVIEWER may decide it)."""
    reasons = []
    if patch.severity == Severity.CRITICAL.value and patch.version_bump == VersionBump.MAJOR.value:
        reasons.append("critical vulnerability fixed by a major version bump")
    if len(patch.affected_systems) >= policy.escalate_affected_systems:
        reasons.append(f"affects {len(patch.affected_systems)} systems (limit {policy.escalate_affected_systems})")
    if ml_wargaming_agreement(patch) is False:
        reasons.append("model prediction and wargaming disagree")
    if patch.wargaming and patch.wargaming.get("validationPassed") and not patch.wargaming.get("phase1Success"):
        reasons.append("wargaming could not reproduce the exploit on the vulnerable version")
    return reasons


@dataclass(frozen=True)
class AutoApprovalVerdict:
    eligible: bool
    reasons: list[str]  # why not, when not eligible


def auto_approval_verdict(policy: Policy, patch: Patch, *, threshold: float | None) -> AutoApprovalVerdict:
    """Whether the policy holds for this patch, ignoring the pause (the kill switch is checked by the caller)."""
    reasons = []
    prediction = patch.ml_prediction
    if threshold is None:
        reasons.append("auto-approval is off for the active model")
    if not prediction:
        reasons.append("no model prediction")
    elif not prediction["prediction"]:
        reasons.append("model predicts failure")
    elif threshold is not None and prediction["confidence"] < threshold:
        reasons.append(f"confidence {prediction['confidence']:.4f} below threshold {threshold:.4f}")
    if not patch.wargaming:
        reasons.append("no wargaming result")
    elif not patch.wargaming["validationPassed"]:
        reasons.append("wargaming validation failed")
    if ml_wargaming_agreement(patch) is False:
        reasons.append("model and wargaming disagree")
    if patch.version_bump == VersionBump.MAJOR.value:
        reasons.append("major version bump")
    if patch.requires_escalation:
        reasons.append("escalation required")
    if patch.status != PatchStatus.PENDING.value:
        reasons.append(f"status is {patch.status}")
    return AutoApprovalVerdict(eligible=not reasons, reasons=reasons)
