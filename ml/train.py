"""Labelled history -> XGBoost booster, held-out metrics and a calibrated auto-approval threshold.

`train_model` is a pure, synchronous CPU function (no database, no event loop): call it from a worker
thread (`await asyncio.to_thread(train_model, patches)`); xgboost releases the GIL while it trains.

Labels (`label_for`): a reported deployment outcome is the truth; otherwise a human APPROVED is 1 and
REJECTED is 0. An AUTO_APPROVED patch without an outcome is not a label: learning from the model's own
verdicts would be a feedback loop.

The labelled patches are split by a hash of their upstream patchId into train (60%), validation (20%)
and test (20%): a patch stays in the same split in every training, so a model never trained on the test
rows of a later one, and trainModel can compare the active model with a new one on the new one's test
rows, unseen by both (see `compare`). Validation drives early stopping and the threshold calibration;
test is touched only to report metrics, so the reported precision at the chosen threshold is an honest
estimate.

Threshold: the smallest confidence t >= `threshold_floor` such that, on the validation split, the
patches the model calls "works" with probability >= t are labelled 1 at a rate >= `target_precision`,
over at least MIN_THRESHOLD_SUPPORT patches (a precision measured on a handful says nothing). When no
such t exists, or there are fewer than `min_labels` labels, the threshold is None and
metrics["autoApproval"] says why.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb

from ml import drift
from ml.features import FEATURE_NAMES, feature_matrix

MIN_TRAINABLE_LABELS = 20
MIN_THRESHOLD_SUPPORT = 50
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # train, validation, test
MAX_ROUNDS = 500
EARLY_STOPPING_ROUNDS = 30
CALIBRATION_BINS = 10
PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "tree_method": "hist",
    "max_depth": 4,
    "eta": 0.1,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "min_child_weight": 2.0,
    "lambda": 1.0,
}
_EPS = 1e-15


@dataclass(frozen=True)
class TrainedModel:
    version: str
    artifact: bytes  # booster.save_raw("ubj"): UBJSON, never pickle
    feature_names: list[str]
    threshold: float | None  # None: auto-approval off for this model (reason in metrics["autoApproval"])
    metrics: dict[str, Any]  # JSON-serialisable
    training_samples: int  # labelled patches used (train + validation + test)
    feature_profile: dict[str, Any] | None = None  # the training rows per feature (ml.drift.profile)
    # The test split's features and labels, to compare another model on the same rows (ml.registry); not stored.
    held_out: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)


def label_for(patch: Any) -> int | None:
    """1 (the patch works), 0 (it does not) or None (no label)."""
    outcome = getattr(patch, "deployment_outcome", None)
    if outcome is not None:
        return int(bool(outcome))
    status = getattr(patch, "status", None)
    status = getattr(status, "value", status)
    if status == "APPROVED":
        return 1
    if status == "REJECTED":
        return 0
    return None


# --- metrics (numpy only) ---------------------------------------------------------------------------


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Rank-based ROC AUC (Mann-Whitney U, ties get average ranks); None when only one class is present."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg_rank = first + (counts + 1) / 2.0  # 1-based average rank of each tie group
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.repeat(avg_rank, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_bins(labels: np.ndarray, probs: np.ndarray, bins: int = CALIBRATION_BINS) -> tuple[list[dict], float]:
    """Reliability diagram on equal-width bins, and the expected calibration error."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out, ece = [], 0.0
    for b in range(bins):
        mask = idx == b
        count = int(mask.sum())
        mean_p = float(p[mask].mean()) if count else None
        rate = float(y[mask].mean()) if count else None
        if count:
            ece += count / max(len(p), 1) * abs(mean_p - rate)
        out.append({"lower": b / bins, "upper": (b + 1) / bins, "count": count,
                    "meanPredicted": _r(mean_p), "observedRate": _r(rate)})
    return out, float(ece)


def _r(x: float | None, digits: int = 6) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), digits)


