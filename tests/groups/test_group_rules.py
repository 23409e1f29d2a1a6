"""Patch groups through the domain services, on SQLite and PostgreSQL: keys, counts, queue order, decisions."""

import pytest
from sqlmodel import func, select

from db.enums import Role
from db.models import AuditEntry, Patch
from db.services import audit, decisions, group_decisions, groups
from db.services.actor import Actor
from db.services.errors import BadUserInput, Conflict, Forbidden, NotFound
from db.types import utcnow
from tests.support.factories import LEAD, REVIEWER, REVIEWER2, SERVICE, submit

APPROVE, REJECT = group_decisions.GroupDecision.APPROVE, group_decisions.GroupDecision.REJECT
FIX = {"cve_id": "CVE-2024-3094", "package_name": "xz-utils", "current_version": "5.6.0", "target_version": "5.6.2"}


async def _page(db, **kwargs):
    async with db.read() as session:
        return await groups.group_page(session=session, now=utcnow(), **kwargs)


async def _decide(db, actor, key, decision=APPROVE, **kwargs):
    async with db.write() as session:
        return await group_decisions.decide_group(session=session, actor=actor, key=key, decision=decision, **kwargs)


async def _audit_count(db) -> int:
    async with db.read() as session:
        return (await session.exec(select(func.count()).select_from(AuditEntry))).one()


async def test_grouping_keys(database):
    a1 = await submit(database, **FIX, affected_systems=["billing"])
    a2 = await submit(database, **FIX, affected_systems=["search"])
    other_package = await submit(database, **{**FIX, "package_name": "liblzma"})
    other_target = await submit(database, **{**FIX, "target_version": "5.6.3"})
    no_cve_1 = await submit(database, **{**FIX, "cve_id": None})
    no_cve_2 = await submit(database, **{**FIX, "cve_id": None})
    page = await _page(database)
    members = {}
    for summary in page.items:
        async with database.read() as session:
            members[summary.key] = {row.id for row in (await groups.members_page(session=session, key=summary.key)).items}
    assert sorted(map(sorted, members.values())) == sorted(
        map(sorted, [{a1.id, a2.id}, {other_package.id}, {other_target.id}, {no_cve_1.id, no_cve_2.id}])
    )
    assert page.total_count == 4
    by_key = {summary.key: summary for summary in page.items}
    assert by_key[a1.group_key].size == 2 and by_key[a1.group_key].pending_count == 2
    assert by_key[a1.group_key].cve_id == "CVE-2024-3094" and by_key[no_cve_1.group_key].cve_id is None
    assert a1.group_key == a2.group_key and len({a1.group_key, other_package.group_key, other_target.group_key, no_cve_1.group_key}) == 4


async def test_queue_order_counts_and_paging(database):
    high = await submit(database, **FIX, severity="HIGH")
    await submit(database, **FIX, severity="LOW")
    critical = await submit(database, **{**FIX, "package_name": "openssh"}, severity="CRITICAL")
    escalated = await submit(database, **FIX, severity="MEDIUM")
    async with database.write() as session:
        await decisions.escalate(session=session, actor=REVIEWER, patch_id=str(escalated.id), reason="look")
    decided = await submit(database, **FIX, severity="MEDIUM")
    async with database.write() as session:
        await decisions.reject(session=session, actor=REVIEWER, patch_id=str(decided.id), reason="no")
    first = await _page(database, first=1)
    assert [g.key for g in first.items] == [critical.group_key] and first.has_next_page and first.total_count == 2
    second = await _page(database, first=1, after=first.end_cursor)
    assert [g.key for g in second.items] == [high.group_key] and not second.has_next_page
    group = second.items[0]
    assert (group.size, group.pending_count, group.highest_priority, group.requires_escalation_count) == (4, 3, "HIGH", 1)
    assert group.status_counts == {"PENDING": 2, "ESCALATED": 1, "REJECTED": 1}
    assert group.oldest_pending_at == high.created_at
    async with database.read() as session:
        pending = await groups.members_page(session=session, key=high.group_key, first=2)
        rest = await groups.members_page(session=session, key=high.group_key, first=2, after=pending.end_cursor)
        everything = await groups.members_page(session=session, key=high.group_key, pending_only=False)
    assert pending.total_count == 3 and len(pending.items) + len(rest.items) == 3 and not rest.has_next_page
    assert everything.total_count == 4
    filtered = await _page(database, flt=groups.queue.PendingFilter(priority=["CRITICAL"]))
    assert [g.key for g in filtered.items] == [critical.group_key]


