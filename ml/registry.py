"""Whether a newly trained model may replace the active one: both judged on the new model's test rows.

The split is fixed per patch (ml.train.split_of), so neither model trained on those rows. "At least as good"
means no worse on both counts: log loss (a proper score: calibration matters, the threshold is a
confidence) and ROC AUC (ranking), each within 1e-9. Without an active model, or when the active one cannot
be evaluated (it uses features this code no longer computes), the new model is activated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.predictor import Predictor
from ml.train import TrainedModel, log_loss, roc_auc

TOLERANCE = 1e-9


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    auc = roc_auc(y, p)
    return {"logLoss": round(log_loss(y, p), 9), "auc": round(auc, 9) if auc is not None else None}


def compare(candidate: TrainedModel, incumbent: Predictor | None) -> dict[str, Any]:
    """The comparison stored in the candidate's metrics["comparison"]; its "activate" says whether to activate."""
    if incumbent is None:
        return {"against": None, "activate": True, "reason": "no active model"}
    if candidate.held_out is None or candidate.held_out[1].size == 0:
        return {"against": incumbent.version, "activate": False, "reason": "no held-out rows to compare on"}
    x, y = candidate.held_out
    y = y.astype(np.float64)
    new = Predictor.from_artifact(candidate.artifact, version=candidate.version, feature_names=candidate.feature_names,
                                  threshold=candidate.threshold)
    ours, theirs = _scores(y, new.probabilities(x)), _scores(y, incumbent.probabilities(x))
    worse = []
    if ours["logLoss"] > theirs["logLoss"] + TOLERANCE:
        worse.append(f"log loss {ours['logLoss']:.6f} > {theirs['logLoss']:.6f}")
    if ours["auc"] is not None and theirs["auc"] is not None and ours["auc"] < theirs["auc"] - TOLERANCE:
        worse.append(f"AUC {ours['auc']:.6f} < {theirs['auc']:.6f}")
    reason = ("worse than the active model " + incumbent.version + " on the same held-out rows: " + "; ".join(worse)) if worse else (
        "at least as good as the active model " + incumbent.version + " on the same held-out rows")
    return {"against": incumbent.version, "rows": int(y.size), "candidate": ours, "active": theirs, "activate": not worse, "reason": reason}
