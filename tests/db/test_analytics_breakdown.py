"""The analytics breakdown (the console's charts): decision-time histogram, rates by priority, rates per period."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from db.models import Patch
from db.services import analytics, analytics_breakdown, decisions
from db.services.analytics_breakdown import AnalyticsInterval
from db.services.errors import BadUserInput
from db.types import utcnow
from tests.support.factories import REVIEWER, confident_prediction, passing_wargaming, submit

MONDAY = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)


async def _decide(database, patch, *, approve: bool, after_seconds: float) -> None:
    async with database.write() as session:
        if approve:
            await decisions.approve(session=session, actor=REVIEWER, patch_id=str(patch.id))
        else:
            await decisions.reject(session=session, actor=REVIEWER, patch_id=str(patch.id), reason="breaks the build")
    async with database.write() as session:
        await session.exec(update(Patch).where(Patch.id == patch.id).values(decided_at=patch.created_at + timedelta(seconds=after_seconds)))


async def _move(database, patch, created_at: datetime) -> None:
    """Submission time set by hand (decision times are kept relative to it)."""
    shift = created_at - patch.created_at
    async with database.write() as session:
        row = await session.get(Patch, patch.id)
        decided = row.decided_at + shift if row.decided_at is not None else None
        await session.exec(update(Patch).where(Patch.id == patch.id).values(created_at=created_at, decided_at=decided))


async def test_breakdown_counts_rates_and_decision_times(database):
    quick_approved = await submit(database, severity="HIGH")
    high_rejected = await submit(database, severity="HIGH")
    high_approved = await submit(database, severity="HIGH")
    await submit(database, severity="LOW")  # stays pending
    await submit(database, severity="HIGH", ml_prediction=confident_prediction(), wargaming=passing_wargaming())  # auto-approved
    await _decide(database, quick_approved, approve=True, after_seconds=30)  # [0, 1 min)
    await _decide(database, high_rejected, approve=False, after_seconds=400)  # [5, 15 min)
    await _decide(database, high_approved, approve=True, after_seconds=2 * 86400)  # [1 day, ∞)

    async with database.read() as session:
        report = await analytics_breakdown.breakdown(session=session, now=utcnow())
        summary = await analytics.summary(session=session, now=utcnow())

    histogram = [(bucket.from_seconds, bucket.to_seconds, bucket.count) for bucket in report.decision_times]
    assert histogram == [
        (0, 60, 1), (60, 300, 0), (300, 900, 1), (900, 1800, 0), (1800, 3600, 0), (3600, 14400, 0), (14400, 86400, 0), (86400, None, 1),
    ]
    rows = {row.priority.value: row for row in report.by_priority}
    assert list(rows) == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    high = rows["HIGH"]
    assert (high.total, high.approved, high.rejected, high.auto_approved, high.pending) == (4, 2, 1, 1, 0)
    assert high.auto_approval_rate == pytest.approx(1 / 4) and high.rejection_rate == pytest.approx(1 / 4)
    assert high.avg_decision_time_seconds == pytest.approx((30 + 400 + 2 * 86400) / 3, abs=1)
    assert (rows["LOW"].total, rows["LOW"].pending, rows["LOW"].avg_decision_time_seconds) == (1, 1, None)
    assert rows["MEDIUM"].total == 0 and rows["MEDIUM"].auto_approval_rate == 0.0
    # The same definitions as the summary: the rows add up to it.
    assert sum(row.total for row in report.by_priority) == summary.total_patches
    assert sum(row.rejected for row in report.by_priority) == summary.rejected
    assert sum(bucket.count for bucket in report.decision_times) == summary.approved + summary.rejected


async def test_breakdown_periods_follow_the_submission_time(database):
    patches = [await submit(database, severity="HIGH") for _ in range(4)]
    await _decide(database, patches[0], approve=True, after_seconds=60)
    await _decide(database, patches[1], approve=False, after_seconds=60)
    moments = [MONDAY, MONDAY + timedelta(hours=3), MONDAY + timedelta(days=6, hours=14), MONDAY + timedelta(days=7)]
    for patch, moment in zip(patches, moments, strict=True):
        await _move(database, patch, moment)

    async with database.read() as session:
        days = await analytics_breakdown.breakdown(session=session, interval=AnalyticsInterval.DAY, now=utcnow())
        weeks = await analytics_breakdown.breakdown(session=session, interval=AnalyticsInterval.WEEK, now=utcnow())
        hours = await analytics_breakdown.breakdown(
            session=session, interval=AnalyticsInterval.HOUR, since=MONDAY, until=MONDAY + timedelta(days=1), now=utcnow()
        )

    assert [(p.start, p.submitted, p.approved, p.rejected) for p in days.over_time] == [
        (datetime(2026, 3, 2, tzinfo=timezone.utc), 2, 1, 1),
        (datetime(2026, 3, 8, tzinfo=timezone.utc), 1, 0, 0),
        (datetime(2026, 3, 9, tzinfo=timezone.utc), 1, 0, 0),
    ]
    assert days.over_time[0].rejection_rate == pytest.approx(0.5)
    # Weeks start on Monday: Sunday the 8th belongs to the week of the 2nd.
    assert [(p.start, p.submitted) for p in weeks.over_time] == [
        (datetime(2026, 3, 2, tzinfo=timezone.utc), 3), (datetime(2026, 3, 9, tzinfo=timezone.utc), 1),
    ]
    assert [(p.start, p.submitted) for p in hours.over_time] == [
        (datetime(2026, 3, 2, 9, tzinfo=timezone.utc), 1), (datetime(2026, 3, 2, 12, tzinfo=timezone.utc), 1),
    ]
    assert sum(row.total for row in hours.by_priority) == 2


async def test_breakdown_keeps_the_latest_periods(database, monkeypatch):
    monkeypatch.setattr(analytics_breakdown, "MAX_PERIODS", 2)
    patches = [await submit(database) for _ in range(3)]
    for day, patch in enumerate(patches):
        await _move(database, patch, MONDAY + timedelta(days=day))
    async with database.read() as session:
        report = await analytics_breakdown.breakdown(session=session, now=utcnow())
    assert [p.start.day for p in report.over_time] == [3, 4]


async def test_breakdown_needs_offsets_on_its_window(database):
    async with database.read() as session:
        with pytest.raises(BadUserInput) as refused:
            await analytics_breakdown.breakdown(session=session, since=datetime(2026, 1, 1), now=utcnow())  # noqa: DTZ001
    assert refused.value.extensions["field"] == "since"
