import math
import re

import numpy as np
import pytest

from ml.features import FEATURE_NAMES, cwe_family, feature_dict, feature_matrix, patch_features
from tests.support.ml import NOW, make_patch


def test_names_are_readable_unique_and_match_the_vector():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in FEATURE_NAMES)
    assert len(patch_features(make_patch())) == len(FEATURE_NAMES)
    for name in ("cvss_attack_vector_network", "version_bump_major", "wargaming_validation_passed", "cwe_memory_safety"):
        assert name in FEATURE_NAMES
    assert not any(name.startswith("cwe_") and name[4:].isdigit() for name in FEATURE_NAMES)


def test_cvss_v3_vector():
    f = feature_dict(make_patch(cvss_score=None, cvss_vector="CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:C/C:L/I:H/A:N"))
    assert f["cvss_version"] == 3.0
    assert (f["cvss_attack_vector_local"], f["cvss_attack_vector_network"]) == (1.0, 0.0)
    assert f["cvss_attack_complexity_high"] == 1.0
    assert f["cvss_privileges_required"] == 2.0
    assert f["cvss_user_interaction_required"] == 1.0
    assert f["cvss_scope_changed"] == 1.0
    assert (f["cvss_confidentiality_impact"], f["cvss_integrity_impact"], f["cvss_availability_impact"]) == (1.0, 2.0, 0.0)
    assert math.isnan(f["cvss_attack_requirements_present"])  # a 4.0-only metric
    assert f["cvss_score"] == pytest.approx(5.8)  # computed from the vector when no score is given


def test_cvss_v4_vector_maps_onto_the_same_features():
    vector = "CVSS:4.0/AV:A/AC:L/AT:P/PR:L/UI:P/VC:H/VI:L/VA:N/SC:N/SI:L/SA:N"
    f = feature_dict(make_patch(cvss_score=None, cvss_vector=vector, severity="MEDIUM"))
    assert f["cvss_version"] == 4.0
    assert f["cvss_attack_vector_adjacent"] == 1.0
    assert f["cvss_attack_vector_network"] == f["cvss_attack_vector_local"] == f["cvss_attack_vector_physical"] == 0.0
    assert f["cvss_attack_complexity_high"] == 0.0
    assert f["cvss_attack_requirements_present"] == 1.0
    assert f["cvss_privileges_required"] == 1.0
    assert f["cvss_user_interaction_required"] == 1.0
    assert f["cvss_scope_changed"] == 1.0  # an impact on a subsequent system
    assert (f["cvss_confidentiality_impact"], f["cvss_integrity_impact"], f["cvss_availability_impact"]) == (2.0, 1.0, 0.0)
    assert 0.0 < f["cvss_score"] <= 10.0


@pytest.mark.parametrize("vector", [None, "", "garbage", "CVSS:3.1/AV:X", "AV:N/AC:L/Au:N/C:P/I:P/A:P"])
def test_missing_or_invalid_vector_gives_nan(vector):
    f = feature_dict(make_patch(cvss_vector=vector, cvss_score=None))
    assert all(math.isnan(f[name]) for name in FEATURE_NAMES if name.startswith("cvss_"))


def test_unparseable_version_gives_nan_distance():
    f = feature_dict(make_patch(current_version="r512-custom", target_version="r600-custom", version_bump="OTHER"))
    assert f["version_unparseable"] == 1.0
    assert f["version_bump_other"] == 1.0
    for name in ("version_major_delta", "version_minor_delta", "version_patch_delta", "version_is_downgrade"):
        assert math.isnan(f[name])


def test_version_distance():
    f = feature_dict(make_patch(current_version="1.9.3", target_version="3.0.0rc1", version_bump="MAJOR"))
    assert (f["version_major_delta"], f["version_minor_delta"], f["version_patch_delta"]) == (2.0, 0.0, 0.0)
    assert f["version_target_prerelease"] == 1.0
    assert f["version_bump_major"] == 1.0 and f["version_bump_patch"] == 0.0
    f = feature_dict(make_patch(current_version="0.4.1", target_version="0.4.9"))
    assert (f["version_major_delta"], f["version_minor_delta"], f["version_patch_delta"]) == (0.0, 0.0, 8.0)
    assert f["version_current_pre_1_0"] == 1.0
    assert feature_dict(make_patch(current_version="2.0", target_version="1.9"))["version_is_downgrade"] == 1.0


def test_cwe_families():
    assert cwe_family("CWE-79") == "xss"
    assert cwe_family("CWE-89") == "injection"
    assert cwe_family("CWE-416") == "memory_safety"
    assert cwe_family("CWE-502") == "deserialization"
    assert cwe_family("CWE-22") == "path_traversal"
    assert cwe_family("CWE-1333") == "resource_exhaustion"
    assert cwe_family("NVD-CWE-noinfo") == "other"
    f = feature_dict(make_patch(cwe_ids=["CWE-787", "CWE-125", "CWE-99999"]))
    assert f["cwe_count"] == 3.0
    assert f["cwe_memory_safety"] == 1.0 and f["cwe_other"] == 1.0 and f["cwe_xss"] == 0.0


def test_wargaming_features_and_missing_wargaming():
    wg = {"phase1Success": True, "phase2Success": False, "validationPassed": False, "executionTimeMs": 1234,
          "errorMessage": "boom", "exploitId": None}
    f = feature_dict(make_patch(wargaming=wg, diff="diff --git a/x b/x\n+1\ndiff --git a/y b/y\n"))
    assert f["wargaming_available"] == 1.0
    assert (f["wargaming_phase1_success"], f["wargaming_phase2_success"], f["wargaming_validation_passed"]) == (1.0, 0.0, 0.0)
    assert f["wargaming_execution_time_ms"] == 1234.0
    assert f["wargaming_exploit_present"] == 0.0 and f["wargaming_error_present"] == 1.0
    assert f["has_diff"] == 1.0 and f["diff_files_changed"] == 2.0
    f = feature_dict(make_patch(wargaming=None))
    assert f["wargaming_available"] == 0.0 and math.isnan(f["wargaming_validation_passed"])
    assert f["has_diff"] == 0.0 and math.isnan(f["diff_files_changed"])


def test_labels_and_decisions_are_not_features():
    base = patch_features(make_patch())
    decided = patch_features(make_patch(
        status="REJECTED", decided_by="someone", decided_at=NOW, deployment_outcome=False, reason="no",
        ml_prediction={"modelVersion": "m", "confidence": 0.99, "prediction": True, "shapValues": [], "executionTimeMs": 1.0},
        auto_approval_eligible=True, requires_escalation=True, ml_wargaming_agreement=True,
    ))
    np.testing.assert_array_equal(np.array(base), np.array(decided))


def test_feature_matrix():
    x = feature_matrix([make_patch(), make_patch(wargaming=None)])
    assert x.dtype == np.float32 and x.shape == (2, len(FEATURE_NAMES))
    assert feature_matrix([]).shape == (0, len(FEATURE_NAMES))
