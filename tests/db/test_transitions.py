"""Every allowed and forbidden status transition, and the role rules of API.md."""

import pytest
from sqlalchemy import event

from db.enums import PatchStatus
from db.services import comments, decisions, submission
from db.services.errors import Conflict, Forbidden, NotFound
from db.services import audit, audit_log, patches
from db.services.errors import BadUserInput
from tests.support.factories import (
    ADMIN,
    LEAD,
    POLICY,
    REVIEWER,
    REVIEWER2,
    SERVICE,
    VIEWER,
    confident_prediction,
    passing_wargaming,
    patch_data,
    submit,
)

REASON = "not safe"


async def _to_status(db, status: str):
    """A patch brought to `status` through the services."""
    if status == PatchStatus.AUTO_APPROVED.value:
        return await submit(db, ml_prediction=confident_prediction(), wargaming=passing_wargaming())
    patch = await submit(db)
    actions = {
        "PENDING": [],
        "ESCALATED": [lambda s: decisions.escalate(session=s, actor=REVIEWER, patch_id=str(patch.id), reason=REASON)],
        "APPROVED": [lambda s: decisions.approve(session=s, actor=REVIEWER, patch_id=str(patch.id))],
        "REJECTED": [lambda s: decisions.reject(session=s, actor=REVIEWER, patch_id=str(patch.id), reason=REASON)],
        "CANCELLED": [lambda s: decisions.cancel(session=s, actor=LEAD, patch_id=str(patch.id), reason=REASON)],
    }[status]
    for action in actions:
        async with db.write() as session:
            patch = await action(session)
    assert patch.status == status
    return patch


def _action(target: str, patch_id: str):
    return {
        "APPROVED": lambda s: decisions.approve(session=s, actor=LEAD, patch_id=patch_id),
        "REJECTED": lambda s: decisions.reject(session=s, actor=LEAD, patch_id=patch_id, reason=REASON),
        "ESCALATED": lambda s: decisions.escalate(session=s, actor=LEAD, patch_id=patch_id, reason=REASON),
        "CANCELLED": lambda s: decisions.cancel(session=s, actor=LEAD, patch_id=patch_id, reason=REASON),
    }[target]


ALLOWED = {
    ("PENDING", "APPROVED"), ("PENDING", "REJECTED"), ("PENDING", "ESCALATED"), ("PENDING", "CANCELLED"),
    ("ESCALATED", "APPROVED"), ("ESCALATED", "REJECTED"), ("ESCALATED", "CANCELLED"),
}  # fmt: skip
SOURCES = ["PENDING", "ESCALATED", "APPROVED", "REJECTED", "AUTO_APPROVED", "CANCELLED"]
TARGETS = ["APPROVED", "REJECTED", "ESCALATED", "CANCELLED"]


@pytest.mark.parametrize("source", SOURCES)
async def test_every_transition(database, source):
    for target in TARGETS:
        patch = await _to_status(database, source)
        before = await _audit_count(database)
        if (source, target) in ALLOWED:
            async with database.write() as session:
                result = await _action(target, str(patch.id))(session)
            assert result.status == target
            assert result.version == patch.version + 1
            assert await _audit_count(database) == before + 1
        else:
            with pytest.raises(Conflict) as caught:
                async with database.write() as session:
                    await _action(target, str(patch.id))(session)
            assert caught.value.extensions == {"currentStatus": source, "currentVersion": patch.version}
            assert await _audit_count(database) == before, "a failed change writes no audit entry"


async def _audit_count(db) -> int:
    async with db.read() as session:
        return await audit.head_seq(session=session)


async def test_viewer_and_service_cannot_decide(database):
    patch = await submit(database)
    for actor in (VIEWER, SERVICE):
        with pytest.raises(Forbidden):
            async with database.write() as session:
                await decisions.approve(session=session, actor=actor, patch_id=str(patch.id))
        with pytest.raises(Forbidden):
            async with database.write() as session:
                await decisions.reject(session=session, actor=actor, patch_id=str(patch.id), reason=REASON)
    with pytest.raises(Forbidden):
        async with database.write() as session:
            await decisions.cancel(session=session, actor=REVIEWER, patch_id=str(patch.id), reason=REASON)
    with pytest.raises(Forbidden):
        async with database.write() as session:
            await submission.submit(session=session, actor=REVIEWER, data=patch_data(), policy=POLICY)


async def test_requires_escalation_only_lead_or_admin(database):
    # A critical fix through a major version bump requires escalation.
    patch = await submit(database, severity="CRITICAL", current_version="1.9.0", target_version="2.0.0")
    assert patch.requires_escalation
    with pytest.raises(Forbidden):
        async with database.write() as session:
            await decisions.approve(session=session, actor=REVIEWER, patch_id=str(patch.id))
    with pytest.raises(Forbidden):
        async with database.write() as session:
            await decisions.reject(session=session, actor=REVIEWER, patch_id=str(patch.id), reason=REASON)
    async with database.write() as session:
        await decisions.approve(session=session, actor=LEAD, patch_id=str(patch.id))
    async with database.write() as session:
        result = await decisions.approve(session=session, actor=ADMIN, patch_id=str(patch.id))
    assert result.status == "APPROVED"


async def test_escalated_patch_needs_lead(database):
    patch = await _to_status(database, "ESCALATED")
    with pytest.raises(Forbidden):
        async with database.write() as session:
            await decisions.approve(session=session, actor=REVIEWER2, patch_id=str(patch.id))
    async with database.write() as session:
        assert (await decisions.reject(session=session, actor=LEAD, patch_id=str(patch.id), reason=REASON)).status == "REJECTED"


