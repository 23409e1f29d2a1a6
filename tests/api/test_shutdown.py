"""Stopping the service while its background work (periodic jobs, the metrics read, the hub) is talking to the
database: no pooled connection is left behind. Cancelling a task while it checks a connection out of SQLAlchemy's
asyncio pool (or returns one) can orphan the connection: the garbage collector then terminates it later with an
SAWarning, and until then the database keeps the session."""

import asyncio
import gc
import random
import time
import warnings

from db.engine import Database
from graphql_api.app import build_services, running
from tests.support.server import settings_for

CYCLES = 25


async def test_a_stop_at_any_moment_of_the_startup_work_returns_every_connection(database_url):
    """The startup work (the first SLA check, checkpoint, drift check, metrics read, the hub's first reads) runs
    for some milliseconds after the start: stops at random moments of it and after."""
    gc.collect()  # whatever earlier tests left
    rng = random.Random(19)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(CYCLES):
            services = build_services(settings_for(database_url, metrics_refresh_seconds=0.01, sla_check_interval_seconds=0.01))
            async with running(services):
                await asyncio.sleep(rng.uniform(0.0, 0.05))
        gc.collect()
    orphaned = [str(warning.message) for warning in caught if "non-checked-in connection" in str(warning.message)]
    assert not orphaned, f"{len(orphaned)} connections left to the garbage collector in {CYCLES} stops"


async def test_a_connection_that_is_never_given_back_delays_the_stop_once(database_url):
    """A database that hangs keeps its connections checked out: the stop waits for them once (its bound), not at
    each of its steps (the jobs, the webhook dispatcher, the hub, the pool)."""
    db = Database.from_url(database_url)
    held = await db.engine.connect()  # never given back before the stop, as a read on a hung database
    await held.exec_driver_sql("SELECT 1")
    sleeper = asyncio.create_task(asyncio.sleep(60))
    started = time.monotonic()
    await db.cancel_when_idle([sleeper], within=0.5)
    waited = time.monotonic() - started
    await asyncio.sleep(0)
    assert sleeper.cancelled() and waited >= 0.5
    started = time.monotonic()
    await db.cancel_when_idle([], within=30)
    await db.dispose()
    assert time.monotonic() - started < 10  # not the 30 s bound, nor the pool's own wait
    await held.close()
