"""Feature drift: the population stability index (PSI) of each feature between a model's training rows and
recent submissions.

`profile(x)` summarises the training rows per feature when the model is trained (stored with it): bin edges
at the deciles of the feature's finite values (fewer when it takes fewer values: a flag has two bins), and
the share of rows in each bin, plus the share of missing values (NaN: no CVSS vector, no wargaming run) as a
bin of its own. `psi(profile, x)` bins the recent rows the same way:

    PSI = sum over bins of (recent - training) * ln(recent / training)

with shares floored at 1e-4 so that an empty bin does not make it infinite. Rules of thumb: < 0.1 stable,
0.1-0.25 a moderate shift, > 0.25 a major one (the alert's threshold). With n recent rows and k bins, PSI of
two samples from the same distribution is about (k - 1) / n per side, e.g. ~0.02 for 10 bins and 500 rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BINS = 10
FLOOR = 1e-4


def _edges(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    inner = np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1]))
    return [float(v) for v in inner]


def _shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Shares per bin: (-inf, e0], (e0, e1], ..., (e_last, inf), then missing."""
    missing = ~np.isfinite(values)
    finite = values[~missing]
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=np.float64), finite, side="left"), minlength=len(edges) + 1)
    total = max(values.size, 1)
    return [float(c) / total for c in counts] + [float(missing.sum()) / total]


def profile(x: np.ndarray, feature_names: list[str]) -> dict[str, Any]:
    """The training rows' distribution per feature (JSON-serialisable; stored as MlModel.feature_profile)."""
    x = np.asarray(x, dtype=np.float64)
    features = {}
    for j, name in enumerate(feature_names):
        edges = _edges(x[:, j])
        features[name] = {"edges": edges, "shares": [round(s, 6) for s in _shares(x[:, j], edges)]}
    return {"rows": int(x.shape[0]), "floor": FLOOR, "features": features}


def psi(training: dict[str, Any], x: np.ndarray, feature_names: list[str]) -> dict[str, float]:
    """PSI of each profiled feature between the training rows and the rows `x` (columns in feature_names order)."""
    x = np.asarray(x, dtype=np.float64)
    out: dict[str, float] = {}
    for j, name in enumerate(feature_names):
        stored = training["features"].get(name)
        if stored is None:
            continue
        expected = np.maximum(np.asarray(stored["shares"], dtype=np.float64), FLOOR)
        actual = np.maximum(np.asarray(_shares(x[:, j], stored["edges"]), dtype=np.float64), FLOOR)
        out[name] = round(float(np.sum((actual - expected) * np.log(actual / expected))), 6)
    return out
