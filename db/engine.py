"""Async engine, sessions and the one-transaction-per-change unit of work."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def create_engine(url: str, *, pool_min: int = 2, pool_max: int = 10, application_name: str = "hitl-patch-service") -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30})

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
    return create_async_engine(
        url,
        pool_size=max(pool_min, 1),
        max_overflow=max(pool_max - max(pool_min, 1), 0),
        # No ping per checkout (a round trip on every request); a connection found dead invalidates the pool.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": application_name}},
    )


class Database:
    """Owns the engine; hands out read sessions and write transactions.

    Services flush but never commit: `write()` commits once at the end, so one mutation is one
    transaction. On SQLite (one process, one writer) write transactions are serialized here, which
    also serializes audit appends; on PostgreSQL the audit append takes an advisory lock instead.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        # Reads need no transaction: AUTOCOMMIT saves the BEGIN and ROLLBACK round trips of every read.
        self._read_sessions = async_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"), class_=AsyncSession, expire_on_commit=False
        )
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._after_commit: list[Callable[[], None]] = []

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> "Database":
        return cls(create_engine(url, **kwargs))

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
        async with self.sessions() as session:
            async with session.begin():
                yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
