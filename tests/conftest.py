"""Real databases for every test: a migrated template per backend, one fresh copy per test; and `api`, a real
server on each backend."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from db.engine import Database
from db.migrate import upgrade
from tests.support.databases import fresh_database, off_loop
from tests.support.pg import pg_admin, pg_url
from tests.support.server import Api, running, settings_for

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    off_loop(upgrade, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"hitl_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    off_loop(asyncio.run, pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        off_loop(upgrade, pg_url(name))
        yield name
    finally:
        off_loop(asyncio.run, pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database(request.param, request, tmp_path) as url:
        yield url


@pytest.fixture
async def pg_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database("postgresql", request, tmp_path) as url:
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


@pytest.fixture
def api_settings() -> dict:
    """Settings the `api` server gets beside the defaults of tests.support.server.settings_for (a module may override)."""
    return {}


@pytest.fixture
async def api(database_url: str, api_settings: dict) -> AsyncIterator[Api]:
    """A real uvicorn server on 127.0.0.1 serving a fresh database of each backend."""
    async with running(settings_for(database_url, **api_settings)) as served:
        yield served
