"""Failing receivers: backoff, giving up, re-enabling and redelivering, a hanging receiver beside a healthy one,
a receiver down for 20 s."""

import asyncio
import time

import pytest

from tests.support.receivers import Receiver
from tests.support.waiting import eventually
from tests.support.server import ADMIN, submit
from tests.support.webhooks import REDELIVER, UPDATE, create_webhook, deliveries, endpoints, logged, webhook_api


async def test_a_failing_receiver_sees_exponential_backoff_then_gets_everything_in_order(database_url: str) -> None:
    async with webhook_api(database_url) as api, Receiver(status=500) as receiver:
        endpoint, _ = await create_webhook(api, receiver.url)
        await submit(api, 1)
        await eventually(lambda: len(receiver.received) >= 5, timeout=30, what="5 attempts")
        gaps = [later.at - earlier.at for earlier, later in zip(receiver.received, receiver.received[1:5], strict=False)]
        # initial 0.2 s doubling, up to 0.2 s of jitter, capped at 1 s: about 0.2-0.4, 0.4-0.6, 0.8-1.0, 1.0
        assert all(gap >= 0.18 for gap in gaps), gaps
        assert gaps[2] > gaps[0] + 0.3 and gaps[2] > gaps[1] + 0.1, gaps
        assert len({item.headers["webhook-id"] for item in receiver.received}) == 1  # the same message, re-signed
        log = await deliveries(api, endpoint["id"])
        [head] = [edge["node"] for edge in log["edges"]]
        assert head["status"] == "RETRYING" and head["attempts"] >= 4 and head["lastStatusCode"] == 500 and head["nextAttemptAt"]
        await submit(api, 2)
        receiver.status = 200
        await eventually(lambda: len({item.json["subject"] for item in receiver.received}) == 2, timeout=10, what="both events")
        delivered = [item.json["subject"] for item in receiver.received if item.at >= receiver.received[-2].at]
        assert delivered == ["P-1", "P-2"]


async def test_after_the_retry_window_failed_and_failing_until_redelivered_or_reenabled(database_url: str) -> None:
    async with webhook_api(database_url, webhook_max_retry_seconds=1.0) as api, Receiver(status=503) as receiver:
        endpoint, _ = await create_webhook(api, receiver.url)
        await submit(api, 1)

        async def failing() -> bool:
            return (await endpoints(api))[0]["failing"]

        deadline = time.monotonic() + 20
        while not await failing():
            assert time.monotonic() < deadline, "the endpoint never became failing"
            await asyncio.sleep(0.1)
        [head] = [edge["node"] for edge in (await deliveries(api, endpoint["id"]))["edges"]]
        assert head["status"] == "FAILED" and head["lastStatusCode"] == 503 and head["nextAttemptAt"] is None
        await submit(api, 2)  # waits behind the failed event
        receiver.status = 200
        switched = time.monotonic()
        body = await api.gql(REDELIVER, {"id": head["id"]}, as_=ADMIN)
        assert body["data"]["redeliverWebhook"]["endpoint"]["failing"] is False
        await eventually(lambda: {"P-1", "P-2"} <= {item.json["subject"] for item in receiver.received if item.at >= switched}, timeout=10, what="both")
        # P-2 was never sent while the endpoint was failing, and came after P-1.
        assert [item.json["subject"] for item in receiver.received if item.json["subject"] == "P-2" and item.at < switched] == []
        assert [item.json["subject"] for item in receiver.received if item.at >= switched] == ["P-1", "P-2"]

        # Failing again, then re-enabled: the failed event is given up and the stream goes on with the next.
        receiver.status = 500
        await submit(api, 3)
        deadline = time.monotonic() + 20
        while not await failing():
            assert time.monotonic() < deadline, "the endpoint never became failing"
            await asyncio.sleep(0.1)
        await submit(api, 4)
        receiver.status = 200
        switched = time.monotonic()
        body = await api.gql(UPDATE, {"id": endpoint["id"], "i": {"url": receiver.url, "enabled": True}}, as_=ADMIN)
        assert body["data"]["updateWebhook"]["failing"] is False
        await eventually(lambda: any(item.json["subject"] == "P-4" for item in receiver.received), timeout=10, what="P-4")
        assert [item.json["subject"] for item in receiver.received if item.at >= switched] == ["P-4"]
        statuses = {edge["node"]["eventSeq"]: edge["node"]["status"] for edge in (await logged(api, endpoint["id"], 4))["edges"]}
        assert sorted(statuses.values()) == ["DELIVERED", "DELIVERED", "DELIVERED", "FAILED"]


async def test_a_hanging_receiver_does_not_slow_a_healthy_one(database_url: str) -> None:
    async with webhook_api(database_url, webhook_timeout_seconds=5.0) as api, Receiver(hang=True) as hanging, Receiver() as healthy:
        await create_webhook(api, hanging.url)
        await create_webhook(api, healthy.url)
        for n in range(50):
            await submit(api, n)
        await eventually(lambda: len(healthy.received) == 50, timeout=15, what="50 events at the healthy receiver")
        # All of it received while the hanging receiver still held its first request (5 s timeout), judged by the
        # receivers' own receipt times: when this test's task noticed can lag behind on a loaded machine.
        assert len(hanging.received) == 1 and healthy.received[-1].at - hanging.received[0].at < 5.0
        assert [item.json["subject"] for item in healthy.received] == [f"P-{n}" for n in range(50)]


@pytest.mark.slow
async def test_a_receiver_down_for_20_s_then_up_gets_everything_in_order(pg_database_url: str) -> None:
    async with webhook_api(pg_database_url) as api:
        receiver = Receiver()
        endpoint, _ = await create_webhook(api, receiver.url)  # never started: connection refused
        down_since = time.monotonic()
        for n in range(40):
            await submit(api, n)
        await asyncio.sleep(max(0.0, 20 - (time.monotonic() - down_since)))  # the outage itself lasts 20 s
        log = await deliveries(api, endpoint["id"])
        assert log["edges"][0]["node"]["status"] == "RETRYING" and "Connect" in (log["edges"][0]["node"]["lastError"] or "")
        await receiver.start()
        try:
            await eventually(lambda: len({item.json["id"] for item in receiver.received}) == 40, timeout=15, what="40 distinct events")
        finally:
            await receiver.stop()
        first_seen: dict[str, int] = {}
        for item in receiver.received:
            first_seen.setdefault(item.json["id"], item.json["data"]["seq"])
        seqs = list(first_seen.values())
        assert seqs == sorted(seqs) and [item.json["subject"] for item in receiver.received][:1] == ["P-0"]
        assert [receiver.received[i].json["subject"] for i in range(len(receiver.received))][-1] == "P-39"
        assert sorted({item.json["subject"] for item in receiver.received}) == sorted(f"P-{n}" for n in range(40))
