"""Async engine, sessions and the one-transaction-per-change unit of work."""

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


# extensions.reason of a SERVICE_UNAVAILABLE error (API.md): why the database could not serve the request.
DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
POOL_EXHAUSTED = "POOL_EXHAUSTED"
STATEMENT_TIMEOUT = "STATEMENT_TIMEOUT"
_QUERY_CANCELED = "57014"
# Severities of a server error that ends (or refuses to start) the session, whatever its sqlstate and language.
_SESSION_ENDING = frozenset({"FATAL", "PANIC"})
# How long stopping waits for the pool to be idle (Database.cancel_when_idle, Database.dispose): a database that
# hangs may never give the connections back.
IDLE_WAIT_SECONDS = 2.0


def unavailable_reason(error: BaseException | None) -> str | None:
    """Why `error` means "the database cannot serve right now, retry shortly", or None for anything else.

    Conditions of the database, not of the request: no free pooled connection within the pool timeout, the
    server refusing or dropping connections (down, restarting, shutting down, too many clients), a connection
    found dead, a statement cancelled by statement_timeout, and any FATAL error of the server, which ends or
    refuses the session: a database dropped or renamed under the running service ("does not exist"), one
    closed to connections, a login refused. These end when an operator brings the database back, and the
    service reconnects by itself. A bad query stays an internal error.
    """
    for link in exception_chain(error):
        if isinstance(link, sa_exc.TimeoutError):  # QueuePool: no connection became free in time
            return POOL_EXHAUSTED
        if isinstance(link, sa_exc.DBAPIError) and link.connection_invalidated:
            return DATABASE_UNAVAILABLE
        if isinstance(link, asyncpg.PostgresError) and getattr(link, "sqlstate", None) == _QUERY_CANCELED:
            return STATEMENT_TIMEOUT
        if isinstance(link, asyncpg.PostgresError) and getattr(link, "severity_en", None) in _SESSION_ENDING:
            return DATABASE_UNAVAILABLE
        if isinstance(
            link,
            ConnectionError  # refused, reset, aborted, broken pipe
            | TimeoutError  # connect timeout
            | socket.gaierror
            | asyncpg.PostgresConnectionError  # class 08
            | asyncpg.exceptions.OperatorInterventionError  # class 57: admin/crash shutdown, cannot connect now
            | asyncpg.exceptions.TooManyConnectionsError,
        ):
            return DATABASE_UNAVAILABLE
    return None


def exception_chain(error: BaseException | None) -> Iterator[BaseException]:
    """`error`, then what it wraps (a DBAPI error's `orig`) or was raised from or during, each once."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "orig", None) or error.__cause__ or error.__context__


class OutageLog:
    """Logs a database outage once (no traceback, no SQL) while retries keep failing; any other failure
    every time, with its traceback."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self.reason: str | None = None  # set while the database is unavailable

    @property
    def down(self) -> bool:
        return self.reason is not None

    def failed(self, exc: BaseException, message: str, outage_message: Callable[[str], str], *, level: int = logging.WARNING) -> None:
        reason = unavailable_reason(exc)
        if reason is None:
            self._logger.log(level, message, exc_info=True)
        elif self.reason is None:
            self.reason = reason
            self._logger.warning(outage_message(reason))

    def recovered(self) -> bool:
        """Whether this success ends an outage."""
        was_down, self.reason = self.down, None
        return was_down


def json_text(value: object) -> str:
    """The JSON columns' serializer: orjson, ~10x the standard library's speed (a batch's predictions and
    explanations were 18% of its time in json.dumps). A non-finite float becomes null rather than the invalid
    `NaN` text the database would refuse."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_engine(
    url: str,
    *,
    pool_max: int = 10,
    application_name: str = "hitl-patch-service",
    pool_timeout: float = 30.0,  # SQLAlchemy's default; the service passes HITL_DB_POOL_TIMEOUT_SECONDS
    statement_timeout: float = 0.0,
) -> AsyncEngine:
    """`pool_timeout` bounds the wait for a connection, from the pool or newly opened (then raises
    sqlalchemy.exc.TimeoutError / a connect error); `statement_timeout` (seconds, 0 = none) is set on
    every PostgreSQL session, so no query waits on a lock forever."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30}, json_serializer=json_text)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}: use postgresql+asyncpg or sqlite+aiosqlite")
    server_settings = {"application_name": application_name}
    if statement_timeout > 0:
        server_settings["statement_timeout"] = str(max(int(statement_timeout * 1000), 1))
    engine = create_async_engine(
        url,
        # Every connection opened is kept, up to pool_max: an overflow connection (SQLAlchemy closes those at
        # check-in) would be a new PostgreSQL backend per transaction under load.
        pool_size=max(pool_max, 1),
        max_overflow=0,
        pool_timeout=pool_timeout,
        # No ping per checkout (a round trip on every request). After a database restart the first request
        # to find its pooled connection dead fails (SERVICE_UNAVAILABLE) and invalidates the whole pool;
        # _replace_connections_after_lost_sessions covers the outages first met by a connection attempt.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": server_settings, "timeout": pool_timeout},
        json_serializer=json_text,
    )
    _replace_connections_after_lost_sessions(engine)
    return engine


# Connection attempts refused in a way that means every existing session of the database has ended too: it was
# dropped or renamed (3D000), closed to connections (55000), or the server is starting, stopping or restarting.
_SESSIONS_LOST = (
    asyncpg.exceptions.InvalidCatalogNameError
    | asyncpg.exceptions.ObjectNotInPrerequisiteStateError
    | asyncpg.exceptions.CannotConnectNowError
    | asyncpg.exceptions.AdminShutdownError
    | asyncpg.exceptions.CrashShutdownError
    | ConnectionRefusedError
)


