"""Bad input is BAD_USER_INPUT naming the field, and nothing is written."""

import pytest
from sqlmodel import func, select

from db.models import AuditEntry, Patch
from db.services import comments, decisions, submission
from db.services.errors import BadUserInput
from db.services.submission import PredictionData, WargamingData
from tests.support.factories import POLICY, REVIEWER, SERVICE, patch_data, submit

MB = "x" * (1024 * 1024)

BAD_SUBMISSIONS = [
    ({"patch_id": "abc\x00def"}, "patchId"),
    ({"patch_id": MB}, "patchId"),
    ({"patch_id": "   "}, "patchId"),
    ({"package_name": "requests\nrm -rf"}, "packageName"),
    ({"diff": MB}, "diff"),
    ({"diff": "ok\x00"}, "diff"),
    ({"apv_id": "\x1b[31mred"}, "apvId"),
    ({"cve_id": "CVE-24-1"}, "cveId"),
    ({"cwe_ids": ["79"]}, "cweIds"),
    ({"affected_systems": ["a"] * 501}, "affectedSystems"),
    ({"severity": "SEVERE"}, "severity"),
    ({"priority": "URGENT"}, "priority"),
    ({"severity": None, "cvss_score": None, "cvss_vector": None}, "severity"),
    ({"severity": None, "cvss_vector": "CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}, "cvssVector"),
    ({"severity": None, "cvss_vector": "AV:N/AC:L/Au:N/C:P/I:P/A:P"}, "cvssVector"),
    ({"severity": None, "cvss_vector": "CVSS:4.0/AV:N"}, "cvssVector"),
    ({"severity": None, "cvss_score": 11.0}, "cvssScore"),
    ({"severity": None, "cvss_score": 5.0, "cvss_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}, "cvssScore"),
    ({"severity": "LOW", "cvss_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}, "severity"),
    ({"target_version": "2.31.0"}, "targetVersion"),
    ({"patch_size_lines": -1}, "patchSizeLines"),
    ({"patch_size_lines": 10**12}, "patchSizeLines"),
    ({"wargaming": WargamingData(True, True, True, -5)}, "executionTimeMs"),
    ({"ml_prediction": PredictionData("m1", 1.5, True)}, "confidence"),
    ({"ml_prediction": PredictionData("m1", 0.9, True, shap_values=[("f", float("nan"))])}, "shapValues"),
]


async def _counts(db):
    async with db.read() as session:
        return (
            (await session.exec(select(func.count()).select_from(Patch))).one(),
            (await session.exec(select(func.count()).select_from(AuditEntry))).one(),
        )


@pytest.mark.parametrize(("overrides", "field"), BAD_SUBMISSIONS)
async def test_bad_submission(database, overrides, field):
    with pytest.raises(BadUserInput) as caught:
        async with database.write() as session:
            await submission.submit(session=session, actor=SERVICE, data=patch_data(**overrides), policy=POLICY)
    assert caught.value.field == field
    assert await _counts(database) == (0, 0)


async def test_severity_derived_from_cvss(database):
    v3 = await submit(database, severity=None, cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    v4 = await submit(database, severity=None, cvss_vector="CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N")
    score = await submit(database, severity=None, cvss_score=5.3)
    assert (v3.severity, v3.cvss_score, v3.priority) == ("CRITICAL", 9.8, "CRITICAL")
    assert v4.severity == "MEDIUM" and v4.cvss_score == 6.9
    assert (score.severity, score.priority) == ("MEDIUM", "MEDIUM")


@pytest.mark.parametrize(
    ("current", "target", "bump"),
    [("1.2.3", "2.0.0", "MAJOR"), ("1.2.3", "1.3.0", "MINOR"), ("1.2.3", "1.2.4", "PATCH"), ("1.2.3", "1.2.3.post1", "OTHER"), ("abc", "def", "OTHER")],
)
async def test_version_bump(database, current, target, bump):
    assert (await submit(database, current_version=current, target_version=target)).version_bump == bump


async def test_bad_decision_input_changes_nothing(database):
    patch = await submit(database)
    before = await _counts(database)
    for call in (
        lambda s: decisions.reject(session=s, actor=REVIEWER, patch_id=str(patch.id), reason="  "),
        lambda s: decisions.reject(session=s, actor=REVIEWER, patch_id=str(patch.id), reason="x" * 5000),
        lambda s: decisions.approve(session=s, actor=REVIEWER, patch_id=str(patch.id), comment="a\x00b"),
        lambda s: decisions.escalate(session=s, actor=REVIEWER, patch_id=str(patch.id), reason=""),
        lambda s: decisions.approve(session=s, actor=REVIEWER, patch_id="not-a-uuid"),
        lambda s: comments.add(session=s, actor=REVIEWER, patch_id=str(patch.id), body=MB),
    ):
        with pytest.raises(BadUserInput):
            async with database.write() as session:
                await call(session)
    assert await _counts(database) == before


async def test_repeat_submission_is_idempotent(database):
    data = patch_data()
    async with database.write() as session:
        first, created = await submission.submit(session=session, actor=SERVICE, data=data, policy=POLICY)
    data.package_name = "something-else"
    async with database.write() as session:
        again, created_again = await submission.submit(session=session, actor=SERVICE, data=data, policy=POLICY)
    assert created and not created_again and again.id == first.id and again.package_name == "requests"
    assert await _counts(database) == (1, 1)
