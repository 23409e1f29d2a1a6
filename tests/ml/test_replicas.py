"""Two `hitl serve` processes on one PostgreSQL database: model activation and the kill switch reach
the other replica without a restart."""

import asyncio
import os
import subprocess
import sys

import httpx
import pytest

from tests.support.server import ADMIN, SERVICE, patch_input
from tests.support.processes import serving

pytestmark = pytest.mark.slow
WARGAMING = {"phase1Success": True, "phase2Success": True, "validationPassed": True, "executionTimeMs": 1000}


async def _gql(client: httpx.AsyncClient, base: str, query: str, variables: dict | None = None, *, token: str) -> dict:
    body = (await client.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {token}"})).json()
    assert "errors" not in body, body
    return body["data"]


async def _submit(client, base, n, **overrides) -> dict:
    query = "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { status mlPrediction { modelVersion confidence } } } }"
    return (await _gql(client, base, query, {"i": patch_input(n, **overrides)}, token=SERVICE))["submitPatch"]["patch"]


async def test_new_model_and_pause_reach_the_other_replica(pg_database_url, tmp_path):
    env = {**os.environ, "HITL_DATABASE_URL": pg_database_url}
    demo = subprocess.run([sys.executable, "-m", "graphql_api.cli", "demo", "--count", "1500"], env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    with serving(pg_database_url, tmp_path, count=2) as (a, b):
        async with httpx.AsyncClient(trust_env=False, timeout=120) as client:
            before = (await _submit(client, b.base, 1))["mlPrediction"]["modelVersion"]
            trained = (await _gql(client, a.base, "mutation { trainModel { version } }", token=ADMIN))["trainModel"]["version"]
            assert trained != before
            seen = None
            for n in range(2, 40):  # B switches when its hub reads the MODEL_ACTIVATED event
                seen = (await _submit(client, b.base, n))["mlPrediction"]["modelVersion"]
                if seen == trained:
                    break
                await asyncio.sleep(0.1)
            assert seen == trained

            confident = {"modelVersion": "upstream", "confidence": 0.999, "prediction": True}
            assert (await _submit(client, b.base, 100, mlPrediction=confident, wargaming=WARGAMING))["status"] == "AUTO_APPROVED"
            await _gql(client, a.base, 'mutation { setAutoApprovalPaused(paused: true, reason: "drill") { paused } }', token=ADMIN)
            held = await _submit(client, b.base, 101, mlPrediction=confident, wargaming=WARGAMING)  # at once: no wait
            assert held["status"] == "PENDING"
            state = await _gql(client, b.base, "{ autoApprovalState { paused reason changedBy } }", token=ADMIN)
            assert state["autoApprovalState"] == {"paused": True, "reason": "drill", "changedBy": "adam"}
