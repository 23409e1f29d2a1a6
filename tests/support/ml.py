"""Tests of the ML core (pure: no database). `make_patch` builds an unsaved Patch for a test."""

import functools
from datetime import datetime, timezone
from typing import Any

from db.models import Patch

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


def make_patch(**overrides: Any) -> Patch:
    fields: dict[str, Any] = {
        "patch_id": "TEST-1",
        "apv_id": "APV-TEST-1",
        "cve_id": "CVE-0000-00001",
        "package_name": "demo-test-lib",
        "current_version": "1.2.3",
        "target_version": "1.2.4",
        "version_bump": "PATCH",
        "severity": "HIGH",
        "cvss_score": 7.5,
        "cvss_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
        "cwe_ids": ["CWE-79"],
        "affected_systems": ["synthetic-system-01"],
        "patch_size_lines": 12,
        "diff": None,
        "priority": "HIGH",
        "priority_rank": 1,
        "status": "PENDING",
        "submitted_by": "test",
        "wargaming": {
            "phase1Success": True,
            "phase2Success": True,
            "validationPassed": True,
            "executionTimeMs": 42_000,
            "errorMessage": None,
            "exploitId": "EXP-TEST-1",
        },
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(overrides)
    return Patch(**fields)


@functools.cache
def trained_predictor() -> Any:
    """A real model trained on SYNTHETIC history (once per test process)."""
    from ml.predictor import Predictor
    from ml.synthetic import generate_patches
    from ml.train import train_model

    model = train_model(generate_patches(2000, seed=21, now=NOW), seed=1)
    return Predictor.from_artifact(model.artifact, version=model.version, feature_names=model.feature_names, threshold=model.threshold)