async def test_mixed_group_decision(database):
    plain = await submit(database, **FIX)
    needs_lead = await submit(database, **FIX, affected_systems=[f"system-{i}" for i in range(12)])
    critical = await submit(database, **FIX, severity="CRITICAL")
    own = await submit(database, **FIX, actor=Actor(REVIEWER.subject, frozenset({Role.SERVICE})))
    decided = await submit(database, **FIX)
    async with database.write() as session:
        await decisions.reject(session=session, actor=LEAD, patch_id=str(decided.id), reason="duplicate")
    before = await _audit_count(database)

    outcome = await _decide(database, REVIEWER, plain.group_key, comment="same fix everywhere")
    applied = {row.id: row.status for row in outcome.applied}
    assert applied == {plain.id: "APPROVED", critical.id: "PENDING"}  # CRITICAL: one of two approvals
    skipped = {skip.patch.id: skip.code for skip in outcome.skipped}
    assert skipped == {needs_lead.id: "FORBIDDEN", own.id: "FORBIDDEN"}
    assert await _audit_count(database) == before + 2
    async with database.read() as session:
        entries = (await session.exec(select(AuditEntry).where(AuditEntry.seq > before).order_by(AuditEntry.seq))).all()
        assert {(e.decision_id, e.action) for e in entries} == {(plain.id, "APPROVED"), (critical.id, "APPROVAL_RECORDED")}
        assert all(e.details["groupKey"] == plain.group_key and e.actor == REVIEWER.subject for e in entries)
        assert (await audit.verify_chain(session=session)).valid

    again = await _decide(database, REVIEWER, plain.group_key)  # rita already approved the CRITICAL one
    assert {s.patch.id: s.code for s in again.skipped} == {needs_lead.id: "FORBIDDEN", own.id: "FORBIDDEN", critical.id: "CONFLICT"}
    assert again.applied == []
    second = await _decide(database, REVIEWER2, plain.group_key)  # rob did not submit rita's
    assert {row.id: row.status for row in second.applied} == {critical.id: "APPROVED", own.id: "APPROVED"}
    lead = await _decide(database, LEAD, plain.group_key, decision=REJECT, reason="wrong upstream")
    assert {row.id: row.status for row in lead.applied} == {needs_lead.id: "REJECTED"}
    async with database.read() as session:
        summary = await groups.summary(session=session, key=plain.group_key)
    assert summary.pending_count == 0 and summary.status_counts == {"APPROVED": 3, "REJECTED": 2}


async def test_expected_members_mismatch_writes_nothing(database):
    one = await submit(database, **FIX)
    two = await submit(database, **FIX)
    before = await _audit_count(database)
    with pytest.raises(Conflict) as caught:
        await _decide(database, REVIEWER, one.group_key, expected_member_ids=[str(one.id)])
    assert str(two.id) in caught.value.message and caught.value.extensions["unexpectedMemberIds"] == [str(two.id)]
    third = await submit(database, **FIX)
    with pytest.raises(Conflict) as caught:
        await _decide(database, REVIEWER, one.group_key, expected_member_ids=[str(one.id), str(two.id)])
    assert caught.value.extensions["unexpectedMemberIds"] == [str(third.id)]
    assert await _audit_count(database) == before + 1  # the third submission only
    async with database.read() as session:
        statuses = (await session.exec(select(Patch.status).where(Patch.group_key == one.group_key))).all()
    assert statuses == ["PENDING"] * 3
    ok = await _decide(database, REVIEWER, one.group_key, expected_member_ids=[str(one.id), str(two.id), str(third.id)])
    assert len(ok.applied) == 3