def rule_stats(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision, recall and coverage of "auto-approve when P(works) >= threshold"."""
    y = np.asarray(labels, dtype=bool)
    chosen = np.asarray(probs) >= threshold
    support = int(chosen.sum())
    tp = int((chosen & y).sum())
    positives = int(y.sum())
    return {
        "support": support,
        "precision": _r(tp / support) if support else None,
        "recall": _r(tp / positives) if positives else None,
        "coverage": _r(support / y.size) if y.size else None,
    }


def select_threshold(labels: np.ndarray, probs: np.ndarray, *, floor: float, target: float,
                     min_support: int = MIN_THRESHOLD_SUPPORT) -> tuple[float | None, str | None]:
    """Smallest t >= floor whose "P(works) >= t" set has precision >= target over >= min_support patches.

    Candidates are the floor and every score above it. Returns (threshold, None) or (None, reason).
    """
    y = np.asarray(labels, dtype=bool)
    p = np.asarray(probs, dtype=np.float32).astype(np.float64)
    ascending = np.sort(p)
    positives = np.sort(p[y])
    candidates = np.unique(np.concatenate(([floor], p[p > floor])))
    selected = p.size - np.searchsorted(ascending, candidates, side="left")
    true_pos = positives.size - np.searchsorted(positives, candidates, side="left")
    enough = selected >= min_support
    if not enough.any():
        return None, (f"fewer than {min_support} held-out patches reach the confidence floor {floor:g} "
                      f"(at most {int(selected.max(initial=0))}); more labelled history is needed")
    precision = np.where(selected > 0, true_pos / np.maximum(selected, 1), 0.0)
    ok = enough & (precision >= target)
    if ok.any():
        return float(candidates[int(np.argmax(ok))]), None
    best = int(np.argmax(np.where(enough, precision, -1.0)))
    return None, (f"held-out precision never reaches the target {target:g} at confidence >= {floor:g} "
                  f"(best {precision[best]:.4f} at {candidates[best]:.4f} over {int(selected[best])} patches)")


# --- training ---------------------------------------------------------------------------------------


def split_of(key: str) -> int:
    """0 train, 1 validation, 2 test: fixed for a patch (a hash of its patchId), whatever else is in the history."""
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64
    return 0 if u < SPLIT_FRACTIONS[0] else 1 if u < SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1] else 2


def _stable_split(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = np.fromiter((split_of(k) for k in keys), dtype=np.int8, count=len(keys))
    return tuple(np.flatnonzero(parts == i) for i in range(3))  # type: ignore[return-value]


def _split_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    if y.size == 0:
        return {"samples": 0}
    bins, ece = calibration_bins(y, p)
    return {
        "samples": int(y.size),
        "auc": _r(roc_auc(y, p)),
        "accuracy": _r(float(np.mean((p >= 0.5) == (y == 1)))),
        "logLoss": _r(log_loss(y, p)),
        "brierScore": _r(float(np.mean((p - y) ** 2))),
        "baseRate": _r(float(y.mean())),
        "expectedCalibrationError": _r(ece),
        "calibration": bins,
    }


def train_model(
    patches: Sequence[Any],
    *,
    seed: int = 42,
    nthread: int = 2,
    min_labels: int = 200,
    threshold_floor: float = 0.95,
    target_precision: float = 0.99,
    version: str | None = None,
    max_rounds: int = MAX_ROUNDS,
) -> TrainedModel:
    """Train on every labelled patch (see `label_for`); deterministic for a given seed and history.

    Raises ValueError when there is too little to learn from (fewer than MIN_TRAINABLE_LABELS labels,
    or a single class). `version` defaults to "xgb-" + a digest of the artifact.
    """
    if not 0.5 <= threshold_floor < 1.0:
        raise ValueError("threshold_floor must be in [0.5, 1)")
    if not 0.0 < target_precision <= 1.0:
        raise ValueError("target_precision must be in (0, 1]")
    if nthread < 1:
        raise ValueError("nthread must be >= 1")

    labelled = [(p, y) for p in patches if (y := label_for(p)) is not None]
    n = len(labelled)
    if n < MIN_TRAINABLE_LABELS:
        raise ValueError(f"only {n} labelled patches (deployment outcomes or human approvals/rejections); "
                         f"at least {MIN_TRAINABLE_LABELS} are needed to train a model")
    y = np.fromiter((lab for _, lab in labelled), dtype=np.float32, count=n)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == n:
        raise ValueError(f"all {n} labelled patches have the same label ({int(y[0])}); "
                         "a model needs both patches that worked and patches that did not")
    from_outcome = sum(getattr(p, "deployment_outcome", None) is not None for p, _ in labelled)
    x = feature_matrix(p for p, _ in labelled)

    train_idx, val_idx, test_idx = _stable_split([str(getattr(p, "patch_id", "")) for p, _ in labelled])
    dm = {name: xgb.DMatrix(x[idx], label=y[idx], feature_names=FEATURE_NAMES, nthread=nthread)
          for name, idx in (("train", train_idx), ("validation", val_idx), ("test", test_idx))}
    params = {**PARAMS, "seed": seed, "nthread": nthread}
    evals = [(dm["train"], "train"), (dm["validation"], "validation")] if val_idx.size else [(dm["train"], "train")]
    callbacks = []
    if val_idx.size:
        callbacks.append(xgb.callback.EarlyStopping(rounds=EARLY_STOPPING_ROUNDS, metric_name="logloss",
                                                    data_name="validation", save_best=True))
    booster = xgb.train(params, dm["train"], num_boost_round=max_rounds, evals=evals, callbacks=callbacks,
                        verbose_eval=False)
    rounds = booster.num_boosted_rounds()

    p_val = booster.predict(dm["validation"]).astype(np.float64) if val_idx.size else np.empty(0)
    p_test = booster.predict(dm["test"]).astype(np.float64) if test_idx.size else np.empty(0)
    y_val, y_test = y[val_idx].astype(np.float64), y[test_idx].astype(np.float64)

    # Trivial baseline: the training base rate as a constant prediction (majority class for accuracy).
    base_rate = float(y[train_idx].mean())
    majority = 1.0 if base_rate >= 0.5 else 0.0
    baseline = {
        "description": "constant prediction: training base rate (majority class for accuracy)",
        "predictedProbability": _r(base_rate),
        "auc": 0.5,
        "accuracy": _r(float(np.mean(y_test == majority))) if y_test.size else None,
        "logLoss": _r(log_loss(y_test, np.full_like(y_test, base_rate))) if y_test.size else None,
    }
    test_metrics = _split_metrics(y_test, p_test)

    # Auto-approval threshold, calibrated on validation, reported on test.
    auto: dict[str, Any] = {"targetPrecision": target_precision, "thresholdFloor": threshold_floor,
                            "minSupport": MIN_THRESHOLD_SUPPORT, "calibratedOn": "validation"}
    threshold: float | None = None
    if n < min_labels:
        reason = (f"only {n} labelled patches; at least {min_labels} are needed before an auto-approval "
                  "threshold is calibrated")
    else:
        threshold, reason = select_threshold(y_val, p_val, floor=threshold_floor, target=target_precision)
    if threshold is None:
        auto = {"enabled": False, "reason": reason, **auto}
    else:
        auto = {"enabled": True, "threshold": threshold, **rule_stats(y_val, p_val, threshold), **auto,
                "test": rule_stats(y_test, p_test, threshold)}
    if threshold is not None:
        test_metrics["autoApprovalAtThreshold"] = auto["test"]

    gain = booster.get_score(importance_type="gain")
    top = sorted(gain.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    metrics: dict[str, Any] = {
        "labels": {"total": n, "positive": n_pos, "negative": n - n_pos, "fromDeploymentOutcome": int(from_outcome),
                   "fromHumanDecision": int(n - from_outcome)},
        "split": {"by": "sha256(patchId)", "train": int(train_idx.size), "validation": int(val_idx.size),
                  "test": int(test_idx.size)},
        "model": {"library": f"xgboost {xgb.__version__}", "rounds": int(rounds),
                  "params": {k: v for k, v in params.items() if k != "nthread"}},
        "validation": {k: v for k, v in _split_metrics(y_val, p_val).items() if k != "calibration"},
        "test": test_metrics,
        "baseline": baseline,
        "improvementOverBaseline": {
            "auc": _r(test_metrics["auc"] - 0.5) if test_metrics.get("auc") is not None else None,
            "logLoss": _r(baseline["logLoss"] - test_metrics["logLoss"]) if y_test.size else None,
            "accuracy": _r(test_metrics["accuracy"] - baseline["accuracy"]) if y_test.size else None,
        },
        "autoApproval": auto,
        "topFeaturesByGain": [{"feature": k, "gain": _r(v)} for k, v in top],
    }

    artifact = bytes(booster.save_raw("ubj"))
    version = version or "xgb-" + hashlib.sha256(artifact).hexdigest()[:12]
    return TrainedModel(version=version, artifact=artifact, feature_names=list(FEATURE_NAMES),
                        threshold=threshold, metrics=metrics, training_samples=n,
                        feature_profile=drift.profile(x[train_idx], list(FEATURE_NAMES)),
                        held_out=(x[test_idx], y_test))
