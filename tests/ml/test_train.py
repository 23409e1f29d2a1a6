import json
import random

import numpy as np
import pytest

from ml.features import FEATURE_NAMES
from ml.synthetic import generate_patches
from ml.train import MIN_THRESHOLD_SUPPORT, TrainedModel, label_for, roc_auc, select_threshold, train_model
from tests.support.ml import NOW, make_patch


@pytest.fixture(scope="module")
def history():
    return generate_patches(3000, seed=11, now=NOW)


@pytest.fixture(scope="module")
def model(history) -> TrainedModel:
    return train_model(history, seed=5)


# --- labels -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome", "label"),
    [
        ("APPROVED", None, 1),
        ("REJECTED", None, 0),
        ("APPROVED", False, 0),  # the deployment outcome beats the human decision
        ("REJECTED", True, 1),
        ("AUTO_APPROVED", None, None),  # the model's own verdict is no label (no feedback loop)
        ("AUTO_APPROVED", True, 1),
        ("AUTO_APPROVED", False, 0),
        ("PENDING", None, None),
        ("ESCALATED", None, None),
        ("CANCELLED", None, None),
    ],
)
def test_label_for(status, outcome, label):
    assert label_for(make_patch(status=status, deployment_outcome=outcome)) == label


# --- metric helpers ---------------------------------------------------------------------------------


def test_roc_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = np.round(rng.random(300) + y * 0.3, 1)  # many ties
    pos, neg = s[y], s[~y]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert roc_auc(y, s) == pytest.approx(pairwise)
    assert roc_auc(np.ones(5), np.arange(5)) is None


def test_select_threshold_picks_the_smallest_qualifying_confidence():
    # 100 patches at 0.96 with 5 failures, then 100 at 0.98 with none.
    p = np.r_[np.full(100, 0.96), np.full(100, 0.98)]
    y = np.r_[np.ones(95), np.zeros(5), np.ones(100)]
    t, reason = select_threshold(y, p, floor=0.95, target=0.99)
    assert reason is None and t == pytest.approx(0.98)
    t, _ = select_threshold(y, p, floor=0.95, target=0.97)
    assert t == pytest.approx(0.95)  # the floor itself qualifies (97.5% over 200)
    t, reason = select_threshold(y, p, floor=0.99, target=0.9)
    assert t is None and "fewer than" in reason
    t, reason = select_threshold(y[:100], p[:100], floor=0.5, target=0.99)
    assert t is None and "never reaches" in reason


# --- training ---------------------------------------------------------------------------------------


def test_beats_the_trivial_baseline_on_held_out_data(model):
    m = model.metrics
    assert m["test"]["samples"] >= 400
    assert m["baseline"]["auc"] == 0.5
    assert m["test"]["auc"] >= 0.85
    assert m["improvementOverBaseline"]["auc"] >= 0.3
    assert m["test"]["logLoss"] <= m["baseline"]["logLoss"] - 0.1
    assert m["test"]["accuracy"] > m["baseline"]["accuracy"] + 0.03
    assert sum(b["count"] for b in m["test"]["calibration"]) == m["test"]["samples"]
    assert m["test"]["expectedCalibrationError"] < 0.1


def test_result_shape(model, history):
    assert model.feature_names == FEATURE_NAMES
    assert model.training_samples == sum(label_for(p) is not None for p in history)
    assert model.version.startswith("xgb-")
    assert model.artifact[:1] == b"{"  # UBJSON object, not a pickle
    json.dumps(model.metrics, allow_nan=False)
    auto = model.metrics["autoApproval"]
    assert auto["enabled"] is True and auto["threshold"] == model.threshold
    assert {"precision", "recall", "support", "coverage"} <= auto.keys()
    assert auto["precision"] >= 0.99 and auto["support"] >= MIN_THRESHOLD_SUPPORT
    assert {"precision", "recall", "coverage", "support"} == model.metrics["test"]["autoApprovalAtThreshold"].keys()


@pytest.mark.parametrize(("floor", "target"), [(0.5, 0.9), (0.8, 0.95), (0.95, 0.99), (0.97, 0.98), (0.99, 0.995)])
def test_threshold_is_never_below_the_floor(history, floor, target):
    trained = train_model(history, seed=5, threshold_floor=floor, target_precision=target)
    auto = trained.metrics["autoApproval"]
    if trained.threshold is None:
        assert auto["enabled"] is False and auto["reason"]
    else:
        assert trained.threshold >= floor
        assert auto["enabled"] is True and auto["threshold"] == trained.threshold
        assert auto["precision"] >= target and auto["support"] >= MIN_THRESHOLD_SUPPORT


def test_reachable_targets_do_enable_auto_approval(history):
    assert train_model(history, seed=5, threshold_floor=0.5, target_precision=0.9).threshold is not None


def test_unreachable_target_disables_auto_approval(history):
    # Labels that no feature can predict: no confidence region is 99% precise.
    rng = random.Random(0)
    noisy = [make_patch(patch_id=p.patch_id, current_version=p.current_version, target_version=p.target_version,
                        version_bump=p.version_bump, patch_size_lines=p.patch_size_lines, wargaming=p.wargaming,
                        status="APPROVED", deployment_outcome=rng.random() < 0.8)
             for p in history[:1500]]
    trained = train_model(noisy, threshold_floor=0.5, target_precision=0.99)
    assert trained.threshold is None
    auto = trained.metrics["autoApproval"]
    assert auto["enabled"] is False and "never reaches the target 0.99" in auto["reason"]


def test_too_few_labels_for_a_threshold(history):
    few = history[:300]
    n = sum(label_for(p) is not None for p in few)
    assert 20 <= n < 1000
    trained = train_model(few, min_labels=1000)
    assert trained.threshold is None
    auto = trained.metrics["autoApproval"]
    assert auto["enabled"] is False and f"only {n} labelled" in auto["reason"] and "1000" in auto["reason"]
    # The default min_labels (200).
    fewer = history[:150]
    trained = train_model(fewer)
    assert trained.threshold is None and "200" in trained.metrics["autoApproval"]["reason"]


def test_too_few_labels_to_train_raises(history):
    with pytest.raises(ValueError, match="at least 20"):
        train_model([make_patch(status="APPROVED")] * 5 + [make_patch(status="REJECTED")] * 5)
    with pytest.raises(ValueError, match="same label"):
        train_model([make_patch(status="APPROVED", patch_id=f"T{i}") for i in range(50)])
    with pytest.raises(ValueError, match="at least 20"):
        train_model([p for p in history if label_for(p) is None])


def test_deterministic(history, model):
    again = train_model(history, seed=5)
    assert again.artifact == model.artifact
    assert again.metrics == model.metrics
    assert again.version == model.version and again.threshold == model.threshold
    other = train_model(history, seed=6)
    assert other.artifact != model.artifact
    assert train_model(history, seed=5, version="v-test").version == "v-test"
