"""A task cancelled while it holds a session gives the session's connection back to the pool, even when it is
cancelled again while the session closes (a subscription's task is cancelled by strawberry and again by the socket's
end). A connection lost that way is found only by the garbage collector ("non-checked-in connection"), and a pool
that loses enough of them stops serving."""

import asyncio
import contextlib
import gc
import logging
import random
import warnings
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


async def test_sessions_cancelled_at_any_moment_leave_no_connection_to_the_garbage_collector(tmp_path, caplog):
    """Reads and writes cancelled at random moments (a client that leaves, a shutdown): each connection goes back to
    the pool whole. On SQLite two steps used to lose some: the pool's reset of a connection a committed write was
    giving back, cut short in the cancelled task ("Exception during reset or similar": 6 and 9 times in two runs of
    300 writes), and the switch of a read's connection to AUTOCOMMIT at its checkout (4 to 12 connections in 300
    reads left to the garbage collector's "non-checked-in connection" warning). On PostgreSQL neither was seen."""
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'cancelled.db'}")
    try:
        async with database.write() as session:
            await session.exec(text("CREATE TABLE cancelled_sessions (n integer)"))
        rng = random.Random(19)
        caplog.set_level(logging.ERROR, logger="sqlalchemy.pool")

        async def write(n: int) -> None:
            async with database.write() as session:
                await session.exec(text("INSERT INTO cancelled_sessions VALUES (:n)").bindparams(n=n))

        async def read(_n: int) -> None:
            async with database.read() as session:
                await session.exec(text("SELECT count(*) FROM cancelled_sessions"))

        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            for n in range(600):
                task = asyncio.create_task(rng.choice((read, write))(n))
                await asyncio.sleep(rng.random() * 0.004)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await eventually(lambda: database.engine.pool.checkedout() == 0, timeout=5, what="every connection back in the pool")
            gc.collect()
        assert [str(w.message)[:90] for w in warned if "non-checked-in" in str(w.message)] == []
        assert [record.getMessage() for record in caplog.records if record.name.startswith("sqlalchemy.pool")] == []
    finally:
        await database.dispose()
