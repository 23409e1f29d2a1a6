"""The analytics a lead reads as charts: how long human decisions take (a histogram), and the auto-approval and
rejection rates by priority and over time. Same window and definitions as the summary (db.services.analytics):
patches submitted in [since, until); decision time is submission → human decision (APPROVED, REJECTED); a rate
is a share of the decided patches (APPROVED, REJECTED, AUTO_APPROVED)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

from sqlalchemy import case, func, literal
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import PatchStatus, Priority
from db.models import Patch
from db.services.analytics import HUMAN_DECISIONS, created_within, ratio, seconds_between, sla_breached

# Decision-time histogram edges in seconds: [0, 1 min), [1, 5 min), ..., [1 day, ∞).
DECISION_TIME_EDGES = (0, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600)
# The over-time series has at most this many periods: the latest ones with submissions.
MAX_PERIODS = 400


class AnalyticsInterval(str, Enum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"


@dataclass(frozen=True)
class DecisionTimeBucket:
    from_seconds: float
    to_seconds: float | None  # None: no upper bound
    count: int


@dataclass(frozen=True)
class PriorityBreakdown:
    priority: Priority
    total: int
    pending: int
    approved: int
    rejected: int
    auto_approved: int
    escalated: int
    cancelled: int
    auto_approval_rate: float
    rejection_rate: float
    avg_decision_time_seconds: float | None
    sla_breaches: int


@dataclass(frozen=True)
class AnalyticsPeriod:
    start: datetime
    submitted: int
    approved: int
    rejected: int
    auto_approved: int
    auto_approval_rate: float
    rejection_rate: float


@dataclass(frozen=True)
class AnalyticsBreakdown:
    interval: AnalyticsInterval
    decision_times: list[DecisionTimeBucket]
    by_priority: list[PriorityBreakdown]
    over_time: list[AnalyticsPeriod]


async def breakdown(
    *, session: AsyncSession, since: datetime | None = None, until: datetime | None = None, interval: AnalyticsInterval = AnalyticsInterval.DAY,
    now: datetime,
) -> AnalyticsBreakdown:
    window = created_within(since, until)
    return AnalyticsBreakdown(
        interval=interval,
        decision_times=await _decision_times(session, window),
        by_priority=await _by_priority(session, window, now),
        over_time=await _over_time(session, window, interval),
    )


def _decision_duration(session: AsyncSession):  # noqa: ANN202 - an SQL expression
    return seconds_between(session.bind.dialect.name, Patch.created_at, Patch.decided_at)


async def _decision_times(session: AsyncSession, window: list) -> list[DecisionTimeBucket]:
    duration = _decision_duration(session)
    index = case(*((duration < edge, literal(i - 1)) for i, edge in enumerate(DECISION_TIME_EDGES) if i > 0), else_=len(DECISION_TIME_EDGES) - 1)
    decided = [*window, Patch.status.in_(HUMAN_DECISIONS), Patch.decided_at.is_not(None)]
    counts = dict((await session.exec(select(index, func.count()).where(*decided).group_by(index))).all())
    uppers = [*DECISION_TIME_EDGES[1:], None]
    return [
        DecisionTimeBucket(from_seconds=float(lower), to_seconds=float(upper) if upper is not None else None, count=int(counts.get(i, 0)))
        for i, (lower, upper) in enumerate(zip(DECISION_TIME_EDGES, uppers, strict=True))
    ]


async def _by_priority(session: AsyncSession, window: list, now: datetime) -> list[PriorityBreakdown]:
    statuses: dict[str, dict[str, int]] = defaultdict(dict)
    for priority, status, count in (await session.exec(select(Patch.priority, Patch.status, func.count()).where(*window).group_by(Patch.priority, Patch.status))).all():
        statuses[priority][status] = int(count)
    duration = _decision_duration(session)
    human = Patch.status.in_(HUMAN_DECISIONS) & Patch.decided_at.is_not(None)
    timing = {
        priority: (avg, int(breaches or 0))
        for priority, avg, breaches in (
            await session.exec(
                select(Patch.priority, func.avg(case((human, duration), else_=None)), func.sum(case((sla_breached(now), 1), else_=0)))
                .where(*window)
                .group_by(Patch.priority)
            )
        ).all()
    }
    rows = []
    for priority in (Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM, Priority.LOW):
        count = statuses.get(priority.value, {})
        approved, rejected, auto = (count.get(status.value, 0) for status in (PatchStatus.APPROVED, PatchStatus.REJECTED, PatchStatus.AUTO_APPROVED))
        avg, breaches = timing.get(priority.value, (None, 0))
        rows.append(
            PriorityBreakdown(
                priority=priority,
                total=sum(count.values()),
                pending=count.get(PatchStatus.PENDING.value, 0),
                approved=approved,
                rejected=rejected,
                auto_approved=auto,
                escalated=count.get(PatchStatus.ESCALATED.value, 0),
                cancelled=count.get(PatchStatus.CANCELLED.value, 0),
                auto_approval_rate=ratio(auto, approved + rejected + auto),
                rejection_rate=ratio(rejected, approved + rejected + auto),
                avg_decision_time_seconds=float(avg) if avg is not None else None,
                sla_breaches=breaches,
            )
        )
    return rows


def _period_start(dialect: str, interval: AnalyticsInterval):  # noqa: ANN202 - an SQL expression
    """The start of the UTC hour, day or week (Monday) of a patch's submission."""
    if dialect == "postgresql":
        return func.date_trunc(interval.value.lower(), func.timezone("UTC", Patch.created_at))
    if interval is AnalyticsInterval.HOUR:
        return func.strftime("%Y-%m-%d %H:00:00", Patch.created_at)
    if interval is AnalyticsInterval.DAY:
        return func.strftime("%Y-%m-%d 00:00:00", Patch.created_at)
    return func.strftime("%Y-%m-%d 00:00:00", Patch.created_at, "weekday 0", "-6 days")


def _as_utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=timezone.utc)


async def _over_time(session: AsyncSession, window: list, interval: AnalyticsInterval) -> list[AnalyticsPeriod]:
    start = _period_start(session.bind.dialect.name, interval).label("period")
    latest = select(start).where(*window).group_by(start).order_by(start.desc()).limit(MAX_PERIODS).subquery()
    counts: dict[object, dict[str, int]] = defaultdict(dict)
    query = select(start, Patch.status, func.count()).where(*window, start.in_(select(latest.c.period))).group_by(start, Patch.status)
    for period, status, count in (await session.exec(query)).all():
        counts[period][status] = int(count)
    periods = []
    for period in sorted(counts):
        count = counts[period]
        approved, rejected, auto = (count.get(status.value, 0) for status in (PatchStatus.APPROVED, PatchStatus.REJECTED, PatchStatus.AUTO_APPROVED))
        periods.append(
            AnalyticsPeriod(
                start=_as_utc(period),
                submitted=sum(count.values()),
                approved=approved,
                rejected=rejected,
                auto_approved=auto,
                auto_approval_rate=ratio(auto, approved + rejected + auto),
                rejection_rate=ratio(rejected, approved + rejected + auto),
            )
        )
    return periods
