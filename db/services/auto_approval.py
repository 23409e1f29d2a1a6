"""The auto-approval kill switch (stored in the database so it applies to every replica) and the policy step."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import PatchEventKind, PatchStatus, SystemAction
from db.models import SYSTEM_DECISION_ID, Patch, ServiceState
from db.services import audit, patches
from db.services.actor import Actor, system_actor
from db.services.policy import AUTO_APPROVAL_ACTOR, Policy, auto_approval_verdict, escalation_reasons, ml_wargaming_agreement
from db.services.validation import text_field
from db.types import utcnow

STATE_KEY = "auto_approval"


class ActiveModel(Protocol):
    """What the rules need from the serving model (ml.predictor provides it)."""

    version: str
    threshold: float | None  # None: auto-approval is off for this model

    def predict(self, patch: Patch) -> dict: ...


@dataclass(frozen=True)
class PauseState:
    paused: bool
    reason: str | None
    changed_by: str | None
    changed_at: datetime | None


def threshold_in_force(policy: Policy, model: ActiveModel | None) -> float | None:
    """The active model's calibrated threshold; without a model, upstream predictions meet the configured floor."""
    if model is None:
        return policy.auto_approve_min_confidence
    if model.threshold is None:
        return None
    return max(model.threshold, policy.auto_approve_min_confidence)


async def pause_state(*, session: AsyncSession, for_decision: bool = False) -> PauseState:
    statement = select(ServiceState).where(ServiceState.key == STATE_KEY)
    if for_decision and session.bind.dialect.name == "postgresql":
        # Shared lock: a concurrent pause waits for this decision, and this decision sees a committed pause.
        statement = statement.with_for_update(read=True)
    row = (await session.exec(statement)).first()
    if row is None:
        return PauseState(paused=False, reason=None, changed_by=None, changed_at=None)
    return PauseState(
        paused=bool(row.value.get("paused")), reason=row.value.get("reason"), changed_by=row.updated_by, changed_at=row.updated_at
    )


async def set_paused(*, session: AsyncSession, actor: Actor, paused: bool, reason: str) -> PauseState:
    actor.require("administer", "pausing auto-approval")
    reason = text_field(reason, field="reason", max_length=4000, required=True, multiline=True).strip()
    # The audit lock before the row lock: the order every auto-approval takes them in (audit.lock_chain).
    await audit.lock_chain(session=session)
    row = await session.get(ServiceState, STATE_KEY, with_for_update=True)
    now = utcnow()
    if row is None:
        row = ServiceState(key=STATE_KEY)
    row.value = {"paused": paused, "reason": reason}
    row.updated_at, row.updated_by = now, actor.subject
    session.add(row)
    await session.flush()
    action = SystemAction.AUTO_APPROVAL_PAUSED if paused else SystemAction.AUTO_APPROVAL_RESUMED
    await audit.append(session=session, decision_id=SYSTEM_DECISION_ID, action=action.value, actor=actor, details={"reason": reason})
    return PauseState(paused=paused, reason=reason, changed_by=actor.subject, changed_at=now)


async def reevaluate(*, session: AsyncSession, patch: Patch, policy: Policy, model: ActiveModel | None) -> bool:
    """Refresh the derived flags after new evidence; auto-approve when the policy holds and nothing paused it.

    Returns True when the patch was auto-approved (its own audit entry, actor system:auto-approval).
    """
    patch.ml_wargaming_agreement = ml_wargaming_agreement(patch)
    patch.requires_escalation = bool(escalation_reasons(policy, patch))
    threshold = threshold_in_force(policy, model)
    verdict = auto_approval_verdict(policy, patch, threshold=threshold)
    patch.auto_approval_eligible = verdict.eligible
    if not verdict.eligible or (await pause_state(session=session, for_decision=True)).paused:
        return False
    patch.status = PatchStatus.AUTO_APPROVED.value
    patch.decided_by, patch.decided_at = AUTO_APPROVAL_ACTOR, utcnow()
    details = {
        "from": PatchStatus.PENDING.value,
        "confidence": patch.ml_prediction["confidence"],
        "threshold": threshold,
        "modelVersion": patch.ml_prediction["modelVersion"],
    }
    await patches.record(
        session=session, patch=patch, action=PatchEventKind.AUTO_APPROVED.value, actor=system_actor(AUTO_APPROVAL_ACTOR), details=details
    )
    return True
