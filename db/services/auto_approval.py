"""The auto-approval kill switch (stored in the database so it applies to every replica) and the policy step."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import PatchEventKind, PatchStatus, SystemAction
from db.models import SYSTEM_DECISION_ID, AutoApprovalOutcome, Patch, ServiceState
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

    def predict_many(self, patches: list[Patch]) -> list[dict]: ...  # one model call for many rows

    async def explain(self, patch: Patch) -> dict: ...  # `predict` off the event loop, batched with concurrent calls


@dataclass(frozen=True)
class PauseState:
    paused: bool
    reason: str | None
    changed_by: str | None
    changed_at: datetime | None
    # The guard's part (db.services.guard): its window holds the outcomes after this id (0: all), and
    # `trip` is what it saw when it paused (None unless the guard paused and nobody resumed since).
    window_start_id: int = 0
    trip: dict | None = None


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
    return _state(row)


def _state(row: ServiceState) -> PauseState:
    value = row.value
    return PauseState(
        paused=bool(value.get("paused")),
        reason=value.get("reason"),
        changed_by=row.updated_by,
        changed_at=row.updated_at,
        window_start_id=int(value.get("windowStartId") or 0),
        trip=value.get("trip"),
    )


async def set_paused(*, session: AsyncSession, actor: Actor, paused: bool, reason: str) -> PauseState:
    """The kill switch (ADMIN). Resuming also starts a new guard window: outcomes seen before do not count."""
    actor.require("administer", "pausing auto-approval")
    reason = text_field(reason, field="reason", max_length=4000, required=True, multiline=True).strip()
    return await write_pause(session=session, actor=actor, paused=paused, reason=reason)


async def write_pause(*, session: AsyncSession, actor: Actor, paused: bool, reason: str, trip: dict | None = None) -> PauseState:
    """The one path that pauses or resumes auto-approval, for the kill switch and the guard alike: one row every
    replica reads at each decision (approve_if_allowed), and one audit entry."""
    # The audit lock before the row lock: the order every auto-approval takes them in (audit.lock_chain).
    await audit.lock_chain(session=session)
    row = await session.get(ServiceState, STATE_KEY, with_for_update=True)
    now = utcnow()
    if row is None:
        row = ServiceState(key=STATE_KEY)
    previous = dict(row.value or {})
    value: dict = {"paused": paused, "reason": reason, "windowStartId": int(previous.get("windowStartId") or 0)}
    if paused:
        # An ADMIN's pause over a tripped guard keeps what the guard saw.
        value["trip"] = trip if trip is not None else previous.get("trip")
    else:
        value["windowStartId"] = await last_outcome_id(session=session)
    row.value = value
    row.updated_at, row.updated_by = now, actor.subject
    session.add(row)
    await session.flush()
    action = SystemAction.AUTO_APPROVAL_PAUSED if paused else SystemAction.AUTO_APPROVAL_RESUMED
    details: dict = {"reason": reason}
    if trip is not None:
        details["guard"] = trip
    elif not paused:
        details["guardWindowStartsAfter"] = value["windowStartId"]
    await audit.append(session=session, decision_id=SYSTEM_DECISION_ID, action=action.value, actor=actor, details=details)
    return _state(row)


async def last_outcome_id(*, session: AsyncSession) -> int:
    return int((await session.exec(select(func.coalesce(func.max(AutoApprovalOutcome.id), 0)))).one())


def derive_flags(*, patch: Patch, policy: Policy, model: ActiveModel | None) -> float | None:
    """Set the flags that follow from a patch's evidence (agreement, escalation, eligibility); return the
    threshold in force. Pure: the caller writes them with the change that brought the evidence."""
    patch.ml_wargaming_agreement = ml_wargaming_agreement(patch)
    patch.requires_escalation = bool(escalation_reasons(policy, patch))
    threshold = threshold_in_force(policy, model)
    patch.auto_approval_eligible = auto_approval_verdict(policy, patch, threshold=threshold).eligible
    return threshold


async def approve_if_allowed(*, session: AsyncSession, patch: Patch, threshold: float | None) -> bool:
    """Auto-approve an eligible patch (derive_flags) unless the kill switch is on: its own audit entry, actor
    system:auto-approval. The caller holds the patch's row (locked, or inserted in this transaction)."""
    if not patch.auto_approval_eligible or (await pause_state(session=session, for_decision=True)).paused:
        return False
    details = _auto_approve(patch, threshold)
    await patches.record(session=session, patch=patch, action=PatchEventKind.AUTO_APPROVED.value, actor=AUTO_APPROVER, details=details)
    return True


async def approvals_if_allowed(*, session: AsyncSession, rows: list[Patch], thresholds: dict[str, float | None]) -> list[patches.Change]:
    """`approve_if_allowed` for many patches inserted in this transaction, as changes for `patches.record_many`:
    the pause is read once, under the chain lock (taken first, the lock order of set_paused)."""
    eligible = [row for row in rows if row.auto_approval_eligible]
    if not eligible:
        return []
    await audit.lock_chain(session=session)
    if (await pause_state(session=session, for_decision=True)).paused:
        return []
    return [
        patches.prepare(patch=row, action=PatchEventKind.AUTO_APPROVED.value, actor=AUTO_APPROVER, details=_auto_approve(row, thresholds[row.patch_id]))
        for row in eligible
    ]


AUTO_APPROVER = system_actor(AUTO_APPROVAL_ACTOR)


def _auto_approve(patch: Patch, threshold: float | None) -> dict:
    patch.status = PatchStatus.AUTO_APPROVED.value
    patch.decided_by, patch.decided_at = AUTO_APPROVAL_ACTOR, utcnow()
    return {
        "from": PatchStatus.PENDING.value,
        "confidence": patch.ml_prediction["confidence"],
        "threshold": threshold,
        "modelVersion": patch.ml_prediction["modelVersion"],
    }
