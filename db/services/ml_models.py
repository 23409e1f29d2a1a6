"""The model registry: versioned xgboost artifacts in the database, one active at a time."""

from sqlalchemy import update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import APPROVED_STATUSES, PatchStatus, SystemAction
from db.models import SYSTEM_DECISION_ID, MlModel, Patch
from db.services import audit
from db.services.actor import Actor
from db.services.errors import BadUserInput, NotFound
from db.services.validation import text_field

LABELLED_STATUSES = (PatchStatus.APPROVED.value, PatchStatus.REJECTED.value, *(s.value for s in APPROVED_STATUSES))
MAX_LISTED = 100


async def active(*, session: AsyncSession) -> MlModel | None:
    return (await session.exec(select(MlModel).where(MlModel.active.is_(True)))).first()


async def newest(*, session: AsyncSession, first: int | None) -> list[MlModel]:
    """The registry, newest first (mlModels; `first` null means the default 20)."""
    first = 20 if first is None else first
    if not 1 <= first <= MAX_LISTED:
        raise BadUserInput(f"first must be between 1 and {MAX_LISTED}", field="first")
    return list((await session.exec(select(MlModel).order_by(MlModel.trained_at.desc(), MlModel.version.desc()).limit(first))).all())


async def training_history(*, session: AsyncSession) -> list[Patch]:
    """Decided patches: the candidates for labels (ml.train.label_for picks the usable ones)."""
    return list((await session.exec(select(Patch).where(Patch.status.in_(set(LABELLED_STATUSES))).order_by(Patch.created_at, Patch.id))).all())


async def _activate(*, session: AsyncSession, actor: Actor, model: MlModel, details: dict) -> MlModel:
    """Make `model` the one active model and audit it (MODEL_ACTIVATED: every replica's hub loads it)."""
    await session.exec(update(MlModel).where(MlModel.active.is_(True), MlModel.id != model.id).values(active=False))
    await session.flush()
    model.active = True
    session.add(model)
    await session.flush()
    details = {"version": model.version, "trainingSamples": model.training_samples, "threshold": model.threshold,
               "autoApproval": model.metrics.get("autoApproval"), **details}
    await audit.append(session=session, decision_id=SYSTEM_DECISION_ID, action=SystemAction.MODEL_ACTIVATED.value, actor=actor, details=details)
    return model


async def store_and_activate(*, session: AsyncSession, actor: Actor, model: MlModel) -> MlModel:
    actor.require("administer", "activating a model")
    model.created_by = actor.subject
    session.add(model)
    await session.flush()
    return await _activate(session=session, actor=actor, model=model, details={"trained": True})


async def store_inactive(*, session: AsyncSession, actor: Actor, model: MlModel) -> MlModel:
    """Keep a trained model that did not earn activation (the comparison is in its metrics)."""
    actor.require("administer", "storing a model")
    model.active = False
    model.created_by = actor.subject
    session.add(model)
    await session.flush()
    return model


async def activate(*, session: AsyncSession, actor: Actor, version: str) -> MlModel:
    """activateModel: roll back or forward by hand (ADMIN)."""
    actor.require("administer", "activating a model")
    version = text_field(version, field="version", max_length=64, required=True).strip()
    model = (await session.exec(select(MlModel).where(MlModel.version == version).with_for_update())).first()
    if model is None:
        raise NotFound(f"no model {version!r} in the registry")
    if model.active:
        return model
    previous = await active(session=session)
    return await _activate(session=session, actor=actor, model=model, details={"previous": previous.version if previous else None, "byHand": True})
