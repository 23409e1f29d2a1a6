"""Two real `hitl serve` processes on one PostgreSQL database: cross-replica delivery, listener loss,
SLA breaches once in total, and SIGTERM telling clients to go elsewhere."""

import asyncio
import asyncpg
import httpx
import pytest
import websockets

from tests.support.server import ADMIN, REVIEWER, VIEWER, submit_to
from tests.support.pg import PG_ADMIN_DSN
from tests.support.processes import serving
from tests.support.waiting import subscriptions_open
from tests.support.wsclient import BRIEF_EVENTS, connect

pytestmark = pytest.mark.slow



async def test_subscriber_on_b_sees_mutations_on_a_in_order(pg_database_url, tmp_path):
    with serving(pg_database_url, tmp_path, count=2) as (a, b):
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client, connect(b.base, token=VIEWER) as subscriber:
            await subscriber.subscribe(BRIEF_EVENTS)
            await subscriptions_open(b.base, 1)
            ids = [(await submit_to(client, a.base, n))["id"] for n in range(20)]
            for patch_id in ids[:10]:
                await client.post(f"{a.base}/graphql", json={"query": f'mutation {{ approvePatch(id: "{patch_id}") {{ id }} }}'}, headers={"Authorization": f"Bearer {REVIEWER}"})
            seqs = [(await subscriber.data())["patchEvents"]["seq"] for _ in range(30)]
    assert seqs == list(range(1, 31))


async def test_listener_killed_while_mutations_continue(pg_database_url, tmp_path):
    with serving(pg_database_url, tmp_path, count=2) as (a, b):
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client, connect(b.base, token=VIEWER) as first, connect(b.base, token=ADMIN) as second:
            await first.subscribe(BRIEF_EVENTS)
            await second.subscribe(BRIEF_EVENTS)
            await subscriptions_open(b.base, 2)
            database = pg_database_url.rsplit("/", 1)[1]
            admin = await asyncpg.connect(PG_ADMIN_DSN)
            try:
                for n in range(60):
                    await submit_to(client, a.base, n)
                    if n % 15 == 5:  # kill every listener on this database, repeatedly, mid-stream
                        killed = await admin.fetchval(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'hitl-listener' AND datname = $1",
                            database,
                        )
                        assert killed >= 1
            finally:
                await admin.close()
            for subscriber in (first, second):
                seqs = [(await subscriber.data(timeout=15))["patchEvents"]["seq"] for _ in range(60)]
                assert seqs == list(range(1, 61))
                with pytest.raises(asyncio.TimeoutError):
                    await subscriber.next_payload(timeout=1)


async def test_sla_breached_once_with_two_replicas(pg_database_url, tmp_path):
    env = {"HITL_SLA_SECONDS_CRITICAL": "1", "HITL_SLA_CHECK_INTERVAL_SECONDS": "0.2"}
    with serving(pg_database_url, tmp_path, count=2, **env) as (a, b):
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client, connect(b.base, token=VIEWER) as subscriber:
            await subscriber.subscribe("subscription { patchEvents(filter: {kinds: [SLA_BREACHED]}) { seq patch { patchId slaStatus } } }")
            for n in range(5):
                await submit_to(client, a.base, n, severity="CRITICAL", targetVersion="2.31.1")
            breached = [(await subscriber.data(timeout=15))["patchEvents"] for _ in range(5)]
            await asyncio.sleep(1.5)  # several more watcher rounds on both replicas
            with pytest.raises(asyncio.TimeoutError):
                await subscriber.next_payload(timeout=0.5)
    assert sorted(e["patch"]["patchId"] for e in breached) == [f"P-{n}" for n in range(5)]
    assert {e["patch"]["slaStatus"] for e in breached} == {"BREACHED"}


async def test_sigterm_closes_websockets_with_going_away(pg_database_url, tmp_path):
    with serving(pg_database_url, tmp_path, count=1) as (server,):
        async with connect(server.base, token=VIEWER) as subscriber:
            await subscriber.subscribe(BRIEF_EVENTS)
            await subscriptions_open(server.base, 1)
            loop = asyncio.get_running_loop()
            exit_code = loop.run_in_executor(None, server.terminate)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(subscriber.connection.recv(), 15)
            assert closed.value.rcvd.code == 1001
            # uvicorn re-raises SIGTERM after a clean shutdown, so the status is "terminated by SIGTERM"
            assert await exit_code in (0, -15)
        assert "Application shutdown complete" in server.log_path.read_text()

