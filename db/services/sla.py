"""SLA breaches: the first breach of an open patch appends exactly one SLA_BREACHED event."""

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import OPEN_STATUSES, PatchEventKind, PatchStatus
from db.models import Patch
from db.services import patches
from db.services.actor import system_actor
from db.services.policy import SLA_ACTOR, Policy


async def mark_breaches(*, session: AsyncSession, policy: Policy, now: datetime, limit: int = 100) -> list[Patch]:
    """Flag open patches past their deadline. Safe on any number of replicas: rows are claimed under a lock
    (SKIP LOCKED on PostgreSQL) and `sla_breached_at IS NULL` is re-checked on the locked row."""
    statement = (
        select(Patch)
        .where(Patch.status.in_([s.value for s in OPEN_STATUSES]), Patch.sla_breached_at.is_(None), Patch.sla_deadline < now)
        .order_by(Patch.sla_deadline)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    breached = list((await session.exec(statement)).all())
    actor = system_actor(SLA_ACTOR)
    for patch in breached:
        patch.sla_breached_at = now
        details = {"deadline": patch.sla_deadline.isoformat(), "priority": patch.priority, "escalated": False}
        if policy.sla_auto_escalate and patch.status == PatchStatus.PENDING.value:
            patch.status, patch.reason = PatchStatus.ESCALATED.value, "SLA breached"
            details["escalated"] = True
        await patches.record(session=session, patch=patch, action=PatchEventKind.SLA_BREACHED.value, actor=actor, details=details)
    return breached
