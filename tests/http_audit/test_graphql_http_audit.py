"""GraphQL over HTTP conformance: the npm `graphql-http` server audits against the real app.

The audits (tests/http_audit/run-audits.js, versions pinned in package-lock.json, installed by
scripts/install-test-tools.sh) send their requests without credentials, exactly as written: they only
need `{ __typename }` and `__type(...)`, which no permission guards. Every MUST and SHOULD audit has to
pass; the content negotiation behind them lives in graphql_api/http/graphql_http.py, and the checks below
pin the parts the audits do not look at (legacy application/json clients, error bodies, 405, batches).
"""

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from graphql_api.http.graphql_http import GRAPHQL_RESPONSE, JSON, _outcome, preferred_media_type
from tests.support.server import VIEWER, settings_for, start_server

AUDIT_DIR = Path(__file__).resolve().parent
ROOT = AUDIT_DIR.parent.parent
RUNNER = AUDIT_DIR / "run-audits.js"
# graphql-http 1.23.1 (pinned) defines 61 server audits: 13 MUST, 23 SHOULD, 25 MAY. Update with the pin.
EXPECTED_AUDITS = {"MUST": 13, "SHOULD": 23, "MAY": 25}
AUDIT_TIMEOUT_SECONDS = 120

# One backend is enough: the HTTP layer does not depend on it.
on_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="session")
def audit_tools() -> Path:
    """node_modules for the runner: scripts/install-test-tools.sh is a no-op when already installed."""
    node = shutil.which("node")
    assert node, "node is not installed: tests/http_audit needs Node 20+ (see scripts/install-test-tools.sh)"
    installed = subprocess.run(["bash", str(ROOT / "scripts" / "install-test-tools.sh")], capture_output=True, text=True, timeout=600, check=False)
    assert installed.returncode == 0, f"scripts/install-test-tools.sh failed:\n{installed.stdout}\n{installed.stderr}"
    return Path(node)


@pytest.fixture
async def base_url(database_url: str) -> AsyncIterator[str]:
    server, task, base, _app = await start_server(settings_for(database_url))
    try:
        yield base
    finally:
        server.should_exit = True
        await task


async def run_audits(node: Path, url: str, *, authorization: str | None = None) -> list[dict]:
    # The server runs on this event loop: the runner must not block it.
    env = {key: value for key, value in os.environ.items() if key != "HITL_AUDIT_AUTHORIZATION"}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if authorization:
        env["HITL_AUDIT_AUTHORIZATION"] = authorization
    process = await asyncio.create_subprocess_exec(
        str(node), str(RUNNER), url, cwd=AUDIT_DIR, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), AUDIT_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"graphql-http audits did not finish within {AUDIT_TIMEOUT_SECONDS}s") from None
    assert process.returncode == 0, f"audit runner failed ({process.returncode}):\n{stderr.decode()}"
    return json.loads(stdout)


def level(result: dict) -> str:
    return result["name"].split(" ", 1)[0]


@on_sqlite
async def test_every_must_and_should_audit_passes(audit_tools: Path, base_url: str) -> None:
    results = await run_audits(audit_tools, f"{base_url}/graphql")

    counts = {name: sum(1 for result in results if level(result) == name) for name in EXPECTED_AUDITS}
    assert counts == EXPECTED_AUDITS, f"unexpected audit set (graphql-http version changed?): {counts}"
    assert len({result["id"] for result in results}) == len(results)
    failures = [result for result in results if level(result) in ("MUST", "SHOULD") and result["status"] != "ok"]
    assert not failures, f"{len(failures)} MUST/SHOULD graphql-http audit(s) failed:\n" + "\n".join(
        f"- [{result['id']}] {result['name']}: {result['status']}: {result['reason']}" for result in failures
    )


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("application/json", JSON),
        ("application/json; charset=utf-8", JSON),
        ("text/html", JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, {JSON}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE};q=0.5", JSON),
        (f"{GRAPHQL_RESPONSE};q=0.5, */*", JSON),
        (f"{GRAPHQL_RESPONSE}, */*;q=0.1", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0", JSON),
        (f"{GRAPHQL_RESPONSE};q=bogus, {JSON};q=0.2", JSON),
        ("APPLICATION/GRAPHQL-RESPONSE+JSON ; Q=0.8", GRAPHQL_RESPONSE),
    ],
)
def test_accept_negotiation(accept: str | None, expected: str) -> None:
    assert preferred_media_type(accept) == expected


