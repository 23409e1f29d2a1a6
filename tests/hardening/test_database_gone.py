"""A database dropped or renamed under a running `hitl serve`: requests answer SERVICE_UNAVAILABLE (never
INTERNAL_SERVER_ERROR), /ready answers 503 with the server's reason, and the same process serves again once
the database is back, without a restart."""

import asyncio
import os
import time
import uuid

import httpx
import pytest

from tests.support.databases import off_loop
from tests.support.pg import pg_admin, pg_url
from tests.support.processes import serving
from tests.support.server import API_KEY, REVIEWER, patch_input

pytestmark = [pytest.mark.hardening, pytest.mark.postgres_only]

SUBMIT = "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { id } } }"
PENDING = "{ pendingPatches(first: 5) { totalCount } }"
RECOVERY_BOUND = 30.0


async def _gql(client: httpx.AsyncClient, base: str, query: str, variables: dict | None = None) -> httpx.Response:
    headers = {"X-API-Key": API_KEY} if query.startswith("mutation") else {"Authorization": f"Bearer {REVIEWER}"}
    return await client.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


async def _assert_unavailable(client: httpx.AsyncClient, base: str, n: int) -> str:
    """A read and a write, each answered as the contract says for a database that cannot serve; /ready's reason."""
    for query, variables in ((PENDING, None), (SUBMIT, {"i": patch_input(n)})):
        response = await _gql(client, base, query, variables)
        body = response.json()
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", body
        assert error["extensions"]["retryable"] is True and error["extensions"]["reason"] == "DATABASE_UNAVAILABLE", body
        assert response.status_code == 503 and response.headers["retry-after"] == "1", body
        assert "select" not in response.text.lower() and "traceback" not in response.text.lower()
    ready = await client.get(f"{base}/ready")
    assert ready.status_code == 503, ready.text
    return ready.json()["reason"]


async def _wait_served(client: httpx.AsyncClient, base: str) -> float:
    """Seconds until /ready is 200 and a read succeeds again (bounded)."""
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY_BOUND:
        if (await client.get(f"{base}/ready")).status_code == 200:
            body = (await _gql(client, base, PENDING)).json()
            if "errors" not in body:
                return time.monotonic() - started
        await asyncio.sleep(0.2)
    pytest.fail(f"the service did not recover within {RECOVERY_BOUND} s after the database came back")


async def _close_to_connections(name: str) -> None:
    """What an operator does before renaming a database: no new sessions, the open ones ended."""
    await pg_admin(
        f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false',
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )


@pytest.fixture
def database_names(pg_template: str):  # noqa: ANN201
    """A copy of the migrated template under a name of its own, and the name it is renamed to; both dropped after."""
    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    name, other = f"hitl_gone_{suffix}", f"hitl_moved_{suffix}"
    off_loop(asyncio.run, pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield name, other
    off_loop(asyncio.run, pg_admin(*(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)' for db in (name, other))))


async def test_renamed_then_dropped_database_is_unavailable_and_the_service_recovers(database_names, pg_template, tmp_path):
    name, other = database_names
    with serving(pg_url(name), tmp_path) as (server,):
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            assert "errors" not in (await _gql(client, server.base, SUBMIT, {"i": patch_input(1)})).json()

            # Renamed under the running service (it may hold pooled and listening sessions).
            await _close_to_connections(name)
            await pg_admin(f'ALTER DATABASE "{name}" RENAME TO "{other}"')
            reason = await _assert_unavailable(client, server.base, 2)
            assert "does not exist" in reason, reason
            await pg_admin(f'ALTER DATABASE "{other}" RENAME TO "{name}"', f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            await _wait_served(client, server.base)
            body = (await _gql(client, server.base, PENDING)).json()
            assert body["data"]["pendingPatches"]["totalCount"] == 1, body  # the same database is back

            # Dropped (its sessions ended by FORCE); then restored as an empty, migrated database.
            await pg_admin(f'DROP DATABASE "{name}" WITH (FORCE)')
            reason = await _assert_unavailable(client, server.base, 3)
            assert "does not exist" in reason, reason
            await pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
            await _wait_served(client, server.base)
            created = (await _gql(client, server.base, SUBMIT, {"i": patch_input(4)})).json()
            assert "errors" not in created, created

        log = server.log_path.read_text()
    assert "INTERNAL_SERVER_ERROR" not in log and "unexpected error" not in log, log[-3000:]
