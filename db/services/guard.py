"""The auto-approval guard: watches the reported outcomes of auto-approved patches and pauses auto-approval
itself when they show, with confidence, that its precision is below target.

After each deployment outcome of an AUTO_APPROVED patch (decisions.record_outcome) the outcome is stored with
the model version that vouched for the patch, and the window — that model's last `guard_window` outcomes
since the last resume — is judged (`trip_reason`):
- the one-sided 95% Clopper–Pearson upper bound of its precision (precision_bound) is below the target
  precision, over at least `guard_min_outcomes` outcomes (a few outcomes say little; successes never trip it);
- or `guard_max_failures` of its patches failed in the window.
Tripping pauses auto-approval through the kill switch's own path (auto_approval.write_pause: audited, actor
system:auto-approval-guard, every replica reads it at its next decision). Nothing resumes it but an ADMIN's
setAutoApprovalPaused(false), which starts a new window.

Only a model still in force can trip it: the active model, or an upstream model (a version the registry does
not hold). Late outcomes of a retired model of ours are stored but judge nothing.

All of this runs in the outcome's transaction, after its audit append: on PostgreSQL under the audit chain's
lock, so concurrent outcomes on any number of replicas are judged one after the other and trip once.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import PatchStatus
from db.models import AutoApprovalOutcome, MlModel, Patch
from db.services import audit, auto_approval, ml_models, precision_bound
from db.services.actor import system_actor
from db.services.policy import Policy
from db.types import utcnow

GUARD_ACTOR = "system:auto-approval-guard"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Window:
    model_version: str | None
    outcomes: int
    failures: int

    @property
    def upper_bound(self) -> float | None:
        return precision_bound.upper_bound(self.outcomes - self.failures, self.outcomes, confidence=CONFIDENCE)


@dataclass(frozen=True)
class GuardReport:
    window_size: int
    window: Window
    tripped: bool
    tripped_at: datetime | None
    reason: str | None


def trip_reason(window: Window, policy: Policy) -> str | None:
    """Why this window trips the guard, with the numbers; None when it does not."""
    bound = window.upper_bound
    target = policy.auto_approve_target_precision
    seen = (
        f"{window.failures} of the last {window.outcomes} reported outcomes of model {window.model_version} failed "
        f"(precision upper bound {bound:.4f}, Clopper-Pearson one-sided {CONFIDENCE:.0%}; target {target:g}; "
        f"window {policy.guard_window})"
        if bound is not None
        else ""
    )
    if window.failures >= policy.guard_max_failures:
        return f"auto-approval guard: {seen}: at least HITL_GUARD_MAX_FAILURES ({policy.guard_max_failures}) failures"
    if bound is not None and window.outcomes >= policy.guard_min_outcomes and bound < target:
        return f"auto-approval guard: {seen}: even the upper bound is below the target precision"
    return None


def trip_details(window: Window, policy: Policy, at: datetime) -> dict:
    return {
        "modelVersion": window.model_version,
        "outcomes": window.outcomes,
        "failures": window.failures,
        "precisionUpperBound": window.upper_bound,
        "targetPrecision": policy.auto_approve_target_precision,
        "maxFailures": policy.guard_max_failures,
        "windowSize": policy.guard_window,
        "trippedAt": at.isoformat(),
    }


async def window(*, session: AsyncSession, model_version: str | None, start_after: int, size: int) -> Window:
    if model_version is None:
        return Window(model_version=None, outcomes=0, failures=0)
    recent = (
        select(AutoApprovalOutcome.success)
        .where(AutoApprovalOutcome.model_version == model_version, AutoApprovalOutcome.id > start_after)
        .order_by(AutoApprovalOutcome.id.desc())
        .limit(size)
    )
    results = list((await session.exec(recent)).all())
    return Window(model_version=model_version, outcomes=len(results), failures=sum(1 for ok in results if not ok))


async def _in_force(*, session: AsyncSession, model_version: str) -> bool:
    """The active model, or an upstream one; not a model of ours that is no longer active."""
    row = (await session.exec(select(MlModel.active).where(MlModel.version == model_version))).first()
    return row is None or bool(row)


async def observe_outcome(*, session: AsyncSession, patch: Patch, policy: Policy) -> bool:
    """Store the outcome of an auto-approved patch and trip the guard when its window says so. Returns whether
    it tripped. The caller has recorded the outcome on the patch in this transaction."""
    if patch.status != PatchStatus.AUTO_APPROVED.value or patch.deployment_outcome is None or not patch.ml_prediction:
        return False
    version = str(patch.ml_prediction.get("modelVersion"))
    session.add(AutoApprovalOutcome(patch_id=patch.id, model_version=version, success=bool(patch.deployment_outcome), at=patch.outcome_at or utcnow()))
    await session.flush()
    await audit.lock_chain(session=session)  # held already after the outcome's audit append; made explicit
    state = await auto_approval.pause_state(session=session)
    if state.paused or not await _in_force(session=session, model_version=version):
        return False
    seen = await window(session=session, model_version=version, start_after=state.window_start_id, size=policy.guard_window)
    reason = trip_reason(seen, policy)
    if reason is None:
        return False
    details = trip_details(seen, policy, utcnow())
    await auto_approval.write_pause(session=session, actor=system_actor(GUARD_ACTOR), paused=True, reason=reason, trip=details)
    return True


async def report(*, session: AsyncSession, policy: Policy) -> GuardReport:
    """The guard as AutoApprovalState.guard shows it: the window of the active model (else of the model with the
    newest outcome), and the trip that paused auto-approval, if one did and nobody resumed since."""
    state = await auto_approval.pause_state(session=session)
    model = await ml_models.active(session=session)
    version = model.version if model is not None else None
    if version is None:
        newest = select(AutoApprovalOutcome.model_version).order_by(AutoApprovalOutcome.id.desc()).limit(1)
        version = (await session.exec(newest)).first()
    seen = await window(session=session, model_version=version, start_after=state.window_start_id, size=policy.guard_window)
    trip = state.trip if state.paused else None
    tripped_at = datetime.fromisoformat(trip["trippedAt"]) if trip and trip.get("trippedAt") else None
    return GuardReport(
        window_size=policy.guard_window, window=seen, tripped=trip is not None, tripped_at=tripped_at, reason=state.reason if trip else None
    )
