"""Feature drift of the active model as last measured (ml.service.check_drift computes it), and the optional
pause when a top feature drifts (HITL_DRIFT_PAUSE), through the kill switch's own path like the guard."""

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import Patch, ServiceState
from db.services import audit, auto_approval
from db.services.actor import system_actor
from db.services.guard import GUARD_ACTOR
from db.types import utcnow

STATE_KEY = "model_drift"


async def recent_patches(*, session: AsyncSession, limit: int) -> list[Patch]:
    """The last `limit` submissions, whatever became of them (served by ix_patches_created)."""
    return list((await session.exec(select(Patch).order_by(Patch.created_at.desc(), Patch.id.desc()).limit(limit))).all())


async def store(*, session: AsyncSession, model_version: str, psi: dict[str, float], samples: int, at: datetime) -> None:
    """Keep the newest measurement (a measurement, not a change of the service: no audit entry)."""
    row = await session.get(ServiceState, STATE_KEY, with_for_update=True) or ServiceState(key=STATE_KEY)
    row.value = {"modelVersion": model_version, "psi": psi, "samples": samples, "at": at.isoformat()}
    row.updated_at, row.updated_by = at, "system:drift-check"
    session.add(row)
    await session.flush()


async def latest(*, session: AsyncSession) -> dict | None:
    row = await session.get(ServiceState, STATE_KEY)
    return dict(row.value) if row is not None else None


def drifted(psi: dict[str, float], features: list[str], threshold: float) -> dict[str, float]:
    """The given (top) features whose PSI exceeds the threshold."""
    return {name: psi[name] for name in features if psi.get(name, 0.0) > threshold}


async def pause_on_drift(*, session: AsyncSession, model_version: str, over: dict[str, float], threshold: float, samples: int) -> bool:
    """Pause auto-approval because top features drifted (unless it is paused already). Returns whether it paused."""
    await audit.lock_chain(session=session)
    if not over or (await auto_approval.pause_state(session=session)).paused:
        return False
    listed = ", ".join(f"{name} {value:.3f}" for name, value in sorted(over.items(), key=lambda kv: -kv[1]))
    reason = f"auto-approval guard: feature drift of model {model_version} over the last {samples} submissions: PSI {listed} > {threshold:g}"
    trip = {"modelVersion": model_version, "drift": over, "psiThreshold": threshold, "samples": samples, "trippedAt": utcnow().isoformat()}
    await auto_approval.write_pause(session=session, actor=system_actor(GUARD_ACTOR), paused=True, reason=reason, trip=trip)
    return True
