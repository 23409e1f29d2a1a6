from collections import Counter

import pytest
from cvss import CVSS3

from db.models import Patch
from ml.synthetic import generate_patches
from ml.train import label_for
from tests.support.ml import NOW

BANDS = {"LOW": (0.1, 3.9), "MEDIUM": (4.0, 6.9), "HIGH": (7.0, 8.9), "CRITICAL": (9.0, 10.0)}


@pytest.fixture(scope="module")
def history() -> list[Patch]:
    return generate_patches(1500, seed=3, now=NOW)


def test_deterministic_for_a_seed(history):
    again = generate_patches(1500, seed=3, now=NOW)
    assert [p.model_dump() for p in again] == [p.model_dump() for p in history]
    assert [p.model_dump() for p in generate_patches(50, seed=4, now=NOW)] != [p.model_dump() for p in history[:50]]


def test_visibly_synthetic(history):
    for p in history:
        assert p.patch_id.startswith("SYNTH-") and p.apv_id.startswith("APV-SYNTH-")
        assert p.submitted_by == "synthetic:generator"
        assert p.package_name.startswith("demo-")
        assert p.cve_id is None or p.cve_id.startswith("CVE-0000-")
    assert len({p.patch_id for p in history}) == len(history)
    assert len({p.id for p in history}) == len(history)


def test_columns_are_filled_and_consistent(history):
    for p in history:
        assert p.priority_rank == {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}[p.priority]
        assert p.version == 1 and p.required_approvals in (1, 2)
        assert p.created_at.tzinfo is not None and p.created_at <= p.updated_at <= NOW
        if p.decided_at is not None:
            assert p.created_at <= p.decided_at <= NOW
        if p.cvss_vector is not None:
            assert p.cvss_vector.startswith("CVSS:3.1/")
            assert p.cvss_score == float(CVSS3(p.cvss_vector).base_score)
        if p.cvss_score is not None:
            low, high = BANDS[p.severity]
            assert low <= p.cvss_score <= high
        if p.status in ("REJECTED", "ESCALATED", "CANCELLED"):
            assert p.reason and p.reason.strip()
        if p.status == "AUTO_APPROVED":
            assert p.version_bump != "MAJOR" and not p.requires_escalation
            assert p.wargaming["validationPassed"] and p.ml_prediction["prediction"]
        if p.deployment_outcome is not None:
            assert p.status in ("APPROVED", "AUTO_APPROVED")


def test_history_has_every_kind_of_case(history):
    kinds = Counter((p.status, p.deployment_outcome is not None) for p in history)
    for kind in [("PENDING", False), ("APPROVED", True), ("APPROVED", False), ("REJECTED", False),
                 ("AUTO_APPROVED", True), ("AUTO_APPROVED", False), ("ESCALATED", False), ("CANCELLED", False)]:
        assert kinds[kind] > 0, kind
    labels = Counter(label_for(p) for p in history)
    assert labels[0] > 100 and labels[1] > 500 and labels[None] > 100
    assert {p.version_bump for p in history} == {"MAJOR", "MINOR", "PATCH", "OTHER"}
