"""Throwaway databases: a copy of the session's migrated template per test (SQLite file or PostgreSQL
`CREATE DATABASE ... TEMPLATE`), dropped afterwards."""

import itertools
import os
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.support.pg import pg_admin, pg_url

_counter = itertools.count()


def off_loop(function, *args):  # noqa: ANN001, ANN202
    """Run blocking setup that starts its own event loop (alembic, asyncio.run) from any context."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


@asynccontextmanager
async def fresh_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database of `backend`, dropped afterwards."""
    if backend == "sqlite":
        path = tmp_path / "hitl.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"hitl_t_{os.getpid()}_{next(_counter)}"
    await pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield pg_url(name)
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
