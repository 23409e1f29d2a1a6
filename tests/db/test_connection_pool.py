"""The PostgreSQL pool keeps the connections it opens, up to DB_POOL_MAX_SIZE: a burst of concurrent transactions
opens them once, not a new connection (a new PostgreSQL backend) per transaction above DB_POOL_MIN_SIZE, which is
what SQLAlchemy's overflow connections did (closed at check-in). DB_POOL_MIN_SIZE connections open ahead of the
first request."""

import asyncio

from sqlalchemy import event, text

from db.engine import Database

POOL_MAX = 4


def _count_connects(db: Database) -> list:
    opened = []
    event.listen(db.engine.sync_engine.pool, "connect", lambda *_: opened.append(1))
    return opened


async def _busy_transactions(db: Database, count: int) -> None:
    async def one() -> None:
        async with db.write() as session:
            await session.exec(text("SELECT pg_sleep(0.05)"))

    await asyncio.gather(*(one() for _ in range(count)))


async def test_a_burst_of_transactions_reuses_the_connections_it_opened(pg_database_url: str):
    db = Database.from_url(pg_database_url, pool_min=1, pool_max=POOL_MAX)
    opened = _count_connects(db)
    try:
        await _busy_transactions(db, 3 * POOL_MAX)
        assert len(opened) == POOL_MAX
        assert db.engine.pool.checkedin() == POOL_MAX  # all kept, none closed at check-in
        for _ in range(3):
            await _busy_transactions(db, 3 * POOL_MAX)
        assert len(opened) == POOL_MAX
    finally:
        await db.dispose()


async def test_the_minimum_opens_before_the_first_request(pg_database_url: str):
    db = Database.from_url(pg_database_url, pool_min=3, pool_max=POOL_MAX)
    opened = _count_connects(db)
    try:
        await db.open_connections()
        assert len(opened) == 3 and db.engine.pool.checkedin() == 3
        await _busy_transactions(db, 2)
        assert len(opened) == 3
    finally:
        await db.dispose()


async def test_a_started_service_opens_the_minimum_before_any_request(pg_database_url: str):
    """More than its start-up work would open by itself (the model, the hub, the gauges)."""
    from sqlalchemy.engine import make_url

    from tests.support.server import running, settings_for
    from tests.support.waiting import eventually

    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND application_name = 'hitl-patch-service'")
    watcher = Database.from_url(pg_database_url, pool_min=0, pool_max=1)  # same application name: counts itself

    async def service_connections() -> int:
        async with watcher.read() as session:
            return (await session.exec(query, params={"db": make_url(pg_database_url).database})).scalar_one() - 1

    try:
        async with running(settings_for(pg_database_url, db_pool_min_size=6)):
            await eventually(lambda: _at_least(service_connections(), 6), timeout=10, what="DB_POOL_MIN_SIZE connections opened")
    finally:
        await watcher.dispose()


async def _at_least(count, minimum: int) -> bool:  # noqa: ANN001
    return await count >= minimum


async def test_connections_opened_before_the_database_refused_one_are_replaced_not_tried(pg_database_url: str):
    """A database closed to connections (or dropped, or restarting) has ended every session: a refused connection
    attempt marks the pooled connections opened before it, and each is replaced at its next checkout instead of
    failing one more request after the database is back (seen in CI: a write answered SERVICE_UNAVAILABLE after a
    read had succeeded). Here the stale connections were checked out by reads meanwhile, so no request found one
    dead before the refusal, which is what SQLAlchemy's own pool invalidation needs."""
    from sqlalchemy.engine import make_url

    from db.engine import unavailable_reason
    from tests.support.pg import pg_admin

    db = Database.from_url(pg_database_url, pool_min=0, pool_max=POOL_MAX + 1)
    name = make_url(pg_database_url).database
    reads = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        held = [await reads.connect() for _ in range(POOL_MAX)]
        for connection in held:
            await connection.execute(text("SELECT 1"))
        await pg_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false',
                       f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        failures = []
        try:
            await _busy_transactions(db, 1)  # a new connection: refused
        except Exception as error:  # noqa: BLE001
            failures.append(unavailable_reason(error))
        for connection in held:
            await connection.close()  # back to the pool, dead
        await pg_admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        for _ in range(2 * POOL_MAX):
            try:
                await _busy_transactions(db, 1)
            except Exception as error:  # noqa: BLE001
                failures.append(unavailable_reason(error))
        assert failures == ["DATABASE_UNAVAILABLE"]  # the refused attempt only
    finally:
        await db.dispose()
