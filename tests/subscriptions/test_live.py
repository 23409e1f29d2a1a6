"""Subscriptions against a real server (SQLite and PostgreSQL): replay, live, filters, auth, slow consumers."""

import asyncio
import contextlib
import json

import pytest
import websockets

from tests.api.conftest import ADMIN, LEAD, REVIEWER, REVIEWER2, SERVICE, VIEWER, submit, token
from tests.subscriptions.wsclient import LEGACY_WS, TRANSPORT_WS, connect

EVENTS = "subscription($after: String, $filter: PatchEventFilter) { patchEvents(after: $after, filter: $filter) { cursor seq kind actor patch { patchId status } } }"
QUEUE = "subscription($first: Int) { pendingQueue(first: $first) { totalCount asOfSeq items { patchId status priority } } }"


async def _approve(api, patch_id: str, as_: str = REVIEWER) -> None:
    body = await api.gql("mutation($id: ID!) { approvePatch(id: $id) { status } }", {"id": patch_id}, as_=as_)
    assert "errors" not in body, body


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_live_events_in_order(api, protocol):
    async with connect(api.base, token=VIEWER, protocol=protocol) as client:
        await client.subscribe(EVENTS)
        await asyncio.sleep(0.2)
        first = await submit(api, 1)
        await _approve(api, first["id"])
        second = await submit(api, 2)
        received = [(await client.data())["patchEvents"] for _ in range(3)]
    assert [(e["seq"], e["kind"], e["patch"]["patchId"]) for e in received] == [(1, "SUBMITTED", "P-1"), (2, "APPROVED", "P-1"), (3, "SUBMITTED", "P-2")]
    assert received[1]["actor"] == "rita" and second["status"] == "PENDING"


async def test_reconnect_with_after_replays_exactly_the_missed_events(api):
    async with connect(api.base, token=VIEWER) as client:
        await client.subscribe(EVENTS)
        await asyncio.sleep(0.1)
        await submit(api, 0)
        cursor = (await client.data())["patchEvents"]["cursor"]
    for n in range(1, 51):  # 50 changes while disconnected
        await submit(api, n)
    async with connect(api.base, token=VIEWER) as client:
        await client.subscribe(EVENTS, {"after": cursor})
        replayed = [(await client.data())["patchEvents"]["seq"] for _ in range(50)]
        await submit(api, 99)
        live = (await client.data())["patchEvents"]
        with pytest.raises(asyncio.TimeoutError):
            await client.next_payload(timeout=0.5)
    assert replayed == list(range(2, 52)) and live["seq"] == 52 and live["patch"]["patchId"] == "P-99"


async def test_filters(api):
    async with connect(api.base, token=VIEWER) as client:
        await client.subscribe(EVENTS, {"filter": {"kinds": ["APPROVED"]}})
        await asyncio.sleep(0.1)
        first = await submit(api, 1)
        await submit(api, 2)
        await _approve(api, first["id"])
        event = (await client.data())["patchEvents"]
    assert (event["kind"], event["patch"]["patchId"]) == ("APPROVED", "P-1")


async def test_pending_queue_follows_submit_approve_escalate(api):
    async with connect(api.base, token=VIEWER) as client:
        await client.subscribe(QUEUE, {"first": 10})
        initial = (await client.data())["pendingQueue"]
        assert initial == {"totalCount": 0, "asOfSeq": 0, "items": []}
        patch = await submit(api, 1, severity="LOW")
        after_submit = (await client.data())["pendingQueue"]
        assert [i["patchId"] for i in after_submit["items"]] == ["P-1"]
        await api.gql("mutation($id: ID!) { escalatePatch(id: $id, reason: \"lead please\") { status } }", {"id": patch["id"]}, as_=REVIEWER)
        escalated = (await client.data())["pendingQueue"]
        assert escalated["items"][0]["status"] == "ESCALATED" and escalated["totalCount"] == 1
        await _approve(api, patch["id"], as_=LEAD)
        emptied = (await client.data())["pendingQueue"]
        assert emptied["totalCount"] == 0 and emptied["asOfSeq"] == 3


