"""Feature drift: PSI between a model's training rows and recent submissions moves for the features a regime
shift moves and not for the others; measured by the service, shown on MlModel.drift, optionally pausing."""

from sqlmodel import select

from db.models import AuditEntry
from db.services import auto_approval, drift, ml_models, submission
from ml import drift as stats
from ml.features import FEATURE_NAMES, feature_matrix
from ml.service import check_drift
from ml.synthetic import RegimeShift
from tests.support import guard as scenario
from tests.support.factories import ADMIN, SERVICE, POLICY

SHIFTED = ("version_minor_delta", "version_bump_minor", "patch_size_log")
UNMOVED = ("severity_level", "affected_systems_count", "has_cve_id", *(n for n in FEATURE_NAMES if n.startswith(("cvss_", "cwe_"))))


def _psi(shift: RegimeShift | None) -> dict[str, float]:
    training = scenario.trained().feature_profile  # the deciles of the model's own training rows, as stored with it
    recent = [patch for patch, _ in scenario.stream(500, seed=31, shift=shift)]
    return stats.psi(training, feature_matrix(recent), FEATURE_NAMES)


def test_psi_moves_for_the_shifted_features_only():
    psi = _psi(scenario.SHIFT)
    assert psi["version_minor_delta"] > 0.25, psi
    assert all(psi[name] > 0.1 for name in SHIFTED), psi
    assert all(psi[name] < 0.1 for name in UNMOVED), {n: psi[n] for n in UNMOVED if psi[n] >= 0.1}


def test_no_shift_no_drift():
    psi = _psi(None)
    assert max(psi.values()) < 0.1, sorted(psi.items(), key=lambda kv: -kv[1])[:3]


async def test_the_service_measures_drift_and_may_pause(database):
    model = scenario.trained()
    async with database.write() as session:
        await ml_models.store_and_activate(session=session, actor=ADMIN, model=scenario.model_row())
    for patch, _ in scenario.stream(300, seed=31, shift=RegimeShift(share=0.6)):
        async with database.write() as session:
            await submission.submit(session=session, actor=SERVICE, data=scenario.submission_data(patch), policy=POLICY)

    measured = await check_drift(db=database, window=300, threshold=0.25, pause=False)
    assert measured["samples"] == 300 and measured["psi"]["version_minor_delta"] > 0.25
    async with database.read() as session:
        assert (await drift.latest(session=session))["psi"] == measured["psi"]
        assert not (await auto_approval.pause_state(session=session)).paused

    top = [item["feature"] for item in model.metrics["topFeaturesByGain"][:10]]
    over = {name for name in top if measured["psi"][name] > 0.25}
    assert over & set(SHIFTED + ("version_patch_delta", "patch_size_lines")) == over and over, (over, top)
    await check_drift(db=database, window=300, threshold=0.25, pause=True)
    await check_drift(db=database, window=300, threshold=0.25, pause=True)  # paused already: no second pause
    async with database.read() as session:
        state = await auto_approval.pause_state(session=session)
        paused = (await session.exec(select(AuditEntry).where(AuditEntry.action == "AUTO_APPROVAL_PAUSED"))).all()
    assert state.paused and len(paused) == 1
    assert paused[0].actor == "system:auto-approval-guard" and set(paused[0].details["guard"]["drift"]) == over
    assert "feature drift" in state.reason
