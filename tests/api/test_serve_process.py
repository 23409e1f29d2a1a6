"""`hitl serve` as operators run it: proxy headers decide the client IP in the audit log."""

import json
import socket

import httpx
import pytest

from tests.support.server import API_KEY, SECRET, SERVICE, VIEWER, patch_input
from tests.support import processes
from tests.support.processes import serving

pytestmark = pytest.mark.slow
SUBMIT = "mutation SubmitFromUpstream($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { auditTrail { ipAddress userAgent } } } }"


async def _recorded_ip(base: str, n: int) -> str:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        response = await client.post(
            f"{base}/graphql",
            json={"query": SUBMIT, "variables": {"i": patch_input(n)}, "operationName": "SubmitFromUpstream"},
            headers={"Authorization": f"Bearer {SERVICE}", "X-Forwarded-For": "203.0.113.7, 10.0.0.2", "User-Agent": "upstream/2.0"},
        )
    trail = response.json()["data"]["submitPatch"]["patch"]["auditTrail"]
    assert trail[0]["userAgent"] == "upstream/2.0"
    return trail[0]["ipAddress"]


@pytest.mark.parametrize(("trusted", "expected"), [("127.0.0.1", "10.0.0.2"), ("192.0.2.1", "127.0.0.1")])
async def test_client_ip_behind_a_trusted_proxy(database_url, tmp_path, trusted, expected):
    # uvicorn takes the nearest untrusted address from X-Forwarded-For when the peer is a trusted proxy.
    with serving(database_url, tmp_path, HITL_FORWARDED_ALLOW_IPS=trusted) as (server,):
        assert await _recorded_ip(server.base, 1) == expected
        async with httpx.AsyncClient(trust_env=False) as client:
            me = (await client.post(f"{server.base}/graphql", json={"query": "{ me { subject } }"}, headers={"Authorization": f"Bearer {VIEWER}"})).json()
        assert me == {"data": {"me": {"subject": "vera"}}}
        async with httpx.AsyncClient(trust_env=False) as client:  # a forged token is refused and must not be logged either
            await client.post(f"{server.base}/graphql", json={"query": "{ me { subject } }"}, headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."})
    log = server.log_path.read_text()
    access = [json.loads(line) for line in log.splitlines() if '"hitl.access"' in line]
    assert any(entry.get("operation") == "SubmitFromUpstream" and entry.get("subject") == "svc-upstream" and entry.get("request_id") for entry in access)
    for secret in (SERVICE, VIEWER, SECRET, API_KEY, "eyJhbGciOiJub25lIn0"):
        assert secret not in log


async def test_served_process_freezes_its_startup_objects_and_times_collections(database_url, tmp_path):
    """`hitl serve` leaves what it built at startup out of later collections and reports every pause."""
    from prometheus_client.parser import text_string_to_metric_families

    with serving(database_url, tmp_path) as (server,):
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
            for _ in range(20):  # enough allocation for young collections
                await client.post(f"{server.base}/graphql", json={"query": "{ me { subject } }"}, headers={"Authorization": f"Bearer {VIEWER}"})
            text = (await client.get(f"{server.base}/metrics")).text
    samples = {(s.name, s.labels.get("generation")): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("hitl_gc_frozen_objects", None)] > 50_000  # modules, the schema, the ORM: ~190k at the time of writing
    assert samples[("hitl_gc_pause_seconds_count", "0")] > 0
    assert samples[("hitl_gc_pause_seconds_sum", "0")] > 0


def test_a_server_whose_chosen_port_was_taken_meanwhile_starts_on_another(database_url, tmp_path, monkeypatch):
    """Test support: a port chosen for a server can be bound by another process before the server binds it (seen
    in CI: seven SSO console tests lost their server so); ServeProcess then starts it again on another port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1], processes.free_port()])
        monkeypatch.setattr(processes, "free_port", lambda: next(ports))
        server = processes.ServeProcess(database_url, tmp_path / "serve.log")
        try:
            server.wait_ready()
            assert server.port != taken.getsockname()[1] and "address already in use" in server.log_path.read_text()
        finally:
            server.stop()
