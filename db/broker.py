"""Change notifications: a wake-up signal, never the data. Subscribers read events from the audit log,
so a lost notification only delays delivery (the hub also polls the head seq as a safety net).

PostgreSQL: one dedicated LISTEN connection per process (not from the pool: a pooled connection is
reset on release and loses LISTEN), tagged with an application_name, reconnecting with backoff; every
(re)connect wakes the hub, which catches up from the last seq it delivered. SQLite: after each commit.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy.engine import make_url
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from db.engine import Database
from db.services.audit import EVENT_CHANNEL

log = logging.getLogger("hitl.broker")
LISTENER_APPLICATION_NAME = "hitl-listener"
HEALTH_CHECK_SECONDS = 5.0
CONNECT_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError)


class LocalBroker:
    """In-process broker for the embedded database (one process by design)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self, wake: Callable[[], None]) -> None:
        self._db.on_commit(wake)

    async def stop(self) -> None:
        return None


class PostgresBroker:
    def __init__(self, database_url: str, *, application_name: str = LISTENER_APPLICATION_NAME) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._application_name = application_name
        self._task: asyncio.Task | None = None

    async def start(self, wake: Callable[[], None]) -> None:
        self._task = asyncio.create_task(self._run(wake), name="hitl-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _connect(self) -> asyncpg.Connection:
        async for attempt in AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.05, max=5.0), retry=retry_if_exception_type(CONNECT_ERRORS), reraise=True
        ):
            with attempt:
                return await asyncpg.connect(self._dsn, server_settings={"application_name": self._application_name}, timeout=5)
        raise AssertionError("unreachable")

    async def _run(self, wake: Callable[[], None]) -> None:
        while True:
            connection = await self._connect()
            lost = asyncio.Event()
            # Woken at once when the server terminates the backend, not at the next health check.
            connection.add_termination_listener(lambda _connection: lost.set())
            try:
                await connection.add_listener(EVENT_CHANNEL, lambda *_args: wake())
                wake()  # anything committed while we were away is read from the audit log now
                while not lost.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(lost.wait(), HEALTH_CHECK_SECONDS)
                    if not lost.is_set():
                        await connection.fetchval("SELECT 1", timeout=HEALTH_CHECK_SECONDS)
            except CONNECT_ERRORS:
                log.warning("listener connection lost; reconnecting", exc_info=True)
            finally:
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1)


def broker_for(db: Database, database_url: str) -> LocalBroker | PostgresBroker:
    return LocalBroker(db) if db.is_sqlite else PostgresBroker(database_url)
