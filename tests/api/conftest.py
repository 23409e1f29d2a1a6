"""A real uvicorn server on 127.0.0.1 per test, on SQLite and on PostgreSQL."""

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from graphql_api.app import create_app
from graphql_api.auth import mint_token
from graphql_api.config import Settings
from graphql_api.server import WS_PROTOCOL

SECRET = secrets.token_urlsafe(48)
API_KEY = secrets.token_urlsafe(32)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        "metrics_cache_seconds": 0,
        "sla_check_interval_seconds": 3600,
        "log_format": "console",
        **overrides,
    }
    return Settings(_env_file=None, **values)


async def start_server(settings: Settings) -> tuple[uvicorn.Server, asyncio.Task, str, object]:
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", ws=WS_PROTOCOL, ws_per_message_deflate=False))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    return server, task, f"http://127.0.0.1:{port}", app


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    settings = settings_for(database_url)
    server, task, base, app = await start_server(settings)
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        yield Api(base=base, client=client, settings=settings, app=app)
    server.should_exit = True
    await task


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
