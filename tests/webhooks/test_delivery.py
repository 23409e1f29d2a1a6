"""Delivery to real receivers on 127.0.0.1, in one process, on SQLite and PostgreSQL."""


from standardwebhooks import Webhook

from tests.support.receivers import Receiver
from tests.support.waiting import eventually
from tests.support.server import submit
from tests.support.webhooks import create_webhook, endpoints, logged, webhook_api


async def test_events_arrive_signed_in_order_with_their_type_id_and_subject(database_url: str) -> None:
    async with webhook_api(database_url) as api, Receiver() as receiver:
        endpoint, secret = await create_webhook(api, receiver.url)
        assert secret.startswith("whsec_")
        submitted = [await submit(api, n) for n in range(200)]
        await eventually(lambda: len(receiver.received) >= 200, timeout=60, what="200 events")
        verifier = Webhook(secret)
        for item in receiver.received:
            verifier.verify(item.body, item.headers)  # raises when the signature does not verify
            assert item.headers["webhook-id"] == item.json["id"]
            assert item.headers["content-type"] == "application/cloudevents+json"
        events = receiver.events()
        assert len(events) == 200
        seqs = [event["data"]["seq"] for event in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == 200
        assert [event["subject"] for event in events] == [patch["patchId"] for patch in submitted]
        assert {event["type"] for event in events} == {"ai.maximus.hitl.patch.submitted"}
        assert {event["specversion"] for event in events} == {"1.0"}
        assert {event["source"] for event in events} == {"/hitl-patch-service"}
        assert events[0]["data"]["patch"]["id"] == submitted[0]["id"]
        log = await logged(api, endpoint["id"], 200)
        assert log["totalCount"] == 200
        assert {edge["node"]["status"] for edge in log["edges"]} == {"DELIVERED"}
        [listed] = await endpoints(api)
        assert listed["lastDeliveredSeq"] == max(seqs) and listed["lagEvents"] <= 1  # the last entry may be the log's own
