"""Human decisions and deployment outcomes: the status machine of API.md."""

from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import APPROVED_STATUSES, PatchEventKind, PatchStatus
from db.models import Approval, Patch
from db.services import guard, patches
from db.services.actor import Actor
from db.services.errors import Forbidden
from db.services.policy import Policy
from db.services.validation import LIMITS, text_field
from db.types import utcnow

# Allowed transitions; everything else is CONFLICT. AUTO_APPROVED is reached only through auto_approval.
TRANSITIONS = {
    PatchStatus.PENDING.value: {PatchStatus.APPROVED.value, PatchStatus.REJECTED.value, PatchStatus.ESCALATED.value, PatchStatus.CANCELLED.value},
    PatchStatus.ESCALATED.value: {PatchStatus.APPROVED.value, PatchStatus.REJECTED.value, PatchStatus.CANCELLED.value},
}


def require_transition(patch: Patch, target: PatchStatus) -> None:
    if target.value not in TRANSITIONS.get(patch.status, set()):
        raise patches.conflict(patch, f"a {patch.status} patch cannot become {target.value}")


def _require_decider(actor: Actor, patch: Patch, what: str) -> None:
    actor.require("decide", what)
    if (patch.requires_escalation or patch.status == PatchStatus.ESCALATED.value) and not actor.can("decide_escalated"):
        raise Forbidden(f"{what}: this patch {'is escalated' if patch.status == PatchStatus.ESCALATED.value else 'requires escalation'} and needs a LEAD or ADMIN")


def parse_reason(reason: str | None) -> str:
    return text_field(reason, field="reason", max_length=LIMITS["reason"], required=True, multiline=True).strip()


def parse_comment(comment: str | None) -> str | None:
    return text_field(comment, field="comment", max_length=LIMITS["comment"], multiline=True)


async def _decide(*, session: AsyncSession, actor: Actor, patch_id: str, target: PatchStatus, expected_version: int | None) -> Patch:
    patch = await patches.lock(session=session, patch_id=patch_id)
    require_transition(patch, target)
    patches.check_expected_version(patch, expected_version)
    return patch


def _finalize(patch: Patch, actor: Actor, status: PatchStatus, *, reason: str | None = None, comment: str | None = None) -> None:
    patch.status = status.value
    patch.decided_by, patch.decided_at = actor.subject, utcnow()
    patch.reason, patch.comment = reason, comment


async def approve(*, session: AsyncSession, actor: Actor, patch_id: str, comment: str | None = None, expected_version: int | None = None) -> Patch:
    actor.require("decide", "approving a patch")
    comment = parse_comment(comment)
    patch = await _decide(session=session, actor=actor, patch_id=patch_id, target=PatchStatus.APPROVED, expected_version=expected_version)
    approvers = await patches.approvers(session=session, patch_id=patch.id)
    kind, details, approval = approval_change(actor, patch, approvers, comment)
    await patches.record(session=session, patch=patch, action=kind.value, actor=actor, details=details, inserts=[approval])
    return patch


def check_approval(actor: Actor, patch: Patch, approvers: list[str]) -> None:
    """Whether this actor may approve this open patch now (role, escalation, self-approval, distinct approvers)."""
    _require_decider(actor, patch, "approving this patch")
    if actor.subject == patch.submitted_by:
        raise Forbidden("separation of duties: the submitter of a patch cannot approve it")
    if actor.subject in approvers:
        raise patches.conflict(patch, f"{actor.subject} has already approved this patch")


def check_rejection(actor: Actor, patch: Patch) -> None:
    _require_decider(actor, patch, "rejecting this patch")


def approval_change(actor: Actor, patch: Patch, approvers: list[str], comment: str | None) -> tuple[PatchEventKind, dict, Approval]:
    """The rules of an approval of a locked, open patch (role, escalation, self-approval, distinct approvers): the
    event kind, its details and the approval row, with the patch finalized when this approval completes it."""
    check_approval(actor, patch, approvers)
    # The unique (patch_id, approver) constraint backs this check; the row lock makes it race-free.
    approval = Approval(patch_id=patch.id, approver=actor.subject, comment=comment)
    count = len(approvers) + 1
    previous = patch.status
    if count >= patch.required_approvals:
        _finalize(patch, actor, PatchStatus.APPROVED, comment=comment)
        kind = PatchEventKind.APPROVED
    else:
        kind = PatchEventKind.APPROVAL_RECORDED
    details = {"from": previous, "comment": comment, "approvals": count, "requiredApprovals": patch.required_approvals}
    return kind, details, approval


