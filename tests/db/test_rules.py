"""Auto-approval policy and its kill switch, SLA breaches, and the analytics summary."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update

from db.models import Patch

from db.services import analytics, audit_log, auto_approval, decisions, sla, submission
from db.services.errors import Forbidden
from db.services.policy import Policy
from db.types import utcnow
from tests.support.factories import ADMIN, LEAD, POLICY, REVIEWER, SERVICE, confident_prediction, passing_wargaming, submit


async def test_auto_approval_on_submission(database):
    patch = await submit(database, ml_prediction=confident_prediction(), wargaming=passing_wargaming())
    assert patch.status == "AUTO_APPROVED" and patch.decided_by == "system:auto-approval" and patch.version == 2
    async with database.read() as session:
        trail = (await audit_log.trails(session=session, decision_ids=[patch.id]))[patch.id]
    assert [(e.action, e.actor) for e in trail] == [("SUBMITTED", "service:upstream"), ("AUTO_APPROVED", "system:auto-approval")]


@pytest.mark.parametrize(
    "overrides",
    [
        {"ml_prediction": confident_prediction(0.94)},  # below the 0.95 floor
        {"ml_prediction": confident_prediction(0.99, prediction=False)},
        {"target_version": "3.0.0"},  # MAJOR bump
        {"wargaming": None},
        {"affected_systems": [f"sys-{i}" for i in range(10)]},  # requires escalation
    ],
)
async def test_auto_approval_policy_refusals(database, overrides):
    fields = {"ml_prediction": confident_prediction(), "wargaming": passing_wargaming(), **overrides}
    patch = await submit(database, **fields)
    assert patch.status == "PENDING" and not patch.auto_approval_eligible


async def test_auto_approval_on_wargaming_result(database):
    patch = await submit(database, ml_prediction=confident_prediction())
    assert patch.status == "PENDING" and patch.ml_wargaming_agreement is None
    async with database.write() as session:
        patch = await submission.record_wargaming(session=session, actor=SERVICE, patch_id=str(patch.id), data=passing_wargaming(), policy=POLICY)
    assert patch.status == "AUTO_APPROVED" and patch.ml_wargaming_agreement is True and patch.version == 3


async def test_disagreement_requires_escalation(database):
    patch = await submit(database, ml_prediction=confident_prediction(prediction=False), wargaming=passing_wargaming())
    assert patch.ml_wargaming_agreement is False and patch.requires_escalation and patch.status == "PENDING"


async def test_pause_stops_auto_approval_and_is_audited(database):
    with pytest.raises(Forbidden):
        async with database.write() as session:
            await auto_approval.set_paused(session=session, actor=LEAD, paused=True, reason="incident")
    async with database.write() as session:
        state = await auto_approval.set_paused(session=session, actor=ADMIN, paused=True, reason="incident 42")
    assert state.paused and state.changed_by == "adam"
    held = await submit(database, ml_prediction=confident_prediction(), wargaming=passing_wargaming())
    assert held.status == "PENDING" and held.auto_approval_eligible
    async with database.write() as session:
        await auto_approval.set_paused(session=session, actor=ADMIN, paused=False, reason="resolved")
    released = await submit(database, ml_prediction=confident_prediction(), wargaming=passing_wargaming())
    assert released.status == "AUTO_APPROVED"
    async with database.read() as session:
        entries = (await audit_log.page(session=session, flt=audit_log.AuditFilter(actor="adam"))).items
        state = await auto_approval.pause_state(session=session)
    assert [(e.action, e.details["reason"]) for e in entries] == [("AUTO_APPROVAL_PAUSED", "incident 42"), ("AUTO_APPROVAL_RESUMED", "resolved")]
    assert not state.paused and state.reason == "resolved"


async def test_pause_seen_by_a_second_process_connection(database_url):
    """Two independent engines (as two replicas would have): a pause on one stops auto-approval on the other."""
    from db.engine import Database

    first, second = Database.from_url(database_url), Database.from_url(database_url)
    try:
        async with first.write() as session:
            await auto_approval.set_paused(session=session, actor=ADMIN, paused=True, reason="stop")
        held = await submit(second, ml_prediction=confident_prediction(), wargaming=passing_wargaming())
        assert held.status == "PENDING"
    finally:
        await first.dispose()
        await second.dispose()


async def test_sla_breach_marked_once(database):
    policy = Policy(sla_auto_escalate=True)
    critical = await submit(database, severity="CRITICAL", target_version="2.31.1", policy=policy)
    low = await submit(database, severity="LOW", policy=policy)
    later = utcnow() + timedelta(seconds=301)
    async with database.write() as session:
        first = await sla.mark_breaches(session=session, policy=policy, now=later)
    async with database.write() as session:
        second = await sla.mark_breaches(session=session, policy=policy, now=later + timedelta(hours=1))
    assert [p.id for p in first] == [critical.id] and second == []
    assert first[0].status == "ESCALATED" and low.sla_deadline is None
    async with database.read() as session:
        trail = (await audit_log.trails(session=session, decision_ids=[critical.id]))[critical.id]
    assert [e.action for e in trail].count("SLA_BREACHED") == 1


async def test_sla_breach_once_under_concurrent_watchers(pg_database):
    for _ in range(10):
        await submit(pg_database, severity="CRITICAL", target_version="2.31.1")
    later = utcnow() + timedelta(seconds=301)

    async def watch():
        async with pg_database.write() as session:
            return len(await sla.mark_breaches(session=session, policy=POLICY, now=later))

    assert sum(await asyncio.gather(*(watch() for _ in range(4)))) == 10
    async with pg_database.read() as session:
        entries = (await audit_log.page(session=session, first=500, flt=audit_log.AuditFilter(action="SLA_BREACHED"))).items
    assert len(entries) == 10 and len({e.decision_id for e in entries}) == 10


async def test_analytics_summary(database):
    approved = await submit(database)
    rejected = await submit(database)
    await submit(database)  # stays pending
    auto = await submit(database, ml_prediction=confident_prediction(), wargaming=passing_wargaming())
    async with database.write() as session:
        await decisions.approve(session=session, actor=REVIEWER, patch_id=str(approved.id))
    async with database.write() as session:
        await decisions.reject(session=session, actor=REVIEWER, patch_id=str(rejected.id), reason="no")
    async with database.write() as session:
        await decisions.record_outcome(session=session, actor=SERVICE, patch_id=str(auto.id), success=True)
    async with database.write() as session:  # known decision times: 60 s and 600 s
        for patch, seconds in ((approved, 60), (rejected, 600)):
            await session.exec(update(Patch).where(Patch.id == patch.id).values(decided_at=patch.created_at + timedelta(seconds=seconds)))
    async with database.read() as session:
        summary = await analytics.summary(session=session, now=utcnow())
        empty = await analytics.summary(session=session, since=utcnow() + timedelta(days=1), now=utcnow())
    assert (summary.total_patches, summary.pending, summary.approved, summary.rejected, summary.auto_approved) == (4, 1, 1, 1, 1)
    assert summary.avg_decision_time_seconds == pytest.approx(330, abs=0.5)
    assert summary.p95_decision_time_seconds == pytest.approx(600, abs=0.5)
    assert summary.auto_approval_rate == pytest.approx(1 / 3) and summary.rejection_rate == pytest.approx(1 / 3)
    assert summary.ml_accuracy == 1.0 and summary.auto_approval_precision == 1.0 and summary.sla_breaches == 0
    assert empty.total_patches == 0 and empty.avg_decision_time_seconds is None and empty.auto_approval_rate == 0.0
