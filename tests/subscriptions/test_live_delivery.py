"""Live patchEvents frames written by the hub itself (graphql_api.live.delivery): the very text strawberry
sends, in seq order across the replay-to-live switch, and strawberry's path whenever a direct write could
not be exact. The real write runs in every test; the fixture only records what went out that way."""

import asyncio
import contextlib
import json

import pytest

from db.services.audit_log import seq_cursor
from graphql_api.schema.types import patch as patch_types
from graphql_api.live.ws_protocol import LeanWebSocketProtocol
from tests.support.server import REVIEWER, VIEWER, submit
from tests.support.waiting import subscriptions_open
from tests.support.wsclient import LEGACY_WS, connect

EVENTS = "subscription($after: String) { patchEvents(after: $after) { cursor seq kind actor patch { patchId status approvals { approver } } } }"


@pytest.fixture
def direct_frames(monkeypatch) -> list[str]:
    frames: list[str] = []
    write_text = LeanWebSocketProtocol.write_text

    def recording(self, text: str) -> bool:
        sent = write_text(self, text)
        if sent:
            frames.append(text)
        return sent

    monkeypatch.setattr(LeanWebSocketProtocol, "write_text", recording)
    return frames


def _failing_when_on(monkeypatch, owner: type, name: str) -> dict:  # noqa: ANN001
    """Makes the mapping `owner.name` (called while a result is executed) raise while the returned switch is on."""
    failing = {"on": False}
    original = getattr(owner, name)

    def mapped(data):  # noqa: ANN001, ANN202
        if failing["on"]:
            raise RuntimeError(f"{owner.__name__} unreadable")
        return original(data)

    monkeypatch.setattr(owner, name, staticmethod(mapped))
    return failing


async def _raw_next(client, timeout: float = 10) -> str:
    while True:
        text = await asyncio.wait_for(client.connection.recv(), timeout)
        if json.loads(text)["type"] not in ("ping", "pong", "ka"):
            return text


async def test_direct_frames_are_the_text_strawberry_sends(api, direct_frames):
    async with connect(api.base, token=VIEWER) as first, connect(api.base, token=VIEWER) as second, connect(
        api.base, token=VIEWER, protocol=LEGACY_WS
    ) as legacy:
        ids = [await client.subscribe(EVENTS) for client in (first, second, legacy)]
        await subscriptions_open(api.base, 3)
        patch = await submit(api, 1, severity="CRITICAL", targetVersion="2.31.1")
        body = await api.gql("mutation($id: ID!) { approvePatch(id: $id) { status } }", {"id": patch["id"]}, as_=REVIEWER)
        assert "errors" not in body, body
        await submit(api, 2)
        received = {client: [await _raw_next(client) for _ in range(3)] for client in (first, second)}
        through_strawberry = [(await legacy.data())["patchEvents"] for _ in range(3)]
    for client, op_id in zip((first, second), ids, strict=False):
        expected = [json.dumps({"id": op_id, "type": "next", "payload": {"data": {"patchEvents": event}}}, separators=(",", ":")) for event in through_strawberry]
        assert received[client] == expected
    assert [event["seq"] for event in through_strawberry] == [1, 2, 3]
    assert through_strawberry[1]["patch"]["approvals"] == [{"approver": "rita"}]
    # Every live frame of the two graphql-transport-ws subscribers went out directly; graphql-ws never does.
    assert sorted(direct_frames) == sorted(received[first] + received[second])


async def test_replay_then_live_keeps_seq_order_without_gaps_or_repeats(api, direct_frames):
    """Events keep arriving while a subscriber replays 40 stored ones: it switches to direct frames only
    once its generator has sent everything queued."""
    for n in range(40):
        await submit(api, n)
    async with connect(api.base, token=VIEWER) as client:
        await client.subscribe(EVENTS, {"after": seq_cursor(0)})
        writer = asyncio.create_task(_submit_many(api, range(100, 130)))
        seqs = [(await client.data(timeout=30))["patchEvents"]["seq"] for _ in range(30)]
        await writer
        seqs += [(await client.data(timeout=30))["patchEvents"]["seq"] for _ in range(40)]
        await submit(api, 999)
        last = (await client.data())["patchEvents"]
        with pytest.raises(asyncio.TimeoutError):
            await client.next_payload(timeout=0.5)
    assert seqs == list(range(1, 71)) and last["seq"] == 71
    assert 0 < len(direct_frames) < 71  # the replay went through strawberry, the live end directly


async def _submit_many(api, numbers) -> None:  # noqa: ANN001
    for n in numbers:
        await submit(api, n)


async def test_an_event_with_errors_goes_through_strawberry(api, direct_frames, monkeypatch):
    """strawberry formats errors (and our codes): such a result is never written directly, and the next
    clean event is again."""
    failing = _failing_when_on(monkeypatch, patch_types.AuditEntry, "from_model")
    query = "subscription { patchEvents { seq kind patch { patchId auditTrail { action } } } }"
    async with connect(api.base, token=VIEWER) as client:
        await client.subscribe(query)
        await subscriptions_open(api.base, 1)
        patch = await submit(api, 1)
        clean = json.loads(await _raw_next(client))
        failing["on"] = True
        body = await api.gql('mutation($id: ID!) { addComment(id: $id, body: "hm") { id } }', {"id": patch["id"]}, as_=REVIEWER)
        assert "errors" not in body, body
        broken = json.loads(await _raw_next(client))
        failing["on"] = False
        await submit(api, 2)
        after = json.loads(await _raw_next(client))
    assert clean["payload"]["data"]["patchEvents"]["seq"] == 1 and after["payload"]["data"]["patchEvents"]["seq"] == 3
    error = broken["payload"]["errors"][0]
    assert broken["type"] == "next" and error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["message"] == "Internal server error" and "unreadable" not in json.dumps(broken)
    assert [json.loads(frame)["payload"]["data"]["patchEvents"]["seq"] for frame in direct_frames] == [1, 3]


