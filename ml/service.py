"""Serving and retraining glue: the active model per process, and training off the event loop."""

import asyncio
import logging

from db.engine import Database
from db.models import MlModel
from db.services import ml_models
from db.services.actor import Actor, system_actor
from db.services.errors import Conflict
from db.services.policy import Policy
from ml.predictor import Predictor
from ml.train import TrainedModel, train_model
from db.types import utcnow

log = logging.getLogger(__name__)
RETRAIN_ACTOR = "system:retraining"


class ModelHolder:
    """The active model of this process; swapped atomically when a new one is activated."""

    def __init__(self) -> None:
        self.current: Predictor | None = None
        self.version: str | None = None

    async def refresh(self, db: Database) -> Predictor | None:
        async with db.read() as session:
            row = await ml_models.active(session=session)
        if row is None:
            self.current, self.version = None, None
        elif row.version != self.version:
            self.current = Predictor.from_artifact(row.artifact, version=row.version, feature_names=row.feature_names, threshold=row.threshold)
            self.version = row.version
            log.info("model %s loaded (threshold %s)", row.version, row.threshold)
        return self.current


def _train(patches: list, *, policy: Policy, nthread: int) -> TrainedModel:
    return train_model(
        patches,
        version=f"xgb-{utcnow():%Y%m%d%H%M%S%f}",
        nthread=nthread,
        min_labels=policy.auto_approve_min_labels,
        threshold_floor=policy.auto_approve_min_confidence,
        target_precision=policy.auto_approve_target_precision,
    )


async def train_and_activate(*, db: Database, actor: Actor, policy: Policy, nthread: int) -> MlModel:
    """Train on the decision history (off the event loop) and activate the result."""
    async with db.read() as session:
        history = await ml_models.training_history(session=session)
    # XGBoost releases the GIL while it trains; the worker thread keeps the event loop free.
    try:
        trained = await asyncio.to_thread(_train, history, policy=policy, nthread=nthread)
    except ValueError as exc:  # too few labels or a single class: the history cannot support a model yet
        raise Conflict(f"cannot train: {exc}") from None
    row = MlModel(
        version=trained.version,
        training_samples=trained.training_samples,
        threshold=trained.threshold,
        metrics=trained.metrics,
        feature_names=trained.feature_names,
        artifact=trained.artifact,
        created_by=actor.subject,
    )
    async with db.write() as session:
        return await ml_models.store_and_activate(session=session, actor=actor, model=row)


async def train_and_activate_cli(settings) -> str:  # noqa: ANN001 - graphql_api.config.Settings
    db = Database.from_url(settings.effective_database_url, pool_min=1, pool_max=2)
    try:
        model = await train_and_activate(
            db=db, actor=system_actor(RETRAIN_ACTOR), policy=settings.policy(), nthread=settings.ml_nthread
        )
    finally:
        await db.dispose()
    state = model.metrics.get("autoApproval", {})
    return f"model {model.version} active: {model.training_samples} labelled patches, threshold {model.threshold}, auto-approval {state}"
