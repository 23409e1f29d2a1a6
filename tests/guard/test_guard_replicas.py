"""Two `hitl serve` processes on one PostgreSQL database: failures reported to both at once trip the guard once,
and both stop auto-approving at once (the pause is read from the database at each decision)."""

import asyncio

import httpx
import pytest
from sqlmodel import select

from db.engine import Database
from db.models import AuditEntry
from tests.support.processes import serving
from tests.support.server import ADMIN, SERVICE, patch_input

pytestmark = pytest.mark.slow
CONFIDENT = {"modelVersion": "upstream-replicas", "confidence": 0.999, "prediction": True}
WARGAMING = {"phase1Success": True, "phase2Success": True, "validationPassed": True, "executionTimeMs": 1000}
GUARD = "{ autoApprovalState { paused changedBy guard { tripped outcomes failures precisionUpperBound reason modelVersion } } }"


async def _gql(client: httpx.AsyncClient, base: str, query: str, variables: dict | None = None, *, token: str) -> dict:
    body = (await client.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {token}"})).json()
    assert "errors" not in body, body
    return body["data"]


async def _submit(client, base, n) -> dict:
    query = "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { id status } } }"
    variables = {"i": patch_input(n, mlPrediction=CONFIDENT, wargaming=WARGAMING)}
    return (await _gql(client, base, query, variables, token=SERVICE))["submitPatch"]["patch"]


async def _fail(client, base, patch_id) -> None:
    query = "mutation($id: ID!) { recordDeploymentOutcome(id: $id, success: false, details: \"rolled back\") { id } }"
    await _gql(client, base, query, {"id": patch_id}, token=SERVICE)


async def test_one_trip_and_both_replicas_stop(pg_database_url, tmp_path):
    with serving(pg_database_url, tmp_path, count=2, HITL_METRICS_REFRESH_SECONDS="0.2") as (a, b):
        async with httpx.AsyncClient(trust_env=False, timeout=60) as client:
            approved = [await _submit(client, (a, b)[n % 2].base, n) for n in range(8)]
            assert {p["status"] for p in approved} == {"AUTO_APPROVED"}
            # Eight failures at once, four to each replica: the third trips it, and only once.
            await asyncio.gather(*(_fail(client, (a, b)[n % 2].base, p["id"]) for n, p in enumerate(approved)))

            held = await asyncio.gather(_submit(client, a.base, 100), _submit(client, b.base, 101))  # at once: no wait
            assert [p["status"] for p in held] == ["PENDING", "PENDING"]
            for replica in (a, b):
                state = (await _gql(client, replica.base, GUARD, token=ADMIN))["autoApprovalState"]
                assert state["paused"] and state["changedBy"] == "system:auto-approval-guard"
                guard = state["guard"]
                assert guard["tripped"] and guard["modelVersion"] == "upstream-replicas" and guard["failures"] == 8
                assert "3 of the last 3" in guard["reason"] and "HITL_GUARD_MAX_FAILURES (3)" in guard["reason"]
                for _ in range(50):  # the gauges are read in the background every 0.2 s here
                    metrics = (await client.get(f"{replica.base}/metrics")).text
                    if "hitl_auto_approval_guard_tripped 1.0" in metrics:
                        break
                    await asyncio.sleep(0.1)
                assert "hitl_auto_approval_guard_tripped 1.0" in metrics

            await _gql(client, b.base, 'mutation { setAutoApprovalPaused(paused: false, reason: "rolled back upstream") { paused } }', token=ADMIN)
            state = (await _gql(client, a.base, GUARD, token=ADMIN))["autoApprovalState"]
            assert not state["paused"] and state["guard"]["outcomes"] == 0 and not state["guard"]["tripped"]
            assert (await _submit(client, a.base, 102))["status"] == "AUTO_APPROVED"

    db = Database.from_url(pg_database_url, pool_min=1, pool_max=2)
    try:
        async with db.read() as session:
            actors = (await session.exec(select(AuditEntry.actor).where(AuditEntry.action == "AUTO_APPROVAL_PAUSED"))).all()
    finally:
        await db.dispose()
    assert list(actors) == ["system:auto-approval-guard"]