def _sessions_lost(error: BaseException | None) -> bool:
    return any(isinstance(link, _SESSIONS_LOST) for link in exception_chain(error))


def _replace_connections_after_lost_sessions(engine: AsyncEngine) -> None:
    """SQLAlchemy invalidates the whole pool when a pooled connection is found dead, but not when a new connection
    is refused; yet a refusal that says the database's sessions have all ended means the idle pooled connections
    are dead too, and each would fail one more request after the database is back (seen in CI: a write answered
    SERVICE_UNAVAILABLE right after a read had succeeded). Each such refusal marks every connection opened before
    it: a marked connection is replaced when next checked out (a DisconnectionError in the checkout event is how
    SQLAlchemy's pool is told to open a fresh one), as a pre-ping would, without a ping per checkout."""
    lost_at = [0.0]
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "connect")
    def _opened(_dbapi_connection, record) -> None:  # noqa: ANN001
        record.info["opened_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _still_valid(_dbapi_connection, record, _proxy) -> None:  # noqa: ANN001
        if record.info.get("opened_at", 0.0) < lost_at[0]:
            raise sa_exc.DisconnectionError("opened before the database ended its sessions")

    @event.listens_for(engine.sync_engine, "handle_error")
    def _refused(context) -> None:  # noqa: ANN001
        if context.connection is None and _sessions_lost(context.original_exception):
            lost_at[0] = time.monotonic()


class Database:
    """Owns the engine; hands out read sessions and write transactions.

    Services flush but never commit: `write()` commits once at the end, so one mutation is one
    transaction (concurrent submitPatch calls may share one: db.group_commit). On SQLite (one process,
    one writer) write transactions are serialized here, which also serializes audit appends; on
    PostgreSQL the audit append takes an advisory lock instead.
    """

    def __init__(self, engine: AsyncEngine, *, pool_min: int = 0) -> None:
        self.engine = engine
        self.pool_min = pool_min  # connections open_connections() opens ahead of the first requests
        self.dialect = engine.dialect.name
        self.sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        # Reads need no transaction: on PostgreSQL, AUTOCOMMIT saves the BEGIN and ROLLBACK round trips of every read.
        # SQLite's driver begins no transaction for a SELECT anyway, and there AUTOCOMMIT would cost a switch of the
        # connection's isolation level at each checkout and checkin, a step that, when a cancellation lands in it,
        # leaves the connection to the garbage collector.
        reads = engine if self.is_sqlite else engine.execution_options(isolation_level="AUTOCOMMIT")
        self._read_sessions = async_sessionmaker(reads, class_=AsyncSession, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._after_commit: list[Callable[[], None]] = []
        self._idle_wait_ran_out = False

    @classmethod
    def from_url(cls, url: str, *, pool_min: int = 2, **kwargs: object) -> "Database":
        return cls(create_engine(url, **kwargs), pool_min=pool_min)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after every committed write (used by the in-process event broker)."""
        self._after_commit.append(callback)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        if self._write_lock is not None:
            async with self._write_lock:
                async with self._transaction() as session:
                    yield session
        else:
            async with self._transaction() as session:
                yield session
        for callback in self._after_commit:
            callback()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        # sessionmaker.begin(), not session.begin() inside the session: its exit (commit or rollback, then giving the
        # connection back) runs to completion even if the task is cancelled meanwhile. A cancellation that landed
        # while the committed connection was being given back orphaned it (the garbage collector's SAWarning later).
        async with self.sessions.begin() as session:
            yield session

    async def open_connections(self) -> None:
        """Open pool_min pooled connections now rather than at the first requests (they stay in the pool)."""
        if self.is_sqlite or self.pool_min <= 0:
            return
        connections = await asyncio.gather(*(self.engine.connect() for _ in range(self.pool_min)), return_exceptions=True)
        failed = next((c for c in connections if isinstance(c, BaseException)), None)
        for connection in connections:
            if not isinstance(connection, BaseException):
                await connection.close()
        if failed is not None:
            raise failed

    async def cancel_when_idle(self, tasks: Iterable[asyncio.Task], *, within: float = IDLE_WAIT_SECONDS) -> None:
        """Cancel `tasks` (background loops) at a moment when no connection is checked out, waiting at most `within`
        seconds for one. A task cancelled while it takes a connection from the pool or gives it back can orphan the
        connection (SQLAlchemy's asyncio layer): the garbage collector terminates it later with an SAWarning, and the
        database keeps the session until then. Cancelled without an await after the check, each task stops where it
        waits for its next turn."""
        await self._idle(within)
        for task in tasks:
            task.cancel()

    async def dispose(self) -> None:
        """Close the pool's connections, once those still being given back are (a cancelled session closes in a task
        of its own)."""
        await self._idle(IDLE_WAIT_SECONDS)
        await self.engine.dispose()

    async def _idle(self, within: float) -> None:
        """Until no connection is checked out, at most `within` seconds; once a wait ran out (a database that hangs
        holds them), the next steps of the stop do not wait again."""
        if self._idle_wait_ran_out:
            return
        checked_out = getattr(self.engine.pool, "checkedout", lambda: 0)  # StaticPool (in-memory SQLite) has none
        deadline = time.monotonic() + within
        while checked_out() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        self._idle_wait_ran_out = bool(checked_out())