@on_sqlite
async def test_negotiation_details_the_audits_do_not_check(base_url: str) -> None:
    url = f"{base_url}/graphql"
    as_json = {"accept": JSON}
    as_response = {"accept": GRAPHQL_RESPONSE}
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        # Legacy clients: a validation error is still 200 application/json, with a coded error and no data.
        legacy = await client.post(url, json={"query": "{ nope }"}, headers=as_json)
        assert (legacy.status_code, legacy.headers["content-type"]) == (200, JSON)
        assert "data" not in legacy.json() and legacy.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "accept" in legacy.headers["vary"].lower()
        modern = await client.post(url, json={"query": "{ nope }"}, headers=as_response)
        assert (modern.status_code, modern.headers["content-type"]) == (400, GRAPHQL_RESPONSE)
        assert modern.json() == legacy.json()

        # Field errors are not request errors: data (here null) is present and the status stays 200.
        for headers in (as_json, as_response):
            denied = await client.post(url, json={"query": "{ __typename me { subject } }"}, headers=headers)
            assert denied.status_code == 200 and denied.json()["data"] is None
            assert denied.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        allowed = await client.post(url, json={"query": "{ me { subject } }"}, headers={**as_response, "authorization": f"Bearer {VIEWER}"})
        assert (allowed.status_code, allowed.headers["content-type"], allowed.json()) == (200, GRAPHQL_RESPONSE, {"data": {"me": {"subject": "vera"}}})

        # Requests that are not well-formed: 4xx with a GraphQL-shaped JSON body in the negotiated type.
        for headers, media_type in ((as_json, JSON), (as_response, GRAPHQL_RESPONSE), ({}, JSON)):
            for body, content_type in (('{ "not a JSON', "application/json"), ('{"query": "{ __typename }", "variables": "x"}', "application/json"), ('{"query": "{ __typename }"}', "text/plain")):
                bad = await client.post(url, content=body, headers={**headers, "content-type": content_type})
                assert (bad.status_code, bad.headers["content-type"]) == (400, media_type), (headers, body, bad.text)
                error = bad.json()["errors"][0]
                assert error["message"] and error["extensions"] == {"code": "BAD_USER_INPUT"}, bad.text

        # GET: queries run, mutations are refused with 405 before execution.
        query = await client.get(url, params={"query": "{ __typename }"}, headers=as_response)
        assert (query.status_code, query.json()) == (200, {"data": {"__typename": "Query"}})
        mutation = await client.get(url, params={"query": "mutation { __typename }"}, headers=as_response)
        assert (mutation.status_code, mutation.headers["allow"], mutation.headers["content-type"]) == (405, "POST", GRAPHQL_RESPONSE)
        assert mutation.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

        # Batches report per operation and stay 200 in both media types.
        batch_body = [{"query": "{ __typename }"}, {"query": "{"}]
        for headers, media_type in ((as_json, JSON), (as_response, GRAPHQL_RESPONSE)):
            batch = await client.post(url, json=batch_body, headers=headers)
            assert (batch.status_code, batch.headers["content-type"]) == (200, media_type)
            first, second = batch.json()
            assert first == {"data": {"__typename": "Query"}} and "data" not in second and second["errors"]


def test_pre_execution_failures_split_into_request_and_server_errors() -> None:
    parse_error = GraphQLError("Syntax Error", extensions={"code": "BAD_USER_INPUT"})
    ours = GraphQLError("Internal server error", extensions={"code": "INTERNAL_SERVER_ERROR"})
    field_error = GraphQLError("denied", path=["me"], extensions={"code": "UNAUTHENTICATED"})
    assert _outcome(ExecutionResult(data=None, errors=[parse_error])) == "request_error"
    assert _outcome(ExecutionResult(data=None, errors=[ours])) == "internal_error"
    assert _outcome(ExecutionResult(data=None, errors=[field_error])) == "ok"
    assert _outcome(ExecutionResult(data={"__typename": "Query"}, errors=None)) == "ok"
