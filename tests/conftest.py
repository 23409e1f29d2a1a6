"""Real databases for every test: a migrated template per backend, one fresh copy per test."""

import asyncio
import itertools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from db.engine import Database
from db.migrate import upgrade
from tests.pg import pg_admin, pg_url

BACKENDS = ["sqlite", "postgresql"]
_counter = itertools.count()


def _off_loop(function, *args):  # noqa: ANN001, ANN202
    """Run blocking setup that starts its own event loop (alembic, asyncio.run) from any context."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _off_loop(upgrade, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"hitl_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _off_loop(asyncio.run, pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        _off_loop(upgrade, pg_url(name))
        yield name
    finally:
        _off_loop(asyncio.run, pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@asynccontextmanager
async def _fresh_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
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


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with _fresh_database(request.param, request, tmp_path) as url:
        yield url


@pytest.fixture
async def pg_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with _fresh_database("postgresql", request, tmp_path) as url:
        yield url


@asynccontextmanager
async def _opened(url: str) -> AsyncIterator[Database]:
    db = Database.from_url(url, pool_min=2, pool_max=30)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    async with _opened(database_url) as db:
        yield db


@pytest.fixture
async def pg_database(pg_database_url: str) -> AsyncIterator[Database]:
    async with _opened(pg_database_url) as db:
        yield db
