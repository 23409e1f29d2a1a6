"""decideGroup: one reviewer's decision applied to every open member of a patch group, member by member.

Each member goes through the single-patch rules (db.services.decisions) and gets its own decision and audit
entry (details carry the group key); a member the caller may not decide is skipped with its code. The members
are row-locked in id order before anything is written, so concurrent group decisions, and a group decision racing
single decisions, decide each member exactly once.
"""

import uuid
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import Approval, Patch
from db.services import decisions, groups, patches
from db.services.actor import Actor
from db.services.errors import Conflict, Forbidden, NotFound
from db.enums import PatchEventKind, PatchStatus

SHOWN_IDS = 20  # ids named in a mismatch message


class GroupDecision(str, Enum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"


@dataclass
class Skip:
    patch: Patch
    code: str
    message: str


@dataclass
class GroupOutcome:
    key: str
    applied: list[Patch]
    skipped: list[Skip]


def _mismatch(found: set[uuid.UUID], expected: set[uuid.UUID]) -> Conflict:
    missing, unexpected = sorted(map(str, expected - found)), sorted(map(str, found - expected))
    parts = []
    if missing:
        parts.append(f"no longer pending: {', '.join(missing[:SHOWN_IDS])}{' …' if len(missing) > SHOWN_IDS else ''}")
    if unexpected:
        parts.append(f"new in the group: {', '.join(unexpected[:SHOWN_IDS])}{' …' if len(unexpected) > SHOWN_IDS else ''}")
    error = Conflict(f"the group's pending members changed ({'; '.join(parts)}): nothing was decided")
    error.extensions.update(missingMemberIds=missing, unexpectedMemberIds=unexpected)
    return error


async def _approvers(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """Who approved each member so far, read after the row locks (see patches.approvers)."""
    found: dict[uuid.UUID, list[str]] = {patch_id: [] for patch_id in ids}
    if ids:
        rows = (await session.exec(select(Approval.patch_id, Approval.approver).where(Approval.patch_id.in_(ids)))).all()
        for patch_id, approver in rows:
            found[patch_id].append(approver)
    return found


def _parse(actor: Actor, key: str, decision: GroupDecision) -> tuple[str, GroupDecision]:
    actor.require("decide", "deciding a patch group")
    return groups.parse_key(key), GroupDecision(decision)


def _refusal(actor: Actor, patch: Patch, decision: GroupDecision, approvers: list[str]) -> Skip | None:
    """Why the single-patch rules keep this actor from deciding this member now, or None."""
    try:
        if decision is GroupDecision.APPROVE:
            decisions.require_transition(patch, PatchStatus.APPROVED)
            decisions.check_approval(actor, patch, approvers)
        else:
            decisions.require_transition(patch, PatchStatus.REJECTED)
            decisions.check_rejection(actor, patch)
    except (Forbidden, Conflict) as refused:
        return Skip(patch=patch, code=refused.code, message=refused.message)
    return None


def _assess(actor: Actor, key: str, decision: GroupDecision, members: list[Patch], approvers: dict[uuid.UUID, list[str]]) -> GroupOutcome:
    """Which members this decision would apply to and which it would skip (with why), in queue order."""
    applied, skipped = [], []
    for patch in groups.queue_order(members):
        refusal = _refusal(actor, patch, decision, approvers.get(patch.id, []))
        if refusal is None:
            applied.append(patch)
        else:
            skipped.append(refusal)
    return GroupOutcome(key=key, applied=applied, skipped=skipped)


async def _evidence(session: AsyncSession, key: str, decision: GroupDecision, members: list[Patch]) -> dict[uuid.UUID, list[str]]:
    """The approvers of each member (for an approval); NOT_FOUND for a key no patch has."""
    if not members and await groups.summary(session=session, key=key) is None:
        raise NotFound(f"patch group {key} not found")
    return await _approvers(session, [member.id for member in members]) if decision is GroupDecision.APPROVE else {}


async def preview_group(*, session: AsyncSession, actor: Actor, key: str, decision: GroupDecision) -> GroupOutcome:
    """What `decide_group` would do for this actor now, under the same rules; writes and locks nothing. The members
    it lists are the ids to send as `expected_member_ids`."""
    key, decision = _parse(actor, key, decision)
    members = await groups.open_members(session=session, key=key)
    return _assess(actor, key, decision, members, await _evidence(session, key, decision, members))


async def decide_group(
    *,
    session: AsyncSession,
    actor: Actor,
    key: str,
    decision: GroupDecision,
    reason: str | None = None,
    comment: str | None = None,
    expected_member_ids: list[str] | None = None,
) -> GroupOutcome:
    key, decision = _parse(actor, key, decision)
    reason = decisions.parse_reason(reason) if decision is GroupDecision.REJECT or reason is not None else None
    comment = decisions.parse_comment(comment)
    expected = groups.parse_member_ids(expected_member_ids)
    members = await groups.lock_open_members(session=session, key=key)
    if expected is not None and {member.id for member in members} != expected:
        raise _mismatch({member.id for member in members}, expected)
    approvers = await _evidence(session, key, decision, members)
    outcome = _assess(actor, key, decision, members, approvers)
    changes = []
    for patch in outcome.applied:
        if decision is GroupDecision.APPROVE:
            kind, details, approval = decisions.approval_change(actor, patch, approvers[patch.id], comment)
            inserts = [approval]
        else:
            kind, details, inserts = PatchEventKind.REJECTED, decisions.rejection_change(actor, patch, reason, comment), []
        details = {**details, "groupKey": key}
        if decision is GroupDecision.APPROVE and reason is not None:
            details["reason"] = reason
        changes.append(patches.prepare(patch=patch, action=kind.value, actor=actor, details=details, inserts=inserts))
    await patches.record_many(session=session, changes=changes)
    return outcome
