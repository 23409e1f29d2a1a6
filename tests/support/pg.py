"""The PostgreSQL server the tests and benchmarks use (HITL_TEST_PG_DSN), and throwaway databases on it."""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

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


async def pg_admin_on(database_url: str, statement: str) -> None:
    """Run `statement` as the admin user in the database of `database_url` (a SQLAlchemy URL)."""
    connection = await asyncpg.connect(make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@asynccontextmanager
async def login_role(database_url: str) -> AsyncIterator[str]:
    """A new login role that does not own the tables of `database_url` (they were migrated as the admin), for the
    service's least-privilege application role; dropped with what it owns afterwards."""
    role = f"hitl_app_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield role
    finally:
        await pg_admin_on(database_url, f'REASSIGN OWNED BY "{role}" TO postgres; DROP OWNED BY "{role}"')
        await pg_admin(f'DROP ROLE IF EXISTS "{role}"')