async def test_analytics_summary_subscription(api):
    async with connect(api.base, token=VIEWER) as client:
        await client.subscribe("subscription { analyticsSummary { totalPatches pending } }")
        assert (await client.data())["analyticsSummary"] == {"totalPatches": 0, "pending": 0}
        await submit(api, 1)
        assert (await client.data())["analyticsSummary"] == {"totalPatches": 1, "pending": 1}


@pytest.mark.parametrize("credential", [None, "not-a-token", token("x", "viewer", ttl=-120)])
async def test_refused_without_valid_token(api, credential):
    url = api.base.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[TRANSPORT_WS], proxy=None) as connection:
        await connection.send(json.dumps({"type": "connection_init", "payload": {"token": credential} if credential else {}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(connection.recv(), 5)
    assert closed.value.rcvd.code == 4401


async def test_legacy_protocol_refusal_is_a_connection_error(api):
    url = api.base.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[LEGACY_WS], proxy=None) as connection:
        await connection.send(json.dumps({"type": "connection_init", "payload": {}}))
        message = json.loads(await asyncio.wait_for(connection.recv(), 5))
    assert message["type"] == "connection_error"


async def test_active_subscriptions_gauge_is_exact(api):
    async def gauge() -> float:
        text = (await api.client.get(f"{api.base}/metrics")).text
        return float(next(line.split()[1] for line in text.splitlines() if line.startswith("hitl_active_subscriptions ")))

    assert await gauge() == 0
    async with connect(api.base, token=VIEWER) as one, connect(api.base, token=ADMIN) as two:
        await one.subscribe(EVENTS)
        await one.subscribe(QUEUE)
        await two.subscribe(EVENTS)
        await one.data()  # the queue's first page: the subscriptions are running
        await asyncio.sleep(0.2)
        assert await gauge() == 3
    for _ in range(50):
        if await gauge() == 0:
            break
        await asyncio.sleep(0.05)
    assert await gauge() == 0


async def test_slow_consumer_is_cut_off_while_others_keep_receiving(api):
    """The slow client asks for each patch's 400 KB diff and does not read: once the socket buffers are
    full the server cannot send, the hub's bounded buffer overflows and the socket is closed with 4408."""
    api.app.state.services.hub.buffer = 20
    heavy = "subscription { patchEvents { seq patch { diff } } }"
    async with connect(api.base, token=VIEWER) as slow, connect(api.base, token=VIEWER) as fast:
        await slow.subscribe(heavy)
        await fast.subscribe(EVENTS)
        await asyncio.sleep(0.2)

        async def read_all(n: int) -> list[int]:
            return [(await fast.data(timeout=30))["patchEvents"]["seq"] for _ in range(n)]

        reader = asyncio.create_task(read_all(80))
        for n in range(80):
            await submit(api, n, diff="x" * 400_000)
        assert await reader == list(range(1, 81))
        received = 0
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                message = json.loads(await asyncio.wait_for(slow.connection.recv(), 30))
                received += message["type"] == "next"
    assert closed.value.rcvd.code == 4408 and "resume" in closed.value.rcvd.reason
    assert received < 80


async def test_each_event_is_executed_once_per_distinct_operation(api):
    """Ten dashboards with the same subscription cost one execution per event; another shape costs one more."""
    registry = api.app.state.services.metrics.registry

    def executions() -> float:
        return registry.get_sample_value("hitl_subscription_executions_total") or 0.0

    clients = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(10):
            client = await stack.enter_async_context(connect(api.base, token=VIEWER))
            await client.subscribe(EVENTS)
            clients.append(client)
        other = await stack.enter_async_context(connect(api.base, token=VIEWER))
        await other.subscribe("subscription { patchEvents { seq } }")
        await asyncio.sleep(0.3)
        before = executions()
        await submit(api, 1)
        payloads = [await client.data() for client in clients]
        assert (await other.data())["patchEvents"] == {"seq": 1}
    assert all(payload == payloads[0] for payload in payloads) and payloads[0]["patchEvents"]["patch"]["patchId"] == "P-1"
    assert executions() - before == 2


async def test_closed_connections_are_not_retained(api):
    """The hub remembers open sockets only (to send 1001 on shutdown); closed ones must be freed."""
    import gc

    hub = api.app.state.services.hub
    for _ in range(5):
        async with connect(api.base, token=VIEWER) as client:
            await client.subscribe(EVENTS)
            await asyncio.sleep(0.05)
    for _ in range(50):
        gc.collect()
        if len(hub._connections) == 0:
            break
        await asyncio.sleep(0.05)
    assert len(hub._connections) == 0


async def test_relations_are_read_fresh_for_every_event(api):
    """A subscription lives for hours: its approvals, comments and audit trail are those of each event, not
    the first event's cached ones."""
    query = ("subscription { patchEvents(filter: {kinds: [APPROVAL_RECORDED, APPROVED, COMMENTED]}) "
             "{ kind patch { approvals { approver } comments { body } auditTrail { action } } } }")
    async with connect(api.base, token=VIEWER) as client:
        await client.subscribe(query)
        await asyncio.sleep(0.2)
        patch = await submit(api, 1, severity="CRITICAL", targetVersion="2.31.1")
        events = []  # each change waits for the previous event: relations are read when an event is delivered
        await _approve(api, patch["id"], as_=REVIEWER)
        events.append((await client.data())["patchEvents"])
        body = await api.gql('mutation($id: ID!) { addComment(id: $id, body: "looks fine") { id } }', {"id": patch["id"]}, as_=REVIEWER)
        assert "errors" not in body, body
        events.append((await client.data())["patchEvents"])
        await _approve(api, patch["id"], as_=REVIEWER2)
        events.append((await client.data())["patchEvents"])
    assert [e["kind"] for e in events] == ["APPROVAL_RECORDED", "COMMENTED", "APPROVED"]
    assert [[a["approver"] for a in e["patch"]["approvals"]] for e in events] == [["rita"], ["rita"], ["rita", "rob"]]
    assert [[c["body"] for c in e["patch"]["comments"]] for e in events] == [[], ["looks fine"], ["looks fine"]]
    assert [len(e["patch"]["auditTrail"]) for e in events] == [2, 3, 4]


async def test_open_subscriptions_hold_no_routing_or_replay_state(api):
    """Dashboards stay connected for hours: per open subscription the server keeps the subscription, not
    FastAPI's entry and middlewares, nor the replay's database session. What Starlette still holds per
    connection: the pending receive (two coroutines); it was 21, then 7 with FastAPI's own entry."""
    import gc
    import types

    from sqlalchemy.ext.asyncio import AsyncSession

    def held() -> tuple[int, int]:
        gc.collect()
        objects = gc.get_objects()
        routing = sum(1 for o in objects if type(o) is types.CoroutineType and any(part in o.cr_code.co_filename for part in ("/starlette/", "/fastapi/")))
        return routing, sum(1 for o in objects if isinstance(o, AsyncSession))

    before = held()
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(api.base, token=VIEWER)) for _ in range(10)]
        for client in clients:
            await client.subscribe(EVENTS)
        await asyncio.sleep(0.2)
        await submit(api, 1)
        assert [(await client.data())["patchEvents"]["seq"] for client in clients] == [1] * len(clients)
        # The submission's and the fan-out's sessions close just after the last frame: wait for those, not for a
        # session per subscription, which would stay.
        for _ in range(50):
            routing, sessions = (now - then for now, then in zip(held(), before, strict=True))
            if sessions <= 1:
                break
            await asyncio.sleep(0.1)
    assert routing <= 2 * len(clients), routing
    # At most one: after ~200 other tests in the process, one session not of these subscriptions was seen open.
    assert sessions <= 1, sessions


async def test_closed_connections_leave_no_expiry_timer_behind(api):
    """Each connection schedules a close for when its token expires (hours away): a closed connection must not
    leave that timer, its callback and its log context in the event loop until then (the soak's slow growth)."""
    import gc
    import types

    def timers() -> int:
        gc.collect()
        name = "SubscriptionRouter.on_ws_connect.<locals>.<lambda>"
        return sum(1 for o in gc.get_objects() if type(o) is types.FunctionType and o.__qualname__ == name)

    before = timers()
    for _ in range(5):
        async with connect(api.base, token=VIEWER) as client:
            await client.subscribe(EVENTS)
            await asyncio.sleep(0.05)
            assert timers() == before + 1
    for _ in range(50):
        if timers() == before:
            break
        await asyncio.sleep(0.05)
    assert timers() == before
