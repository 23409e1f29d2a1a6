"""The model registry: versioned xgboost artifacts in the database, one active at a time."""

from sqlalchemy import update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import APPROVED_STATUSES, PatchStatus, SystemAction
from db.models import SYSTEM_DECISION_ID, MlModel, Patch
from db.services import audit
from db.services.actor import Actor

LABELLED_STATUSES = (PatchStatus.APPROVED.value, PatchStatus.REJECTED.value, *(s.value for s in APPROVED_STATUSES))


async def active(*, session: AsyncSession) -> MlModel | None:
    return (await session.exec(select(MlModel).where(MlModel.active.is_(True)))).first()


async def training_history(*, session: AsyncSession) -> list[Patch]:
    """Decided patches: the candidates for labels (ml.train.label_for picks the usable ones)."""
    return list((await session.exec(select(Patch).where(Patch.status.in_(set(LABELLED_STATUSES))).order_by(Patch.created_at, Patch.id))).all())


async def store_and_activate(*, session: AsyncSession, actor: Actor, model: MlModel) -> MlModel:
    actor.require("administer", "activating a model")
    await session.exec(update(MlModel).where(MlModel.active.is_(True)).values(active=False))
    model.active = True
    model.created_by = actor.subject
    session.add(model)
    await session.flush()
    details = {
        "version": model.version,
        "trainingSamples": model.training_samples,
        "threshold": model.threshold,
        "autoApproval": model.metrics.get("autoApproval"),
    }
    await audit.append(session=session, decision_id=SYSTEM_DECISION_ID, action=SystemAction.MODEL_ACTIVATED.value, actor=actor, details=details)
    return model
