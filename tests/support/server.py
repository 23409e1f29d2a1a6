"""A real uvicorn server on 127.0.0.1 (the `api` fixture of tests/conftest.py), the test credentials, and
submission helpers over GraphQL."""

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from graphql_api.app import create_app
from graphql_api.auth import mint_token
from graphql_api.config import Settings
from graphql_api.server import WS_PROTOCOL
from tests.support.ports import closed_port, free_port  # noqa: F401 - where the tests import them from

SECRET = secrets.token_urlsafe(48)
API_KEY = secrets.token_urlsafe(32)
CHECKPOINT_KEY = secrets.token_urlsafe(48)


def token(subject: str, *roles: str, ttl: int = 6 * 3600) -> str:
    # Many modules mint tokens at import: they must outlive a slow run of the whole suite.
    return mint_token(secret=SECRET, subject=subject, roles=list(roles), ttl_seconds=ttl)


@dataclass
class Api:
    base: str
    client: httpx.AsyncClient
    settings: Settings
    app: object

    async def gql(self, query: str, variables: dict | None = None, *, as_: str | None = None, headers: dict | None = None) -> dict:
        response = await self.post(query, variables, as_=as_, headers=headers)
        return response.json()

    async def post(self, query: str, variables: dict | None = None, *, as_: str | None = None, headers: dict | None = None) -> httpx.Response:
        sent = dict(headers or {})
        if as_ is not None:
            sent["Authorization"] = f"Bearer {as_}"
        return await self.client.post(f"{self.base}/graphql", json={"query": query, "variables": variables or {}}, headers=sent)


def settings_for(database_url: str, **overrides: object) -> Settings:
    values = {
        "database_url": database_url,
        "jwt_secret": SECRET,
        "internal_api_key": API_KEY,
        "audit_checkpoint_key": CHECKPOINT_KEY,
        # Tests that check gauge values read them fresh first (Metrics.refresh); the background read may
        # still run alongside.
        "metrics_refresh_seconds": 3600,
        "sla_check_interval_seconds": 3600,
        "log_format": "console",
        **overrides,
    }
    return Settings(_env_file=None, **values)


async def start_server(settings: Settings) -> tuple[uvicorn.Server, asyncio.Task, str, object]:
    """A started uvicorn server on a free port; fails the test clearly (instead of killing the loop) when the app's
    startup fails."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", ws=WS_PROTOCOL, ws_per_message_deflate=False))

    async def serve() -> int | None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits with 3 when the lifespan startup fails
            return exc.code
        return None

    task = asyncio.create_task(serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        server.should_exit = True
        code = await asyncio.wait_for(task, 10)
        pytest.fail(f"the app did not start (exit code {code}: lifespan startup failed) with HITL_DATABASE_URL={settings.effective_database_url}")
    return server, task, f"http://127.0.0.1:{port}", app


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Api]:
    """A server of its own with these settings, and a client for it; stopped afterwards."""
    server, task, base, app = await start_server(settings)
    try:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            yield Api(base=base, client=client, settings=settings, app=app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)




SERVICE = token("svc-upstream", "service")
VIEWER = token("vera", "viewer")
REVIEWER = token("rita", "reviewer")
REVIEWER2 = token("rob", "reviewer")
LEAD = token("lena", "lead")
ADMIN = token("adam", "admin")

SUBMIT = """
mutation($input: SubmitPatchInput!) {
  submitPatch(input: $input) { created patch { id patchId status version severity priority requiredApprovals requiresEscalation
    autoApprovalEligible mlWargamingAgreement versionBump slaStatus slaDeadline } }
}"""


def patch_input(n: int, **overrides: object) -> dict:
    return {
        "patchId": f"P-{n}",
        "apvId": f"APV-{n}",
        "cveId": f"CVE-2024-{1000 + n}",
        "packageName": "requests",
        "currentVersion": "2.31.0",
        "targetVersion": "2.32.0",
        "severity": "HIGH",
        **overrides,
    }


async def submit(api: Api, n: int, *, as_: str = SERVICE, **overrides: object) -> dict:
    body = await api.gql(SUBMIT, {"input": patch_input(n, **overrides)}, as_=as_)
    assert "errors" not in body, body
    return body["data"]["submitPatch"]["patch"]


async def submit_to(client: httpx.AsyncClient, base: str, n: int, **overrides) -> dict:
    response = await client.post(
        f"{base}/graphql",
        json={"query": "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { id } } }", "variables": {"i": patch_input(n, **overrides)}},
        headers={"Authorization": f"Bearer {SERVICE}"},
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["submitPatch"]["patch"]


async def metrics(api: Api, *, fresh: bool = True) -> dict[tuple[str, tuple], float]:
    """The samples of /metrics; `fresh`: after a read of the database-derived gauges (they are otherwise read in
    the background, every HITL_METRICS_REFRESH_SECONDS)."""
    services = api.app.state.services
    if fresh:
        # The first call may join a background read that began before the caller's last change; the second's read
        # begins after the first's ended.
        for _ in range(2):
            await services.metrics.refresh(services.db, timeout=30)
    response = await api.client.get(f"{api.base}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))
