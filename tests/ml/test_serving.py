"""The model in service: trained on history in the database, stored, activated, predicting and
explaining new submissions, and gating auto-approval with its calibrated threshold. Real models only."""

import os
import subprocess
import sys

import pytest

from ml.demo import load_patches
from db.services import ml_models
from db.services.actor import system_actor
from db.services.errors import Conflict
from db.services.policy import Policy
from ml.service import ModelHolder, train_and_activate
from ml.synthetic import generate_patches
from tests.support.factories import passing_wargaming, submit

ADMIN = system_actor("test:admin")


async def _trained(db, policy: Policy, n: int = 1500):
    await load_patches(db, generate_patches(n, seed=7))
    model = await train_and_activate(db=db, actor=ADMIN, policy=policy, nthread=2)
    holder = ModelHolder()
    return model, await holder.refresh(db)


@pytest.mark.slow
async def test_submission_without_prediction_is_predicted_and_explained(database):
    model, predictor = await _trained(database, Policy())
    assert model.threshold is not None and model.threshold >= 0.95 and model.metrics["autoApproval"]["enabled"]
    patch = await submit(database, patch_id="NEW-1", model=predictor, wargaming=passing_wargaming())
    prediction = patch.ml_prediction
    assert prediction["modelVersion"] == model.version and prediction["source"] == "model"
    assert 0.5 <= prediction["confidence"] <= 1.0 and prediction["executionTimeMs"] > 0
    assert {item["feature"] for item in prediction["shapValues"]} == set(model.feature_names)
    # Auto-approved exactly when the policy holds at the model's calibrated threshold.
    expected = prediction["prediction"] and prediction["confidence"] >= model.threshold
    assert (patch.status == "AUTO_APPROVED") == expected


@pytest.mark.slow
async def test_too_few_labels_keeps_auto_approval_off(database):
    policy = Policy(auto_approve_min_labels=100_000)
    model, predictor = await _trained(database, policy, n=400)
    assert model.threshold is None and not model.metrics["autoApproval"]["enabled"]
    assert "label" in model.metrics["autoApproval"]["reason"]
    confident = [await submit(database, patch_id=f"NEW-{i}", model=predictor, policy=policy, wargaming=passing_wargaming()) for i in range(20)]
    assert all(p.status == "PENDING" for p in confident)
    async with database.read() as session:
        assert (await ml_models.active(session=session)).version == model.version


async def test_training_needs_labels(database):
    with pytest.raises(Conflict, match="at least"):
        await train_and_activate(db=database, actor=ADMIN, policy=Policy(), nthread=1)


@pytest.mark.slow
async def test_retraining_activates_the_new_model_only(database):
    first, _ = await _trained(database, Policy(), n=600)
    second = await train_and_activate(db=database, actor=ADMIN, policy=Policy(), nthread=2)
    async with database.read() as session:
        active = await ml_models.active(session=session)
    assert active.version == second.version != first.version


@pytest.mark.slow
def test_hitl_ml_train_command(pg_database_url):
    env = {**os.environ, "HITL_DATABASE_URL": pg_database_url}
    demo = subprocess.run([sys.executable, "-m", "graphql_api.cli", "demo", "--count", "800"], env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert "SYNTHETIC" in demo.stdout
    trained = subprocess.run([sys.executable, "-m", "graphql_api.cli", "ml", "train"], env=env, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.startswith("model xgb-") and "labelled patches" in trained.stdout
