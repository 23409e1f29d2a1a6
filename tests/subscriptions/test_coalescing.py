"""Live pages while changes stream in: the coalescing window grows from HITL_QUEUE_COALESCE_SECONDS up to
HITL_QUEUE_COALESCE_MAX_SECONDS, so a burst of submissions costs each subscriber a few pages a second, and the page
after the burst is exact. The first change after a quiet moment waits the base window again."""

import asyncio
import time

import httpx
import pytest

from graphql_api.live.hub import CoalescingWindow
from tests.support.server import VIEWER, submit_to
from tests.support.waiting import subscriptions_open
from tests.support.wsclient import connect

BASE, LONGEST = 0.05, 0.3
QUEUE = "subscription { pendingQueue(first: 5) { totalCount } }"


@pytest.fixture
def api_settings() -> dict:
    return {"queue_coalesce_seconds": BASE, "queue_coalesce_max_seconds": LONGEST}


def test_the_window_doubles_while_changes_stream_in_and_resets_after_a_quiet_moment():
    window = CoalescingWindow(BASE, LONGEST)
    assert window.after_quiet(10.0) == BASE  # a lone change
    assert [window.after_quiet(0.0) for _ in range(4)] == [0.1, 0.2, LONGEST, LONGEST]  # the next came at once
    assert window.after_quiet(LONGEST + 0.01) == BASE  # quiet for longer than the window: back to the base
    assert CoalescingWindow(0.2, 0.1).after_quiet(0.0) == 0.2  # a maximum below the base is the base


async def test_a_stream_of_submissions_gets_few_pages_and_an_exact_last_one(api):
    async with connect(api.base, token=VIEWER) as client, httpx.AsyncClient(timeout=30) as http:
        await client.subscribe(QUEUE)
        assert (await client.data())["pendingQueue"]["totalCount"] == 0
        await subscriptions_open(api.base, 1)
        counter = iter(range(1, 10_000))
        started = time.monotonic()

        def streaming() -> bool:  # 2 s and at least 120 changes (a loaded machine takes longer), 15 s at most
            elapsed = time.monotonic() - started
            return elapsed < 15 and (elapsed < 2 or submitted < 120)

        submitted = 0

        async def submitter() -> None:
            nonlocal submitted
            while streaming():
                await submit_to(http, api.base, next(counter))
                submitted += 1

        await asyncio.gather(*(submitter() for _ in range(4)))
        seconds = time.monotonic() - started
        totals = []
        while not totals or totals[-1] != submitted:
            totals.append((await client.data(timeout=10))["pendingQueue"]["totalCount"])
    # With the base window alone: a page per 50 ms and change, ~29 in 2 s here. Gaps in the stream (a pause of this
    # process) each cost at most a base window's page more, hence the slack.
    assert len(totals) <= seconds / 0.1 + 3, (len(totals), seconds)
    assert totals == sorted(totals)


async def test_a_grown_window_ends_once_the_changes_stop():
    window, changed = CoalescingWindow(BASE, 5.0), asyncio.Event()

    async def changes(seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            changed.set()
            await asyncio.sleep(0.01)

    async def gathering(seconds: float) -> float:
        started = time.monotonic()
        await window.gather(changed, seconds)
        return time.monotonic() - started

    took, _ = await asyncio.gather(gathering(5.0), changes(0.3))
    assert took < 2.0  # ~0.35 s: the last change, then a base window without one (5 s before)
    took, _ = await asyncio.gather(gathering(0.5), changes(1.0))
    assert 0.5 <= took < 0.9  # changes all along: the whole window, no longer
    changed.clear()
    assert await gathering(5.0) < 2.0  # nothing comes: a base window
