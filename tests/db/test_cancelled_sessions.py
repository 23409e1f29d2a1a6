"""A task cancelled while it holds a session gives the session's connection back to the pool, even when it is
cancelled again while the session closes (a subscription's task is cancelled by strawberry and again by the socket's
end). A connection lost that way is found only by the garbage collector ("non-checked-in connection"), and a pool
that loses enough of them stops serving."""

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from sqlalchemy import text

from db.engine import Database
from tests.support.waiting import eventually


async def _hold(session_of: Callable[[], AbstractAsyncContextManager], held: asyncio.Event, kept: list) -> None:
    async with session_of() as session:
        kept.append(session)  # not collected meanwhile: the garbage collector would give the connection back itself
        await session.exec(text("SELECT 1"))
        held.set()
        await asyncio.sleep(60)


@pytest.mark.parametrize("kind", ["read", "write"])
async def test_a_session_cancelled_twice_gives_its_connection_back(database: Database, kind: str):
    pool, kept = database.engine.pool, []
    for steps in range(8):  # the second cancel at each of the first steps of closing the session
        held = asyncio.Event()
        task = asyncio.create_task(_hold(getattr(database, kind), held, kept))
        await held.wait()
        assert pool.checkedout() == 1
        task.cancel()
        for _ in range(steps):
            await asyncio.sleep(0)  # the task is now closing its session
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await eventually(lambda: pool.checkedout() == 0, timeout=5, what="the connection back in the pool")
    async with database.read() as session:
        assert (await session.exec(text("SELECT 1"))).scalar() == 1
