"""The PostgreSQL server the tests and benchmarks use (HITL_TEST_PG_DSN), and throwaway databases on it."""

import os

import asyncpg

PG_ADMIN_DSN = os.environ.get("HITL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def pg_dsn(database: str) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"


def pg_url(database: str) -> str:
    """The SQLAlchemy URL (asyncpg driver) of `database`."""
    return pg_dsn(database).replace("postgresql://", "postgresql+asyncpg://", 1)


async def pg_admin(*statements: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()
