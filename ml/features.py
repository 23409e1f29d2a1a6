"""Patch -> feature vector. The names in FEATURE_NAMES are what reviewers read in SHAP explanations.

Only evidence known before a decision is used: the vulnerability (severity, CVSS, CWE), the change
(version bump and distance, size, diff) and the wargaming result. Labels and decision fields (status,
decided_*, deployment_outcome, ml_prediction, requires_escalation) are never read, so a model cannot
learn from its own or a reviewer's verdict.

Missing evidence is NaN (xgboost routes it natively): no CVSS vector, no wargaming run, an
unparseable version. Flags are 0/1; ordinal impacts are 0 (none), 1 (low), 2 (high).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError
from packaging.version import InvalidVersion, Version

NAN = float("nan")

SEVERITY_LEVEL = {"LOW": 1.0, "MEDIUM": 2.0, "HIGH": 3.0, "CRITICAL": 4.0}

# CWE ids grouped into families a reviewer recognises; anything else counts as "other".
CWE_FAMILIES: dict[str, frozenset[int]] = {
    "injection": frozenset({74, 75, 77, 78, 88, 89, 90, 91, 93, 94, 95, 96, 97, 113, 564, 643, 652, 917, 943, 1236, 1336}),
    "xss": frozenset({79, 80, 81, 83, 84, 85, 86, 87}),
    "memory_safety": frozenset(
        {119, 120, 121, 122, 123, 124, 125, 126, 127, 129, 130, 131, 134, 170, 190, 191, 193, 401, 415, 416,
         457, 466, 467, 468, 469, 476, 562, 587, 590, 680, 761, 762, 763, 786, 787, 788, 805, 806, 822, 823,
         824, 825, 839, 843, 908, 1284}
    ),
    "auth_access_control": frozenset(
        {250, 256, 257, 259, 262, 263, 266, 267, 268, 269, 270, 271, 272, 273, 274, 276, 280, 281, 282, 283,
         284, 285, 286, 287, 288, 289, 290, 291, 294, 302, 303, 304, 305, 306, 307, 308, 309, 384, 425, 521,
         522, 523, 549, 603, 613, 620, 639, 640, 648, 732, 798, 862, 863, 1220, 1390, 1391}
    ),
    "crypto": frozenset(
        {295, 296, 297, 298, 299, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321, 322, 323, 324,
         325, 326, 327, 328, 329, 330, 331, 332, 333, 334, 335, 336, 337, 338, 339, 340, 347, 354, 757, 759,
         760, 780, 916, 1204, 1240}
    ),
    "deserialization": frozenset({502, 915, 1321}),
    "path_traversal": frozenset({22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 59, 61, 62, 73, 434}),
    "resource_exhaustion": frozenset({400, 401, 404, 405, 407, 409, 770, 771, 772, 773, 774, 775, 776, 789, 834, 835, 674, 1050, 1333}),
    "request_forgery": frozenset({352, 441, 601, 918, 1021}),
    "information_exposure": frozenset({200, 201, 203, 204, 208, 209, 210, 212, 213, 214, 215, 497, 532, 538, 539, 548, 598, 615}),
}
# CWE-401 (memory leak) is both a memory-safety and an exhaustion weakness; memory safety wins.
_CWE_FAMILY_OF: dict[int, str] = {}
for _family, _ids in CWE_FAMILIES.items():
    for _id in _ids:
        _CWE_FAMILY_OF.setdefault(_id, _family)
CWE_FAMILY_NAMES: tuple[str, ...] = (*CWE_FAMILIES, "other")
_CWE_RE = re.compile(r"^(?:CWE-)?(\d{1,5})$", re.IGNORECASE)

VERSION_BUMPS = ("MAJOR", "MINOR", "PATCH", "OTHER")

_CVSS_NAMES = (
    "cvss_version",
    "cvss_attack_vector_network",
    "cvss_attack_vector_adjacent",
    "cvss_attack_vector_local",
    "cvss_attack_vector_physical",
    "cvss_attack_complexity_high",
    "cvss_attack_requirements_present",
    "cvss_privileges_required",
    "cvss_user_interaction_required",
    "cvss_scope_changed",
    "cvss_confidentiality_impact",
    "cvss_integrity_impact",
    "cvss_availability_impact",
)
_VERSION_NAMES = (
    "version_major_delta",
    "version_minor_delta",
    "version_patch_delta",
    "version_unparseable",
    "version_is_downgrade",
    "version_target_prerelease",
    "version_current_pre_1_0",
)

FEATURE_NAMES: list[str] = [
    "severity_level",
    "priority_level",
    "cvss_score",
    *_CVSS_NAMES,
    "cwe_count",
    *(f"cwe_{family}" for family in CWE_FAMILY_NAMES),
    *(f"version_bump_{bump.lower()}" for bump in VERSION_BUMPS),
    *_VERSION_NAMES,
    "patch_size_lines",
    "patch_size_log",
    "has_diff",
    "diff_files_changed",
    "affected_systems_count",
    "has_cve_id",
    "wargaming_available",
    "wargaming_phase1_success",
    "wargaming_phase2_success",
    "wargaming_validation_passed",
    "wargaming_execution_time_ms",
    "wargaming_exploit_present",
    "wargaming_error_present",
]
assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)

_AV = {"N": 0, "A": 1, "L": 2, "P": 3}
_IMPACT = {"N": 0.0, "L": 1.0, "H": 2.0}
_PR = {"N": 0.0, "L": 1.0, "H": 2.0}
_NO_CVSS = (NAN,) * len(_CVSS_NAMES)


def _flag(value: Any) -> float:
    return NAN if value is None else float(bool(value))


@lru_cache(maxsize=4096)
def cvss_vector_features(vector: str | None) -> tuple[tuple[float, ...], float]:
    """(values in the order of the cvss_* names, computed base score) for a CVSS 3.x or 4.0 vector.

    CVSS 4.0 is mapped onto the same readable features: VC/VI/VA are the impacts on the vulnerable
    system, "scope changed" means any impact on subsequent systems (SC/SI/SA), user interaction
    passive or active counts as required, and AT (attack requirements) exists only in 4.0 (NaN for 3.x).
    Anything unparseable gives NaN everywhere.
    """
    if not vector:
        return _NO_CVSS, NAN
    vector = vector.strip()
    try:
        if vector.startswith("CVSS:4.0/"):
            c4 = CVSS4(vector)
            m = c4.metrics
            version, requirements = 4.0, float(m["AT"] == "P")
            interaction = float(m["UI"] != "N")
            scope = float(any(m[k] != "N" for k in ("SC", "SI", "SA")))
            conf, integ, avail = m["VC"], m["VI"], m["VA"]
            score = float(c4.base_score)
        elif vector.startswith("CVSS:3."):
            c3 = CVSS3(vector)
            m = c3.metrics
            version, requirements = 3.0, NAN
            interaction = float(m["UI"] == "R")
            scope = float(m["S"] == "C")
            conf, integ, avail = m["C"], m["I"], m["A"]
            score = float(c3.base_score)
        else:
            return _NO_CVSS, NAN
    except (CVSSError, KeyError, ValueError, TypeError):
        return _NO_CVSS, NAN
    av = [0.0, 0.0, 0.0, 0.0]
    av[_AV[m["AV"]]] = 1.0
    values = (
        version,
        *av,
        float(m["AC"] == "H"),
        requirements,
        _PR[m["PR"]],
        interaction,
        scope,
        _IMPACT[conf],
        _IMPACT[integ],
        _IMPACT[avail],
    )
    return values, score


@lru_cache(maxsize=4096)
def version_features(current: str | None, target: str | None) -> tuple[float, ...]:
    """Values in the order of the version_* names (NaN distances when either version is unparseable).

    A delta counts only while the higher components are equal: 1.9.3 -> 2.0.0 is (1, 0, 0), so a
    major bump never shows as a negative minor distance.
    """
    try:
        cur, tgt = Version(str(current)), Version(str(target))
    except InvalidVersion:
        return (NAN, NAN, NAN, 1.0, NAN, NAN, NAN)
    c = (*cur.release, 0, 0, 0)[:3]
    t = (*tgt.release, 0, 0, 0)[:3]
    deltas = [0.0, 0.0, 0.0]
    for i in range(3):
        deltas[i] = float(t[i] - c[i])
        if t[i] != c[i]:
            break
    return (
        *deltas,
        0.0,
        float(tgt < cur),
        float(tgt.is_prerelease or tgt.is_devrelease),
        float(c[0] == 0),
    )


def cwe_family(cwe_id: str) -> str:
    """The family name of one CWE id ("CWE-79" -> "xss"); unknown or malformed ids are "other"."""
    match = _CWE_RE.match(str(cwe_id).strip())
    if match is None:
        return "other"
    return _CWE_FAMILY_OF.get(int(match.group(1)), "other")


def _diff_files_changed(diff: str) -> float:
    files = diff.count("diff --git ")
    if files == 0:
        files = diff.count("\n+++ ") + int(diff.startswith("+++ "))
    return float(files)


def patch_features(patch: Any) -> list[float]:
    """Feature values of one patch, in the order of FEATURE_NAMES (NaN where evidence is missing)."""
    severity = SEVERITY_LEVEL.get(str(getattr(patch, "severity", None) or "").upper(), NAN)
    priority = SEVERITY_LEVEL.get(str(getattr(patch, "priority", None) or "").upper(), NAN)

    cvss_values, vector_score = cvss_vector_features(getattr(patch, "cvss_vector", None))
    score = getattr(patch, "cvss_score", None)
    cvss_score = float(score) if score is not None else vector_score

    cwe_ids = set(getattr(patch, "cwe_ids", None) or ())
    families = {cwe_family(c) for c in cwe_ids}
    cwe_values = [float(f in families) for f in CWE_FAMILY_NAMES]

    bump = str(getattr(patch, "version_bump", None) or "").upper()
    bump_values = [float(bump == b) for b in VERSION_BUMPS]
    version_values = version_features(getattr(patch, "current_version", None), getattr(patch, "target_version", None))

    size = getattr(patch, "patch_size_lines", None)
    size_lines = float(size) if size is not None else NAN
    size_log = math.log1p(size_lines) if size_lines >= 0 else NAN

    diff = getattr(patch, "diff", None)
    has_diff = float(bool(diff))
    files_changed = _diff_files_changed(diff) if diff else NAN

    affected = float(len(getattr(patch, "affected_systems", None) or ()))
    has_cve = float(bool(getattr(patch, "cve_id", None)))

    wg = getattr(patch, "wargaming", None)
    if wg:
        exec_ms = wg.get("executionTimeMs")
        wargaming = (
            1.0,
            _flag(wg.get("phase1Success")),
            _flag(wg.get("phase2Success")),
            _flag(wg.get("validationPassed")),
            float(exec_ms) if exec_ms is not None else NAN,
            float(wg.get("exploitId") is not None),
            float(bool(wg.get("errorMessage"))),
        )
    else:
        wargaming = (0.0, NAN, NAN, NAN, NAN, NAN, NAN)

    return [
        severity,
        priority,
        cvss_score,
        *cvss_values,
        float(len(cwe_ids)),
        *cwe_values,
        *bump_values,
        *version_values,
        size_lines,
        size_log,
        has_diff,
        files_changed,
        affected,
        has_cve,
        *wargaming,
    ]


def feature_matrix(patches: Iterable[Any]) -> np.ndarray:
    """Features of many patches as a float32 matrix of shape (n, len(FEATURE_NAMES))."""
    rows = [patch_features(p) for p in patches]
    if not rows:
        return np.empty((0, len(FEATURE_NAMES)), dtype=np.float32)
    return np.asarray(rows, dtype=np.float32)


def feature_dict(patch: Any) -> dict[str, float]:
    """Named features of one patch (for display and debugging)."""
    return dict(zip(FEATURE_NAMES, patch_features(patch), strict=True))