async def test_self_approval_refused(database):
    patch = await submit(database, actor=ADMIN)
    with pytest.raises(Forbidden):
        async with database.write() as session:
            await decisions.approve(session=session, actor=ADMIN, patch_id=str(patch.id))


async def test_critical_needs_two_distinct_approvers(database):
    patch = await submit(database, severity="CRITICAL", target_version="2.31.1")
    assert patch.required_approvals == 2 and not patch.requires_escalation
    async with database.write() as session:
        first = await decisions.approve(session=session, actor=REVIEWER, patch_id=str(patch.id))
    assert first.status == "PENDING" and first.version == 2
    with pytest.raises(Conflict):
        async with database.write() as session:
            await decisions.approve(session=session, actor=REVIEWER, patch_id=str(patch.id))
    async with database.write() as session:
        second = await decisions.approve(session=session, actor=REVIEWER2, patch_id=str(patch.id))
    assert second.status == "APPROVED" and second.version == 3
    async with database.read() as session:
        trail = (await audit_log.trails(session=session, decision_ids=[patch.id]))[patch.id]
    assert [entry.action for entry in trail] == ["SUBMITTED", "APPROVAL_RECORDED", "APPROVED"]


async def test_single_rejection_rejects_after_partial_approval(database):
    patch = await submit(database, severity="CRITICAL", target_version="2.31.1")
    async with database.write() as session:
        await decisions.approve(session=session, actor=REVIEWER, patch_id=str(patch.id))
    async with database.write() as session:
        assert (await decisions.reject(session=session, actor=REVIEWER2, patch_id=str(patch.id), reason=REASON)).status == "REJECTED"


async def test_expected_version_conflict(database):
    patch = await submit(database)
    async with database.write() as session:
        await submission.record_wargaming(
            session=session, actor=SERVICE, patch_id=str(patch.id), data=passing_wargaming(), policy=POLICY
        )
    with pytest.raises(Conflict) as caught:
        async with database.write() as session:
            await decisions.approve(session=session, actor=REVIEWER, patch_id=str(patch.id), expected_version=1)
    assert caught.value.extensions == {"currentStatus": "PENDING", "currentVersion": 2}


async def test_deployment_outcome_rules(database):
    pending = await submit(database)
    with pytest.raises(Conflict):
        async with database.write() as session:
            await decisions.record_outcome(session=session, actor=SERVICE, patch_id=str(pending.id), success=True)
    approved = await _to_status(database, "APPROVED")
    async with database.write() as session:
        result = await decisions.record_outcome(session=session, actor=SERVICE, patch_id=str(approved.id), success=False, details="rollback")
    assert result.deployment_outcome is False
    with pytest.raises(Conflict):
        async with database.write() as session:
            await decisions.record_outcome(session=session, actor=SERVICE, patch_id=str(approved.id), success=True)


async def test_unknown_patch_is_not_found(database):
    with pytest.raises(NotFound):
        async with database.write() as session:
            await decisions.approve(session=session, actor=REVIEWER, patch_id="00000000-0000-0000-0000-0000000000aa")


async def test_comments_are_threaded_and_audited(database):
    patch = await submit(database)
    async with database.write() as session:
        root = await comments.add(session=session, actor=REVIEWER, patch_id=str(patch.id), body="Why this version?")
    async with database.write() as session:
        reply = await comments.add(session=session, actor=LEAD, patch_id=str(patch.id), body="Fixes it.", parent_id=str(root.id))
    other = await submit(database)
    with pytest.raises(BadUserInput):
        async with database.write() as session:
            await comments.add(session=session, actor=REVIEWER, patch_id=str(other.id), body="x", parent_id=str(root.id))
    async with database.read() as session:
        thread = (await comments.for_patches(session=session, patch_ids=[patch.id]))[patch.id]
    assert [(c.author, c.parent_id) for c in thread] == [("rita", None), ("lena", root.id)]
    assert reply.parent_id == root.id


async def test_a_decision_writes_patch_approval_and_audit_entry_together(database):
    """The approval row, the patch's new state and its audit entry land in one transaction, and on PostgreSQL in
    one statement after the two reads (the decision path's round trips). A decision rolled back after that
    statement leaves none of the three."""
    patch = await submit(database, severity="CRITICAL", target_version="2.31.1")
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with database.write() as session:
            await decisions.approve(session=session, actor=REVIEWER, patch_id=str(patch.id), comment="looks right")
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
    if database.dialect == "postgresql":
        assert len(statements) == 3, statements
        assert "FOR UPDATE" in statements[0] and "FROM approvals" in statements[1]
        assert all(part in statements[2] for part in ("UPDATE patches", "INSERT INTO approvals", "hitl_audit_append"))
    with pytest.raises(RuntimeError):
        async with database.write() as session:
            await decisions.approve(session=session, actor=REVIEWER2, patch_id=str(patch.id))
            raise RuntimeError("rolled back after the write")
    async with database.read() as session:
        stored = await patches.get(session=session, patch_id=patch.id)
        approvals = (await patches.approvals_for(session=session, patch_ids=[patch.id]))[patch.id]
        trail = (await audit_log.trails(session=session, decision_ids=[patch.id]))[patch.id]
        assert (await audit.verify_chain(session=session)).valid
    assert (stored.status, stored.version, stored.decided_by, stored.updated_at > patch.updated_at) == ("PENDING", 2, None, True)
    assert [(a.approver, a.comment) for a in approvals] == [(REVIEWER.subject, "looks right")]
    assert [(e.action, e.details["version"], e.details["approvals"]) for e in trail[1:]] == [("APPROVAL_RECORDED", 2, 1)]
