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

import asyncio
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import xgboost as xgb

from ml.features import FEATURE_NAMES, feature_matrix, patch_features

EXPLAINED_ROWS = 4096  # ~1 MB of SHAP values (53 float32 a row with the current features)


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
        self._explained_rows: OrderedDict[bytes, np.ndarray] = OrderedDict()  # row bytes -> SHAP values, oldest first
        self._explained_lock = threading.Lock()
        self._booster.predict(  # lazy initialisation, before the first request
            xgb.DMatrix(np.full((1, len(names)), np.nan, dtype=np.float32), nthread=1), pred_contribs=True, validate_features=False)
        self._batchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> _Batcher

    @classmethod
    def from_artifact(cls, artifact: bytes, *, version: str, feature_names: Sequence[str],
                      threshold: float | None) -> Predictor:
        booster = xgb.Booster()
        booster.load_model(bytearray(artifact))
        return cls(booster, version=version, feature_names=feature_names, threshold=threshold)

    def _features(self, patch: Any) -> np.ndarray:
        row = np.array(patch_features(patch), dtype=np.float32).reshape(1, -1)
        return row if self._index is None else row[:, self._index]

    def probability(self, patch: Any) -> float:
        """The model's probability that the patch works (no explanation)."""
        return float(self._booster.inplace_predict(self._features(patch), validate_features=False)[0])

    def probabilities(self, patches: Sequence[Any] | np.ndarray) -> np.ndarray:
        """The probability that each patch works, for many at once (patches, or their feature_matrix)."""
        x = patches if isinstance(patches, np.ndarray) else feature_matrix(patches)
        if self._index is not None:
            x = x[:, self._index]
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        return np.asarray(self._booster.inplace_predict(x, validate_features=False), dtype=np.float64)

    def predict(self, patch: Any) -> dict[str, Any]:
        return self.predict_many([patch])[0]

    async def explain(self, patch: Any) -> dict[str, Any]:
        """`predict` off the event loop: the calls of concurrent requests share one `predict_many` in a worker thread
        (under a burst, one model call for many rows; the loop serves requests meanwhile)."""
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = _Batcher(self)
        return await batcher.explain(patch)

    def predict_many(self, patches: Sequence[Any]) -> list[dict[str, Any]]:
        """`predict` for many patches with one model call (a DMatrix of all rows); each result's executionTimeMs
        is its share of the batch's time. Thread-safe like `predict`: the batch path calls it off the event loop."""
        if not patches:
            return []
        started = time.perf_counter()
        rows = np.array([patch_features(patch) for patch in patches], dtype=np.float32)
        if self._index is not None:
            rows = rows[:, self._index]
        return [self._explained(contribs, started, len(patches)) for contribs in self._contributions(rows)]

    def _contributions(self, rows: np.ndarray) -> list[np.ndarray]:
        """Each row's SHAP values (bias last). TreeSHAP dominates the cost (~0.8 ms a row for 500 trees of depth 4)
        and depends on the row alone: on a mass-CVE day many submissions are the same upgrade with the same
        features, so a row already explained (the last EXPLAINED_ROWS, keyed by its bytes, NaN included) is not
        explained again, and the others go to the model once each, in one call."""
        keys = [row.tobytes() for row in rows]
        with self._explained_lock:
            known = {key: self._explained_rows[key] for key in keys if key in self._explained_rows}
            for key in known:
                self._explained_rows.move_to_end(key)
        missing = {key: index for index, key in enumerate(keys) if key not in known}
        if missing:
            fresh = self._booster.predict(xgb.DMatrix(rows[list(missing.values())], nthread=1), pred_contribs=True, validate_features=False)
            known.update((key, contribs.copy()) for key, contribs in zip(missing, fresh, strict=True))
            with self._explained_lock:
                for key in missing:
                    self._explained_rows[key] = known[key]
                while len(self._explained_rows) > EXPLAINED_ROWS:
                    self._explained_rows.popitem(last=False)
        return [known[key] for key in keys]

    def _explained(self, contribs: np.ndarray, started: float, batch: int) -> dict[str, Any]:
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
            "executionTimeMs": (time.perf_counter() - started) * 1000.0 / batch,
            "bias": bias,
        }


class _Batcher:
    """The `explain` calls of one event loop: those that arrive while a batch runs form the next one."""

    MAX_BATCH = 256

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.waiting: list[tuple[Any, asyncio.Future]] = []
        self.running = False

    async def explain(self, patch: Any) -> dict[str, Any]:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((patch, future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self.waiting:
                await asyncio.sleep(0)  # the requests of this turn of the loop join the batch
                batch, self.waiting = self.waiting[: self.MAX_BATCH], self.waiting[self.MAX_BATCH :]
                try:
                    results = await asyncio.to_thread(self.predictor.predict_many, [patch for patch, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each caller gets the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
        finally:
            self.running = False