async def test_fan_out_in_slices_keeps_every_subscriber_in_order(api, direct_frames):
    """The hub lets requests run between slices of a fan-out: subscribers still get every event once, in
    order, whether they are written to directly, were just woken, or are replaying."""
    hub = api.app.state.services.hub
    hub.delivery_slice = 2
    for n in range(10):
        await submit(api, n)
    async with asyncio.timeout(10):  # live subscribers start where the hub is: let it take in the 10 events first
        while hub.last_seq != 10:
            await asyncio.sleep(0.01)
    async with contextlib.AsyncExitStack() as stack:
        live = [await stack.enter_async_context(connect(api.base, token=VIEWER)) for _ in range(6)]
        for client in live:
            await client.subscribe(EVENTS)
        await subscriptions_open(api.base, len(live))
        writer = asyncio.create_task(_submit_many(api, range(100, 125)))
        replaying = await stack.enter_async_context(connect(api.base, token=VIEWER))
        await replaying.subscribe(EVENTS, {"after": seq_cursor(0)})
        await writer
        received = [[(await client.data(timeout=30))["patchEvents"]["seq"] for _ in range(25)] for client in live]
        replayed = [(await replaying.data(timeout=30))["patchEvents"]["seq"] for _ in range(35)]
    assert received == [list(range(11, 36))] * 6 and replayed == list(range(1, 36))
    assert len(direct_frames) >= 6 * 25 // 2  # most live frames went out directly despite the slices


PAGES = {
    "pendingQueue": "subscription { pendingQueue(first: 5) { totalCount asOfSeq items { patchId status approvals { approver } } } }",
    "pendingGroups": "subscription { pendingGroups(first: 5) { totalCount asOfSeq items { key pendingCount members(first: 2) { totalCount } } } }",
}


@pytest.mark.parametrize("field", sorted(PAGES))
async def test_live_pages_are_written_directly_with_the_text_strawberry_sends(api, direct_frames, field):
    """The first page goes through strawberry; each later page, while the subscriber's generator is parked, is
    written by the hub (graphql_api.live.hub.PageFollower): the very frame strawberry would send, and the same
    pages in the same order as a graphql-ws subscriber gets them through strawberry."""
    async with connect(api.base, token=VIEWER) as first, connect(api.base, token=VIEWER) as second, connect(
        api.base, token=VIEWER, protocol=LEGACY_WS
    ) as legacy:
        ids = [await client.subscribe(PAGES[field]) for client in (first, second, legacy)]
        received = {client: [await _raw_next(client)] for client in (first, second)}
        pages = [(await legacy.data())[field]]
        await subscriptions_open(api.base, 3)
        for n in range(1, 4):
            await submit(api, n, cveId=f"CVE-2026-{1000 + n}")
            for client in (first, second):
                received[client].append(await _raw_next(client))
            pages.append((await legacy.data())[field])
    assert [page["totalCount"] for page in pages] == [0, 1, 2, 3]
    for client, op_id in zip((first, second), ids, strict=False):
        expected = [json.dumps({"id": op_id, "type": "next", "payload": {"data": {field: page}}}, separators=(",", ":")) for page in pages]
        assert received[client] == expected
    assert sorted(direct_frames) == sorted(received[first][1:] + received[second][1:])


async def test_a_page_with_errors_goes_through_strawberry(api, direct_frames, monkeypatch):
    """A page whose execution fails is never written directly: the subscriber's generator sends strawberry's coded
    error, and the next clean page is written directly again."""
    failing = _failing_when_on(monkeypatch, patch_types.WargamingResult, "from_dict")
    wargaming = {"phase1Success": True, "phase2Success": False, "validationPassed": False, "executionTimeMs": 10}
    query = "subscription { pendingQueue(first: 5) { totalCount items { patchId wargaming { validationPassed } } } }"
    async with connect(api.base, token=VIEWER) as client:
        await client.subscribe(query)
        first = json.loads(await _raw_next(client))
        await subscriptions_open(api.base, 1)
        await submit(api, 1, wargaming=wargaming)
        clean = json.loads(await _raw_next(client))
        failing["on"] = True
        await submit(api, 2)
        broken = json.loads(await _raw_next(client))
        failing["on"] = False
        await submit(api, 3)
        after = json.loads(await _raw_next(client))
    totals = [message["payload"]["data"]["pendingQueue"]["totalCount"] for message in (first, clean, after)]
    assert totals == [0, 1, 3]
    error = broken["payload"]["errors"][0]
    assert broken["type"] == "next" and error["extensions"]["code"] == "INTERNAL_SERVER_ERROR" and "unreadable" not in json.dumps(broken)
    assert [json.loads(frame)["payload"]["data"]["pendingQueue"]["totalCount"] for frame in direct_frames] == [1, 3]
