"""The analytics summary (also the source of the hitl_* gauges)."""

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Float, and_, case, cast, func, or_
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import PatchStatus
from db.models import Patch
from db.services.validation import aware

# Human decisions: the time a reviewer took. Auto-approvals are instant and would hide reviewer lag.
HUMAN_DECISIONS = (PatchStatus.APPROVED.value, PatchStatus.REJECTED.value)


@dataclass(frozen=True)
class Summary:
    total_patches: int
    pending: int
    approved: int
    rejected: int
    auto_approved: int
    escalated: int
    cancelled: int
    avg_decision_time_seconds: float | None
    p95_decision_time_seconds: float | None
    auto_approval_rate: float
    rejection_rate: float
    ml_accuracy: float | None
    sla_breaches: int
    auto_approval_precision: float | None


def seconds_between(dialect: str, start, end):  # noqa: ANN001, ANN201 - SQL expressions
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def created_within(since: datetime | None, until: datetime | None) -> list:
    """The window of a report: patches submitted in [since, until)."""
    window = []
    if since is not None:
        window.append(Patch.created_at >= aware(since, field="since"))
    if until is not None:
        window.append(Patch.created_at < aware(until, field="until"))
    return window


def sla_breached(now: datetime):  # noqa: ANN201 - an SQL condition
    """A patch that breached its SLA: recorded by the watcher, or past its deadline before its decision (or now)."""
    return and_(
        Patch.sla_deadline.is_not(None),
        or_(Patch.sla_breached_at.is_not(None), Patch.sla_deadline < func.coalesce(Patch.decided_at, now)),
    )


async def summary(*, session: AsyncSession, since: datetime | None = None, until: datetime | None = None, now: datetime) -> Summary:
    window = created_within(since, until)
    counts = dict((await session.exec(select(Patch.status, func.count()).where(*window).group_by(Patch.status))).all())
    count = lambda status: int(counts.get(status.value, 0))  # noqa: E731

    duration = seconds_between(session.bind.dialect.name, Patch.created_at, Patch.decided_at)
    decided = [*window, Patch.status.in_(HUMAN_DECISIONS), Patch.decided_at.is_not(None)]
    n_decided, avg_seconds = (await session.exec(select(func.count(), func.avg(duration)).where(*decided))).one()
    p95 = None
    if n_decided:
        rank = max(math.ceil(0.95 * n_decided) - 1, 0)  # nearest-rank percentile, same on every backend
        p95 = (await session.exec(select(duration).where(*decided).order_by(duration).offset(rank).limit(1))).one()

    breached = sla_breached(now)
    as_float = lambda condition: cast(case((condition, 1.0), else_=0.0), Float)  # noqa: E731
    accuracy, breaches = (
        await session.exec(
            select(
                func.avg(case((Patch.ml_wargaming_agreement.is_(None), None), else_=as_float(Patch.ml_wargaming_agreement.is_(True)))),
                func.coalesce(func.sum(case((breached, 1), else_=0)), 0),
            ).where(*window)
        )
    ).one()
    precision = (
        await session.exec(
            select(func.avg(as_float(Patch.deployment_outcome.is_(True)))).where(
                *window, Patch.status == PatchStatus.AUTO_APPROVED.value, Patch.deployment_outcome.is_not(None)
            )
        )
    ).one()

    approved, rejected, auto = count(PatchStatus.APPROVED), count(PatchStatus.REJECTED), count(PatchStatus.AUTO_APPROVED)
    decisions = approved + rejected + auto
    return Summary(
        total_patches=sum(int(value) for value in counts.values()),
        pending=count(PatchStatus.PENDING),
        approved=approved,
        rejected=rejected,
        auto_approved=auto,
        escalated=count(PatchStatus.ESCALATED),
        cancelled=count(PatchStatus.CANCELLED),
        avg_decision_time_seconds=float(avg_seconds) if avg_seconds is not None else None,
        p95_decision_time_seconds=float(p95) if p95 is not None else None,
        auto_approval_rate=ratio(auto, decisions),
        rejection_rate=ratio(rejected, decisions),
        ml_accuracy=float(accuracy) if accuracy is not None else None,
        sla_breaches=int(breaches),
        auto_approval_precision=float(precision) if precision is not None else None,
    )
