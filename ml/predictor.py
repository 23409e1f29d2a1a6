"""A loaded model: one patch -> prediction, confidence and a SHAP explanation.

Semantics of the returned dict (the MlPrediction of API.md, plus "bias"):
- "prediction": True when the model's probability p that the patch works is >= 0.5.
- "confidence": confidence in the stated prediction: p when the prediction is True, 1 - p when it is
  False, so it is always >= 0.5. The auto-approval policy compares it (with prediction True) to the
  model's calibrated threshold.
- "shapValues": exact TreeSHAP contributions (xgboost `pred_contribs=True`) of every feature, in log-odds
  of "works", sorted by |value| descending; positive values push towards "works".
- "bias": the expected log-odds (the SHAP base value). bias + sum(values) = the model's margin, and
  p = sigmoid(margin).
- "executionTimeMs": wall time of feature extraction + prediction + explanation.

Loading never unpickles anything: the artifact is xgboost UBJSON. A Predictor may be called from
several threads at once: xgboost (>= 1.4) documents prediction, SHAP included, as thread-safe for tree
models, provided nothing changes the booster meanwhile; its parameters are set once, at load.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import xgboost as xgb

from ml.features import FEATURE_NAMES, patch_features


class Predictor:
    def __init__(self, booster: xgb.Booster, *, version: str, feature_names: Sequence[str], threshold: float | None):
        names = list(feature_names)
        unknown = [n for n in names if n not in FEATURE_NAMES]
        if unknown:
            raise ValueError(f"model {version} uses features this code does not compute: {unknown[:5]}; retrain it")
        if booster.feature_names is not None and list(booster.feature_names) != names:
            raise ValueError(f"model {version}: feature_names do not match the names stored in the artifact")
        if booster.num_features() != len(names):
            raise ValueError(f"model {version} expects {booster.num_features()} features, {len(names)} names given")
        booster.set_param({"nthread": 1})
        self._booster = booster
        self.version = version
        self.feature_names = names
        self.threshold = threshold
        # Fast path when the model was trained on the current feature set in the current order.
        self._index = None if names == FEATURE_NAMES else np.array([FEATURE_NAMES.index(n) for n in names])
        self._contribs(np.full((1, len(names)), np.nan, dtype=np.float32))  # warm up lazy initialisation

    @classmethod
    def from_artifact(cls, artifact: bytes, *, version: str, feature_names: Sequence[str],
                      threshold: float | None) -> Predictor:
        booster = xgb.Booster()
        booster.load_model(bytearray(artifact))
        return cls(booster, version=version, feature_names=feature_names, threshold=threshold)

    def _features(self, patch: Any) -> np.ndarray:
        row = np.array(patch_features(patch), dtype=np.float32).reshape(1, -1)
        return row if self._index is None else row[:, self._index]

    def _contribs(self, row: np.ndarray) -> np.ndarray:
        dmatrix = xgb.DMatrix(row, nthread=1)
        return self._booster.predict(dmatrix, pred_contribs=True, validate_features=False)[0]

    def probability(self, patch: Any) -> float:
        """The model's probability that the patch works (no explanation)."""
        return float(self._booster.inplace_predict(self._features(patch), validate_features=False)[0])

    def predict(self, patch: Any) -> dict[str, Any]:
        started = time.perf_counter()
        contribs = self._contribs(self._features(patch))
        values = contribs[:-1].tolist()
        bias = float(contribs[-1])
        margin = bias + math.fsum(values)
        p = 1.0 / (1.0 + math.exp(-margin))
        prediction = p >= 0.5
        names = self.feature_names
        order = sorted(range(len(values)), key=lambda i: -abs(values[i]))
        shap = [{"feature": names[i], "value": values[i]} for i in order]
        return {
            "modelVersion": self.version,
            "confidence": p if prediction else 1.0 - p,
            "prediction": prediction,
            "shapValues": shap,
            "executionTimeMs": (time.perf_counter() - started) * 1000.0,
            "bias": bias,
        }
