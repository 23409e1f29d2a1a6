"""No N+1: a page of patches with their comments, approvals and audit trails costs a bounded number of SQL
statements, the same for 50 patches as for 500 (one query per relation per page, through the DataLoaders).

The rows are made through the domain services in one transaction; statements are counted on the app's own
engine, attributed to one request by its X-Request-ID (the background subscription hub keeps polling and
reading new events meanwhile, and those statements are not the request's)."""

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from sqlalchemy import event

from db.services import comments, decisions, submission
from tests.support import factories
from tests.support.server import VIEWER, Api

PATCHES = 500
MAX_STATEMENTS = 10
NODE = "id patchId approvals { approver at } comments { id author body } auditTrail { seq action actor }"
PENDING = f"query($n: Int!) {{ pendingPatches(first: $n) {{ totalCount edges {{ node {{ {NODE} }} }} }} }}"
ALL = f"query($n: Int!) {{ patches(first: $n) {{ totalCount edges {{ node {{ {NODE} }} }} }} }}"


async def make_patches(api: Api, count: int) -> None:
    """`count` CRITICAL patches, each with 2 comments and 1 of its 2 required approvals (so still pending)."""
    services = api.app.state.services
    async with services.db.write() as session:
        for _ in range(count):
            patch, created = await submission.submit(
                session=session, actor=factories.SERVICE, data=factories.patch_data(severity="CRITICAL"), policy=services.policy
            )
            assert created and patch.required_approvals == 2
            for body in ("Changelog checked", "Tests pass"):
                await comments.add(session=session, actor=factories.REVIEWER, patch_id=str(patch.id), body=body)
            approved = await decisions.approve(session=session, actor=factories.REVIEWER, patch_id=str(patch.id))
            assert approved.status == "PENDING"


@contextmanager
def statements_of(api: Api, request_id: str) -> Iterator[list[str]]:
    """SQL statements executed on the app's engine on behalf of the request with this X-Request-ID."""
    seen: list[str] = []
    engine = api.app.state.services.db.engine.sync_engine

    def count(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:  # noqa: ANN001
        if structlog.contextvars.get_contextvars().get("request_id") == request_id:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def run(api: Api, query: str, first: int) -> tuple[dict, list[str]]:
    request_id = f"n-plus-one-{uuid.uuid4().hex}"
    with statements_of(api, request_id) as seen:
        response = await api.post(query, {"n": first}, as_=VIEWER, headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    body = response.json()
    assert "errors" not in body, body
    return body["data"], list(seen)


def check_nodes(connection: dict, expected: int) -> None:
    nodes = [edge["node"] for edge in connection["edges"]]
    assert len(nodes) == expected and len({node["id"] for node in nodes}) == expected
    for node in nodes:
        assert [comment["body"] for comment in node["comments"]] == ["Changelog checked", "Tests pass"], node
        assert [approval["approver"] for approval in node["approvals"]] == ["rita"], node
        assert [entry["action"] for entry in node["auditTrail"]] == ["SUBMITTED", "COMMENTED", "COMMENTED", "APPROVAL_RECORDED"], node
        assert [entry["actor"] for entry in node["auditTrail"]] == ["service:upstream", "rita", "rita", "rita"], node


async def test_relations_are_batched(api):
    started = time.monotonic()
    await make_patches(api, PATCHES)
    created = time.monotonic() - started

    await run(api, PENDING, 5)  # warm the pool: connecting is not the query's cost
    counts = {}
    for name, query in (("pendingPatches", PENDING), ("patches", ALL)):
        for first in (50, PATCHES):
            data, seen = await run(api, query, first)
            connection = data[name]
            assert connection["totalCount"] == PATCHES
            check_nodes(connection, first)
            counts[(name, first)] = seen
    summary = {key: len(value) for key, value in counts.items()}
    for key, seen in counts.items():
        assert 3 <= len(seen) <= MAX_STATEMENTS, (key, summary, seen)  # at least the 3 loaders were seen
    for name in ("pendingPatches", "patches"):
        assert len(counts[(name, 50)]) == len(counts[(name, PATCHES)]), summary
    assert created < 30, f"creating {PATCHES} patches took {created:.1f} s"


async def test_loaders_are_per_request(api):
    """A second request sees changes made after the first one: nothing is cached across requests."""
    await make_patches(api, 2)
    first, _ = await run(api, PENDING, 10)
    patch_id = first["pendingPatches"]["edges"][0]["node"]["id"]
    services = api.app.state.services
    async with services.db.write() as session:
        await comments.add(session=session, actor=factories.LEAD, patch_id=patch_id, body="One more")
    again, _ = await run(api, PENDING, 10)
    node = next(edge["node"] for edge in again["pendingPatches"]["edges"] if edge["node"]["id"] == patch_id)
    assert [comment["body"] for comment in node["comments"]][-1] == "One more"
    assert node["auditTrail"][-1]["action"] == "COMMENTED"
