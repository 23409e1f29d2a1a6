"""The guard through the domain services on both backends: a shifted stream is submitted (the service predicts),
each auto-approved patch's true outcome is reported, and the guard pauses auto-approval itself."""

from sqlmodel import select

from db.engine import Database
from db.models import AuditEntry
from db.services import auto_approval, decisions, guard, ml_models, submission
from db.services.policy import Policy
from tests.support import guard as scenario
from tests.support.factories import ADMIN, SERVICE

POLICY = Policy()


async def _activate(db: Database) -> None:
    async with db.write() as session:
        await ml_models.store_and_activate(session=session, actor=ADMIN, model=scenario.model_row())


async def test_shift_trips_the_guard_then_nothing_is_auto_approved_and_resume_resets_the_window(database):
    await _activate(database)
    model = scenario.predictor()
    items = scenario.stream(3000, seed=11, shift=scenario.SHIFT)
    approved, failed, paused = await scenario.submit_and_report(database, items[:1500], model)
    assert paused and 1 <= failed <= POLICY.guard_max_failures, (approved, failed)

    async with database.read() as session:
        entry = (await session.exec(select(AuditEntry).where(AuditEntry.action == "AUTO_APPROVAL_PAUSED"))).one()
        report = await guard.report(session=session, policy=POLICY)
    assert entry.actor == "system:auto-approval-guard"
    assert entry.details["guard"]["failures"] == failed and entry.details["guard"]["outcomes"] == approved
    assert f"{failed} of the last {approved}" in entry.details["reason"]
    assert report.tripped and report.window.failures == failed and report.window.upper_bound < 0.99

    # Paused: the rest of the stream waits for reviewers, however confident the model is.
    later, _, _ = await scenario.submit_and_report(database, items[1500:1800], model, until_paused=False)
    assert later == 0

    async with database.write() as session:
        state = await auto_approval.set_paused(session=session, actor=ADMIN, paused=False, reason="family pinned upstream")
    assert not state.paused and state.trip is None
    async with database.read() as session:
        report = await guard.report(session=session, policy=POLICY)
    assert not report.tripped and report.window.outcomes == 0 and report.window.failures == 0
    # The old failures no longer count: the next failures start from zero.
    approved, failed, paused = await scenario.submit_and_report(database, items[1800:], model)
    assert paused and 1 <= failed <= POLICY.guard_max_failures, (approved, failed)


async def test_the_window_is_the_models_last_outcomes(database):
    await _activate(database)
    lenient = Policy(guard_window=50, guard_max_failures=10**6, guard_min_outcomes=10**6)  # never trips: watch the window
    reported: list[bool] = []
    for patch, works in scenario.stream(400, seed=21):
        async with database.write() as session:
            row, _ = await submission.submit(session=session, actor=SERVICE, data=scenario.submission_data(patch), policy=lenient, model=scenario.predictor())
            if row.status == "AUTO_APPROVED":
                await decisions.record_outcome(session=session, actor=SERVICE, patch_id=str(row.id), success=not works, policy=lenient)
                reported.append(not works)  # the truth inverted: plenty of failures to count
    async with database.read() as session:
        report = await guard.report(session=session, policy=lenient)
    assert len(reported) > 50
    assert (report.window.outcomes, report.window.failures) == (50, reported[-50:].count(False))
    assert not report.tripped
