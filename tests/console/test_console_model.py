"""The model page's auto-approval safety in a real browser: the guard tripped by failed outcomes (with its
numbers), the active model's feature drift, and the registry, where an ADMIN activates another model."""

from db.engine import Database
from db.services import drift, ml_models
from db.types import utcnow
from tests.support import guard as scenario
from tests.support.browser import axe_violations, button, chromium, find, has_text, sign_in, text, wait_for
from tests.support.console_data import gql
from tests.support.factories import ADMIN as ADMIN_ACTOR
from tests.support.server import ADMIN, SERVICE, patch_input

CONFIDENT = {"modelVersion": "upstream-console", "confidence": 0.999, "prediction": True}
WARGAMING = {"phase1Success": True, "phase2Success": True, "validationPassed": True, "executionTimeMs": 1000}
SUBMIT = "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { id status } } }"
FAIL = 'mutation($id: ID!) { recordDeploymentOutcome(id: $id, success: false, details: "rolled back") { id } }'


async def _registry(database_url: str) -> tuple[str, str]:
    rows = [scenario.model_row(version) for version in ("xgb-console-old", "xgb-console-new")]
    rows[1].metrics["comparison"] = {"activate": False, "reason": "worse than the active model xgb-console-old on the same held-out rows"}
    db = Database.from_url(database_url, pool_min=1, pool_max=2)
    try:
        async with db.write() as session:
            await ml_models.store_and_activate(session=session, actor=ADMIN_ACTOR, model=rows[0])
            await ml_models.store_inactive(session=session, actor=ADMIN_ACTOR, model=rows[1])
            await drift.store(session=session, model_version="xgb-console-old", psi={"version_minor_delta": 0.41, "cvss_score": 0.02},
                              samples=500, at=utcnow())
    finally:
        await db.dispose()
    return rows[0].version, rows[1].version


async def test_model_page_shows_the_tripped_guard_drift_and_the_registry(console):
    old, new = await _registry(console.database_url)
    for n in range(3):
        patch = gql(console.client, console.base, SUBMIT, {"i": patch_input(900 + n, mlPrediction=CONFIDENT, wargaming=WARGAMING)})["submitPatch"]["patch"]
        assert patch["status"] == "AUTO_APPROVED"
        gql(console.client, console.base, FAIL, {"id": patch["id"]}, token=SERVICE)
    try:
        with chromium() as driver:
            sign_in(driver, console.base, ADMIN, "model")
            wait_for(driver, has_text("#guard + p", "Tripped"), what="the tripped guard")
            guard = text(driver, "section[aria-labelledby=guard]")
            assert "3 of the last 3" in guard and "HITL_GUARD_MAX_FAILURES (3)" in guard and "upstream-console" in guard
            assert "Paused" in text(driver, "section[aria-labelledby=kill-switch]")
            drifted = text(driver, "section[aria-labelledby=drift]")
            assert "version minor delta" in drifted and "0.410 (drifted)" in drifted and "cvss score" in drifted
            registry = text(driver, "section[aria-labelledby=registry]")
            assert old in registry and new in registry and "worse than the active model" in registry
            assert axe_violations(driver) == []

            button(driver, f"Activate {new}").click()  # the rollback/roll-forward button carries the version in its name
            state_cell = f"tr[data-version='{new}'] td:last-child"
            wait_for(driver, lambda d: find(d, f"{state_cell} strong") and text(d, state_cell) == "active", what="the other model active")
            assert find(driver, f"tr[data-version='{old}'] td:last-child button")  # the old one can be activated again
            assert gql(console.client, console.base, "{ mlModel { version active } }", token=ADMIN)["mlModel"] == {"version": new, "active": True}
    finally:
        gql(console.client, console.base, 'mutation { setAutoApprovalPaused(paused: false, reason: "test over") { paused } }', token=ADMIN)
