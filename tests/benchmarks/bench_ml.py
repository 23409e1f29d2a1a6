"""ML benchmark (a script, not a pytest test): `python -m tests.benchmarks.bench_ml [--quick] [--json]`.

Measures, in one process:
- prediction + SHAP for one patch through `Predictor.predict` (features, DMatrix, TreeSHAP), p50/p99
  over many calls, beside the bare `booster.inplace_predict` on the same feature row (the floor any
  xgboost call pays on this machine), with the calls interleaved so both see the same machine noise;
- feature extraction alone;
- `train_model` on 50,000 labelled synthetic patches (generation timed separately).

`run(quick)` returns the numbers as a dict for a harness; quick mode uses fewer calls and 5,000 labels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone

import numpy as np
import xgboost as xgb

from ml.features import patch_features
from ml.predictor import Predictor
from ml.synthetic import generate_patches
from ml.train import label_for, train_model

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
TRAIN_NTHREAD = 2


def _labelled(n: int, seed: int) -> tuple[list, float]:
    """n labelled synthetic patches (plus their generation time)."""
    started, out, batch = time.perf_counter(), [], seed
    while len(out) < n:
        more = generate_patches(int((n - len(out)) / 0.75) + 100, seed=batch, now=NOW)
        out.extend(p for p in more if label_for(p) is not None)
        batch += 1000
    return out[:n], time.perf_counter() - started


def _stats(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000.0
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()),
            "max": float(ms.max())}


def run(quick: bool = False, *, labels: int | None = None, calls: int | None = None, verbose: bool = True) -> dict:
    """`labels`/`calls` override the mode's sizes (the harness's smoke mode uses tiny ones)."""
    n_labels = labels or (5_000 if quick else 50_000)
    calls = calls or (300 if quick else 2_000)

    history, gen_s = _labelled(n_labels, seed=1)
    started = time.perf_counter()
    model = train_model(history, seed=42, nthread=TRAIN_NTHREAD)
    train_s = time.perf_counter() - started

    predictor = Predictor.from_artifact(model.artifact, version=model.version, feature_names=model.feature_names,
                                        threshold=model.threshold)
    booster = xgb.Booster()
    booster.load_model(bytearray(model.artifact))
    booster.set_param({"nthread": 1})
    patch = next(p for p in generate_patches(50, seed=99, now=NOW) if p.wargaming is not None)
    row = np.asarray(patch_features(patch), dtype=np.float32).reshape(1, -1)

    for _ in range(50):  # warm up both paths
        predictor.predict(patch)
        booster.inplace_predict(row, validate_features=False)
    full, bare, feats = [], [], []
    clock = time.perf_counter
    for _ in range(calls):
        t0 = clock()
        predictor.predict(patch)
        t1 = clock()
        booster.inplace_predict(row, validate_features=False)
        t2 = clock()
        patch_features(patch)
        t3 = clock()
        full.append(t1 - t0)
        bare.append(t2 - t1)
        feats.append(t3 - t2)

    result = {
        "quick": quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "xgboost": xgb.__version__},
        "prediction": {
            "calls": calls,
            "predict_with_shap_ms": _stats(full),
            "inplace_predict_baseline_ms": _stats(bare),
            "features_only_ms": _stats(feats),
            "features": len(model.feature_names),
            "trees": int(booster.num_boosted_rounds()),
        },
        "training": {
            "labelled_patches": n_labels,
            "nthread": TRAIN_NTHREAD,
            "generate_s": gen_s,
            "train_s": train_s,
            "rounds": model.metrics["model"]["rounds"],
            "test_auc": model.metrics["test"]["auc"],
            "test_log_loss": model.metrics["test"]["logLoss"],
            "baseline_log_loss": model.metrics["baseline"]["logLoss"],
            "threshold": model.threshold,
        },
    }
    if verbose:
        _print(result)
    return result


def _print(r: dict) -> None:
    p = r["prediction"]
    print(f"\nML benchmark ({'quick' if r['quick'] else 'full'}; {r['machine']['cpus']} CPUs, xgboost "
          f"{r['machine']['xgboost']}; {p['trees']} trees, {p['features']} features, {p['calls']} calls)")
    print(f"{'single patch':<34}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for label, key in (("Predictor.predict (+ SHAP)", "predict_with_shap_ms"),
                       ("baseline: booster.inplace_predict", "inplace_predict_baseline_ms"),
                       ("patch_features only", "features_only_ms")):
        s = p[key]
        print(f"{label:<34}{s['p50']:>10.3f}{s['p99']:>10.3f}{s['mean']:>10.3f}")
    t = r["training"]
    print(f"\ntraining on {t['labelled_patches']:,} labelled synthetic patches (nthread={t['nthread']}): "
          f"{t['train_s']:.2f} s ({t['rounds']} rounds; generation {t['generate_s']:.1f} s)")
    print(f"test AUC {t['test_auc']}, log loss {t['test_log_loss']} vs baseline {t['baseline_log_loss']}, "
          f"threshold {t['threshold']}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and 5,000 labels")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = parser.parse_args()
    result = run(quick=args.quick)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