def rejection_change(actor: Actor, patch: Patch, reason: str, comment: str | None) -> dict:
    """The rules of a rejection of a locked, open patch; finalizes it and returns the event's details."""
    check_rejection(actor, patch)
    previous = patch.status
    _finalize(patch, actor, PatchStatus.REJECTED, reason=reason, comment=comment)
    return {"from": previous, "reason": reason, "comment": comment}


async def reject(
    *, session: AsyncSession, actor: Actor, patch_id: str, reason: str, comment: str | None = None, expected_version: int | None = None
) -> Patch:
    actor.require("decide", "rejecting a patch")
    reason, comment = parse_reason(reason), parse_comment(comment)
    patch = await _decide(session=session, actor=actor, patch_id=patch_id, target=PatchStatus.REJECTED, expected_version=expected_version)
    details = rejection_change(actor, patch, reason, comment)
    await patches.record(session=session, patch=patch, action=PatchEventKind.REJECTED.value, actor=actor, details=details)
    return patch


async def escalate(*, session: AsyncSession, actor: Actor, patch_id: str, reason: str, expected_version: int | None = None) -> Patch:
    actor.require("escalate", "escalating a patch")
    reason = parse_reason(reason)
    patch = await _decide(session=session, actor=actor, patch_id=patch_id, target=PatchStatus.ESCALATED, expected_version=expected_version)
    if patch.requires_escalation and not actor.can("decide_escalated"):
        raise Forbidden("this patch requires escalation: only a LEAD or ADMIN may act on it")
    patch.status, patch.reason = PatchStatus.ESCALATED.value, reason
    await patches.record(
        session=session, patch=patch, action=PatchEventKind.ESCALATED.value, actor=actor, details={"from": PatchStatus.PENDING.value, "reason": reason}
    )
    return patch


async def cancel(*, session: AsyncSession, actor: Actor, patch_id: str, reason: str, expected_version: int | None = None) -> Patch:
    actor.require("cancel", "cancelling a patch")
    reason = parse_reason(reason)
    patch = await _decide(session=session, actor=actor, patch_id=patch_id, target=PatchStatus.CANCELLED, expected_version=expected_version)
    previous = patch.status
    _finalize(patch, actor, PatchStatus.CANCELLED, reason=reason)
    await patches.record(session=session, patch=patch, action=PatchEventKind.CANCELLED.value, actor=actor, details={"from": previous, "reason": reason})
    return patch


async def record_outcome(
    *, session: AsyncSession, actor: Actor, patch_id: str, success: bool, details: str | None = None, policy: Policy | None = None
) -> Patch:
    """The deployer's report for an approved or auto-approved patch: at most once, the strongest label. The outcome
    of an auto-approved patch also feeds the auto-approval guard (policy's guard settings), which may pause."""
    actor.require("record_evidence", "recording a deployment outcome")
    details = text_field(details, field="details", max_length=LIMITS["reason"], multiline=True)
    patch = await patches.lock(session=session, patch_id=patch_id)
    if patch.status not in {status.value for status in APPROVED_STATUSES}:
        raise patches.conflict(patch, f"a {patch.status} patch was never approved: no deployment outcome to record")
    if patch.deployment_outcome is not None:
        raise patches.conflict(patch, "the deployment outcome of this patch is already recorded")
    patch.deployment_outcome, patch.outcome_details, patch.outcome_at = bool(success), details, utcnow()
    await patches.record(
        session=session, patch=patch, action=PatchEventKind.OUTCOME_RECORDED.value, actor=actor, details={"success": bool(success), "details": details}
    )
    await guard.observe_outcome(session=session, patch=patch, policy=policy or Policy())
    return patch
