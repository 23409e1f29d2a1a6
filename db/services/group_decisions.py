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
    actor.require("decide", "deciding a patch group")
    key = groups.parse_key(key)
    decision = GroupDecision(decision)
    reason = decisions.parse_reason(reason) if decision is GroupDecision.REJECT or reason is not None else None
    comment = decisions.parse_comment(comment)
    expected = groups.parse_member_ids(expected_member_ids)
    members = await groups.lock_open_members(session=session, key=key)
    if expected is not None and {member.id for member in members} != expected:
        raise _mismatch({member.id for member in members}, expected)
    if not members and await groups.summary(session=session, key=key) is None:
        raise NotFound(f"patch group {key} not found")
    approvers = await _approvers(session, [member.id for member in members]) if decision is GroupDecision.APPROVE else {}
    changes, applied, skipped = [], [], []
    for patch in groups.queue_order(members):
        try:
            if decision is GroupDecision.APPROVE:
                decisions.require_transition(patch, PatchStatus.APPROVED)
                kind, details, approval = decisions.approval_change(actor, patch, approvers[patch.id], comment)
                inserts = [approval]
            else:
                decisions.require_transition(patch, PatchStatus.REJECTED)
                kind, details, inserts = PatchEventKind.REJECTED, decisions.rejection_change(actor, patch, reason, comment), []
        except (Forbidden, Conflict) as refused:
            skipped.append(Skip(patch=patch, code=refused.code, message=refused.message))
            continue
        details = {**details, "groupKey": key}
        if decision is GroupDecision.APPROVE and reason is not None:
            details["reason"] = reason
        changes.append(patches.prepare(patch=patch, action=kind.value, actor=actor, details=details, inserts=inserts))
        applied.append(patch)
    await patches.record_many(session=session, changes=changes)
    return GroupOutcome(key=key, applied=applied, skipped=skipped)

