"""Serving and retraining glue: the active model per process, and training off the event loop."""

import asyncio
import logging

from db.engine import Database
from db.models import MlModel
from db.services import drift as drift_state
from db.services import ml_models
from db.services.actor import Actor, system_actor
from db.services.errors import Conflict
from db.services.policy import Policy
from db.types import utcnow
from ml import drift as drift_stats
from ml import registry
from ml.features import FEATURE_NAMES, feature_matrix
from ml.predictor import Predictor
from ml.train import MAX_ROUNDS, TrainedModel, train_model
from ml.training_job import TrainingJob

log = logging.getLogger(__name__)
RETRAIN_ACTOR = "system:retraining"
MIN_DRIFT_SAMPLES = 50  # fewer recent submissions than this say too little to compare distributions


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


def _train(patches: list, *, policy: Policy, nthread: int, incumbent: MlModel | None, max_rounds: int) -> tuple[TrainedModel, dict]:
    trained = train_model(
        patches,
        version=f"xgb-{utcnow():%Y%m%d%H%M%S%f}",
        nthread=nthread,
        min_labels=policy.auto_approve_min_labels,
        threshold_floor=policy.auto_approve_min_confidence,
        target_precision=policy.auto_approve_target_precision,
        max_rounds=max_rounds,
    )
    active = None
    if incumbent is not None:
        try:
            active = Predictor.from_artifact(incumbent.artifact, version=incumbent.version, feature_names=incumbent.feature_names,
                                             threshold=incumbent.threshold)
        except ValueError as exc:  # features this code no longer computes: it cannot be judged, nor kept serving
            log.warning("active model %s cannot be compared: %s", incumbent.version, exc)
    return trained, registry.compare(trained, active)


async def train_and_activate(*, db: Database, actor: Actor, policy: Policy, nthread: int, max_rounds: int = MAX_ROUNDS) -> MlModel:
    """Train on the decision history (off the event loop); activate the result only when it is at least as good
    as the active model on the same held-out rows (ml.registry), else store it inactive with the comparison."""
    async with db.read() as session:
        history = await ml_models.training_history(session=session)
        incumbent = await ml_models.active(session=session)
    # XGBoost releases the GIL while it trains; the worker thread keeps the event loop free.
    try:
        trained, comparison = await asyncio.to_thread(
            _train, history, policy=policy, nthread=nthread, incumbent=incumbent, max_rounds=max_rounds
        )
    except ValueError as exc:  # too few labels or a single class: the history cannot support a model yet
        raise Conflict(f"cannot train: {exc}") from None
    row = MlModel(
        version=trained.version,
        training_samples=trained.training_samples,
        threshold=trained.threshold,
        metrics={**trained.metrics, "comparison": comparison},
        feature_names=trained.feature_names,
        artifact=trained.artifact,
        feature_profile=trained.feature_profile,
        created_by=actor.subject,
    )
    async with db.write() as session:
        if comparison["activate"]:
            return await ml_models.store_and_activate(session=session, actor=actor, model=row)
        return await ml_models.store_inactive(session=session, actor=actor, model=row)


async def train_and_activate_cli(job: TrainingJob) -> str:
    db = Database.from_url(job.database_url, pool_min=1, pool_max=2)
    try:
        model = await train_and_activate(db=db, actor=system_actor(RETRAIN_ACTOR), policy=job.policy, nthread=job.nthread)
    finally:
        await db.dispose()
    state = model.metrics.get("autoApproval", {})
    if not model.active:
        return f"model {model.version} stored inactive: {model.metrics['comparison']['reason']}"
    return f"model {model.version} active: {model.training_samples} labelled patches, threshold {model.threshold}, auto-approval {state}"


def _drift(row: MlModel, recent: list) -> dict[str, float]:
    x = feature_matrix(recent)
    names = list(FEATURE_NAMES)
    return drift_stats.psi(row.feature_profile, x, names)


def top_features(model: MlModel, count: int = 10) -> list[str]:
    return [item["feature"] for item in (model.metrics.get("topFeaturesByGain") or [])[:count]]


async def check_drift(*, db: Database, window: int, threshold: float, pause: bool) -> dict | None:
    """PSI per feature of the active model: its training rows against the last `window` submissions. Stored for
    MlModel.drift and hitl_ml_feature_drift; with `pause`, a top feature past `threshold` pauses auto-approval.
    None when there is no active model, it has no training profile (trained before 0007), or too few submissions."""
    async with db.read() as session:
        model = await ml_models.active(session=session)
        recent = await drift_state.recent_patches(session=session, limit=window) if model is not None else []
    if model is None or not model.feature_profile or len(recent) < min(window, MIN_DRIFT_SAMPLES):
        return None
    psi = await asyncio.to_thread(_drift, model, recent)
    now = utcnow()
    async with db.write() as session:
        await drift_state.store(session=session, model_version=model.version, psi=psi, samples=len(recent), at=now)
        over = drift_state.drifted(psi, top_features(model), threshold)
        if pause and over:
            await drift_state.pause_on_drift(session=session, model_version=model.version, over=over, threshold=threshold, samples=len(recent))
    return {"modelVersion": model.version, "psi": psi, "samples": len(recent)}
