"""Alembic, driven from code (`hitl db upgrade`, `/ready`, tests): no alembic.ini needed."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Run from synchronous code only (alembic's async env starts its own event loop)."""
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def schema_problem(revision: str | None) -> str | None:
    """Why the database schema cannot serve this code, or None.

    A schema *newer* than the code (a later release migrated it; this pod is old or being rolled back)
    is fine: migrations are additive, so old code keeps working. Only a schema behind the code is not.
    """
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = scripts.get_current_head()
    if revision == head:
        return None
    if revision is None:
        return f"database has no schema (code needs {head}): run 'hitl db upgrade'"
    known = {script.revision for script in scripts.walk_revisions()}
    if revision not in known:
        return None  # newer than this code
    return f"migrations not at head (database {revision}, code {head}): run 'hitl db upgrade'"


async def current_revision(connection: AsyncConnection) -> str | None:
    return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
