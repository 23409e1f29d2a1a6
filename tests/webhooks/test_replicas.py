"""Real `hitl serve` processes on one PostgreSQL database: a replica killed (SIGKILL) mid-stream and started
again leaves no gap; two replicas never send an event twice in steady state."""

import asyncio

import httpx
import pytest

from tests.support.processes import ServeProcess, serving
from tests.support.receivers import Receiver
from tests.support.waiting import eventually
from tests.support.server import submit_to
from tests.support.webhooks import ENV, create, first_arrivals, submitted_seqs

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]
async def test_sigkill_mid_stream_and_restart_leaves_no_gap(pg_database_url, tmp_path):
    async with Receiver() as receiver, httpx.AsyncClient(trust_env=False, timeout=30) as client:
        first = ServeProcess(pg_database_url, tmp_path / "serve-a.log", **ENV)
        try:
            await asyncio.to_thread(first.wait_ready)
            await create(client, first.base, receiver.url)
            n = 0
            while len(receiver.received) < 20:  # submit until delivery is under way, then kill the replica mid-stream
                await submit_to(client, first.base, n)
                n += 1
            first.process.kill()
            await asyncio.to_thread(first.process.wait, 10)
        finally:
            first.stop()
        second = ServeProcess(pg_database_url, tmp_path / "serve-b.log", **ENV)
        try:
            await asyncio.to_thread(second.wait_ready)
            for m in range(n, n + 30):
                await submit_to(client, second.base, m)
            expected = await submitted_seqs(client, second.base)
            assert len(expected) == n + 30
            # The dead replica's lease runs out (3 s), the new one resumes from the stored cursor.
            await eventually(lambda: len(first_arrivals(receiver)) == len(expected), timeout=30, what="every event after the restart")
        finally:
            second.stop()
        arrivals = first_arrivals(receiver)
        assert arrivals == expected  # no gap, in order (duplicates, if any, only around the kill)


async def test_two_replicas_send_each_event_once(pg_database_url, tmp_path):
    async with Receiver() as one, Receiver() as two, Receiver() as three, httpx.AsyncClient(trust_env=False, timeout=30) as client:
        with serving(pg_database_url, tmp_path, count=2, **ENV) as (a, b):
            for receiver in (one, two, three):
                await create(client, a.base, receiver.url)
            for n in range(90):
                await submit_to(client, (a, b)[n % 2].base, n)
            expected = await submitted_seqs(client, a.base)
            for receiver in (one, two, three):
                await eventually(lambda receiver=receiver: len(first_arrivals(receiver)) == 90, timeout=30, what="90 events")
        for receiver in (one, two, three):
            assert [item.json["data"]["seq"] for item in receiver.received] == expected  # each once, in order
