"""hitl_graphql_errors_total{code, operation_type}: every error a GraphQL response carries is counted once, by its
extensions.code and the operation's type, over HTTP (where most answer 200) and WebSocket; the labels stay bounded."""

import asyncio
import uuid

import pytest
from sqlalchemy.engine import make_url

from graphql_api.errors import CODES, OPERATION_TYPES, UNKNOWN_OPERATION
from graphql_api.metrics import Metrics
from tests.support.pg import pg_admin
from tests.support.server import REVIEWER, VIEWER, metrics, running, settings_for, submit
from tests.support.wsclient import TRANSPORT_WS, LEGACY_WS, connect

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
APPROVE = 'mutation($id: ID!) { approvePatch(id: $id) { status } }'


def errors_by_label(samples: dict) -> dict[tuple[str, str], float]:
    return {
        (labels["code"], labels["operation_type"]): count
        for (name, label_items), count in samples.items()
        if name == "hitl_graphql_errors_total"
        for labels in [dict(label_items)]
    }


async def counted_after(api, action) -> dict[tuple[str, str], float]:  # noqa: ANN001
    """What `action` added to the counter, by (code, operation_type); only the labels that moved."""
    before = errors_by_label(await metrics(api, fresh=False))
    await action()
    after = errors_by_label(await metrics(api, fresh=False))
    return {labels: after[labels] - before.get(labels, 0) for labels in after if after[labels] != before.get(labels, 0)}


def test_every_label_pair_exists_from_the_start_and_nothing_else():
    pairs = set(errors_by_label({
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in Metrics().registry.collect() for sample in family.samples
    }))
    assert pairs == {(code, kind) for code in (*CODES, "OTHER") for kind in (*OPERATION_TYPES, UNKNOWN_OPERATION)}


@SQLITE_ONLY
async def test_http_errors_are_counted_once_by_code_and_operation_type(api):
    patch = await submit(api, 1)
    cases = [
        # (what is sent, the one (code, operation_type) it must add)
        (lambda: api.post("{ me { subject ", as_=VIEWER), ("BAD_USER_INPUT", "unknown")),  # does not parse
        (lambda: api.post("{ noSuchField }", as_=VIEWER), ("BAD_USER_INPUT", "query")),  # does not validate
        (lambda: api.post("{ pendingPatches { totalCount } }"), ("UNAUTHENTICATED", "query")),
        (lambda: api.post(APPROVE, {"id": patch["id"]}, as_=VIEWER), ("FORBIDDEN", "mutation")),
        (lambda: api.post("query($id: ID!) { patch(id: $id) { id } }", {"id": str(uuid.uuid4())}, as_=VIEWER), None),
        (lambda: api.client.post(f"{api.base}/graphql", content=b"[1, 2]", headers={"content-type": "application/json"}),
         ("BAD_USER_INPUT", "unknown")),  # not a GraphQL request at all
    ]
    for send, expected in cases:
        added = await counted_after(api, send)
        if expected is None:  # a patch that is not there is `null`, not an error
            assert added == {}, added
        else:
            assert added == {expected: 1}, (expected, added)
    # An answer without errors counts nothing.
    assert await counted_after(api, lambda: api.post("{ me { subject } }", as_=VIEWER)) == {}
    # Two errors in one response count two.
    two = 'query { a: patch(id: "x") { id } b: patch(id: "y") { id } }'
    assert await counted_after(api, lambda: api.post(two, as_=VIEWER)) == {("BAD_USER_INPUT", "query"): 2}


@SQLITE_ONLY
@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_websocket_errors_are_counted_once(api, protocol):
    async with connect(api.base, token=REVIEWER, protocol=protocol) as client:

        async def refused(document: str):  # noqa: ANN202
            async def action() -> None:
                await client.subscribe(document)
                message = await client.next_payload()
                assert message["type"] == "error" or message["payload"].get("errors"), message

            return action

        assert await counted_after(api, await refused("subscription { patchEvents(")) == {("BAD_USER_INPUT", "unknown"): 1}
        # Strawberry validates a WebSocket operation before the operation hook runs: its type is not known there.
        assert await counted_after(api, await refused("subscription { noSuchField }")) == {("BAD_USER_INPUT", "unknown"): 1}
        # Refused by the resolver as it starts (a cursor that is not one); counted once, also after it ends.
        before = errors_by_label(await metrics(api, fresh=False))
        await (await refused('subscription { patchEvents(after: "not-a-cursor") { seq } }'))()
    await asyncio.sleep(0.5)  # the operation hook unwinds after the connection closes
    after = errors_by_label(await metrics(api, fresh=False))
    assert {labels: after[labels] - before[labels] for labels in after if after[labels] != before[labels]} == {("BAD_USER_INPUT", "unknown"): 1}


async def test_a_database_that_cannot_serve_counts_service_unavailable(pg_database_url):
    async with running(settings_for(pg_database_url)) as api:
        await pg_admin(f'DROP DATABASE IF EXISTS "{make_url(pg_database_url).database}" WITH (FORCE)')
        added = await counted_after(api, lambda: api.post("{ pendingPatches { totalCount } }", as_=VIEWER))
    assert added == {("SERVICE_UNAVAILABLE", "query"): 1}