async def test_group_decision_refusals(database):
    patch = await submit(database, **FIX)
    with pytest.raises(Forbidden):
        await _decide(database, SERVICE, patch.group_key)
    with pytest.raises(BadUserInput) as caught:
        await _decide(database, REVIEWER, patch.group_key, decision=REJECT)
    assert caught.value.field == "reason"
    with pytest.raises(BadUserInput):
        await _decide(database, REVIEWER, "not-a-key")
    with pytest.raises(BadUserInput):
        await _decide(database, REVIEWER, patch.group_key, expected_member_ids=["nope"])
    with pytest.raises(NotFound):
        await _decide(database, REVIEWER, "0" * 32)


async def _preview(db, actor, key, decision=APPROVE):
    async with db.read() as session:
        return await group_decisions.preview_group(session=session, actor=actor, key=key, decision=decision)


def _shape(outcome):
    return [row.id for row in outcome.applied], [(skip.patch.id, skip.code, skip.message) for skip in outcome.skipped]


async def test_preview_is_the_decision_without_writing(database):
    plain = await submit(database, **FIX, severity="LOW")
    needs_lead = await submit(database, **FIX, affected_systems=[f"system-{i}" for i in range(12)])
    critical = await submit(database, **FIX, severity="CRITICAL")
    own = await submit(database, **FIX, actor=Actor(REVIEWER.subject, frozenset({Role.SERVICE})))
    async with database.write() as session:
        await decisions.approve(session=session, actor=REVIEWER2, patch_id=str(critical.id))  # one of two
    before = await _audit_count(database)

    previews = {
        (actor.subject, decision): await _preview(database, actor, plain.group_key, decision)
        for actor in (REVIEWER, REVIEWER2, LEAD)
        for decision in (APPROVE, REJECT)
    }
    assert _shape(previews[REVIEWER.subject, APPROVE]) == (
        [critical.id, plain.id],
        [(needs_lead.id, "FORBIDDEN", "approving this patch: this patch requires escalation and needs a LEAD or ADMIN"),
         (own.id, "FORBIDDEN", "separation of duties: the submitter of a patch cannot approve it")],
    )
    assert [skip.code for skip in previews[REVIEWER2.subject, APPROVE].skipped] == ["CONFLICT", "FORBIDDEN"]  # rob approved the CRITICAL one
    assert _shape(previews[LEAD.subject, REJECT])[1] == [] and await _audit_count(database) == before
    async with database.read() as session:
        assert (await session.exec(select(Patch.status).where(Patch.group_key == plain.group_key))).all() == ["PENDING"] * 4

    # the decision does what a preview taken just before it said, on the members it listed
    for actor, decision in ((REVIEWER, APPROVE), (LEAD, REJECT)):
        preview = await _preview(database, actor, plain.group_key, decision)
        listed = [str(row.id) for row in preview.applied] + [str(skip.patch.id) for skip in preview.skipped]
        outcome = await _decide(database, actor, plain.group_key, decision, reason="n/a", expected_member_ids=listed)
        assert _shape(outcome) == _shape(preview) and outcome.applied
    async with database.read() as session:
        open_left = select(func.count()).select_from(Patch).where(Patch.group_key == plain.group_key, Patch.status.in_(groups.OPEN_VALUES))
        assert (await session.exec(open_left)).one() == 0


async def test_preview_refusals(database):
    patch = await submit(database, **FIX)
    with pytest.raises(Forbidden):
        await _preview(database, SERVICE, patch.group_key)
    with pytest.raises(BadUserInput):
        await _preview(database, REVIEWER, "not-a-key")
    with pytest.raises(NotFound):
        await _preview(database, REVIEWER, "0" * 32)
    async with database.write() as session:
        await decisions.reject(session=session, actor=REVIEWER, patch_id=str(patch.id), reason="no")
    empty = await _preview(database, REVIEWER, patch.group_key)  # a group with nothing pending is not an error
    assert empty.applied == [] and empty.skipped == []
