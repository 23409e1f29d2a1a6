"""PostgreSQL stopped under a sending replica and started again: delivery pauses while it is down and resumes from
the stored cursor; every event arrives, in order, none lost (duplicates only around the outage)."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from db.migrate import upgrade
from tests.support.pgcluster import throwaway_cluster
from tests.support.processes import ServeProcess
from tests.support.receivers import Receiver
from tests.support.server import submit_to
from tests.support.waiting import eventually
from tests.support.webhooks import ENV, create, first_arrivals, submitted_seqs

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]


async def _ready_is(client: httpx.AsyncClient, base: str, wanted: int) -> bool:
    try:
        return (await client.get(f"{base}/ready", timeout=5)).status_code == wanted
    except httpx.HTTPError:
        return False


async def test_a_database_outage_mid_stream_loses_no_event(tmp_path):
    with throwaway_cluster() as cluster:
        await cluster.execute('CREATE DATABASE "hitl_webhooks"')
        with ThreadPoolExecutor(max_workers=1) as pool:  # alembic starts its own event loop
            pool.submit(upgrade, cluster.url("hitl_webhooks")).result()
        async with Receiver() as receiver, httpx.AsyncClient(trust_env=False, timeout=30) as client:
            server = ServeProcess(cluster.url("hitl_webhooks"), tmp_path / "serve.log", **ENV)
            try:
                await asyncio.to_thread(server.wait_ready)
                await create(client, server.base, receiver.url)
                for n in range(30):
                    await submit_to(client, server.base, n)
                await asyncio.to_thread(cluster.stop, "fast")  # while the sender is still working through the 30
                await eventually(lambda: _ready_is(client, server.base, 503), timeout=20, what="/ready 503 while PostgreSQL is down")
                await asyncio.to_thread(cluster.start)
                await eventually(lambda: _ready_is(client, server.base, 200), timeout=30, what="/ready 200 after PostgreSQL is back")
                for n in range(30, 50):
                    await submit_to(client, server.base, n)
                expected = await submitted_seqs(client, server.base)
                assert len(expected) == 50
                await eventually(lambda: len(first_arrivals(receiver)) == len(expected), timeout=60, what="every event after the outage")
            finally:
                server.stop()
        assert first_arrivals(receiver) == expected  # no gap, in order

