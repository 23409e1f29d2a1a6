"""Fixtures of the console tests: the browser tools, and a real `hitl serve` process per backend for the module
(starting one costs seconds), which a test may stop and start again on the same port. Each test leaves the queue
empty for the next: whatever it left pending is cancelled afterwards."""

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import browser
from tests.support.console_data import gql
from tests.support.console_server import Console, serve
from tests.support.databases import off_loop
from tests.support.pg import pg_admin, pg_url
from tests.support.server import ADMIN

ROOT = Path(__file__).resolve().parents[2]
PENDING = "{ pendingPatches(first: 500) { edges { node { id } } } }"
CANCEL = 'mutation($id: ID!) { cancelPatch(id: $id, reason: "test over") { id } }'


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    """A failed test's own servers' logs (serve.log under its tmp_path) go into its report: CI keeps nothing else."""
    report = yield
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and isinstance(tmp_path, Path):
        for log in sorted(tmp_path.rglob("serve.log")):
            report.sections.append((f"server log {log.relative_to(tmp_path)}", log.read_text(errors="replace")[-20_000:]))
    return report


@pytest.fixture(scope="session")
def browser_tools() -> None:
    """chromium and chromium-driver: scripts/install-test-tools.sh installs them (a no-op when present)."""
    if browser.available():
        return
    installed = subprocess.run(["bash", str(ROOT / "scripts/install-test-tools.sh")], capture_output=True, text=True, timeout=900, check=False)
    assert installed.returncode == 0 and browser.available(), f"scripts/install-test-tools.sh failed:\n{installed.stdout}\n{installed.stderr}"


@pytest.fixture(scope="module")
def sqlite_console(browser_tools: None, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    directory = tmp_path_factory.mktemp("console-sqlite")
    shutil.copyfile(sqlite_template, directory / "hitl.db")
    # The leeway off: the expiry test's token closes its socket when it expires, not 30 s later.
    yield from serve(f"sqlite+aiosqlite:///{directory / 'hitl.db'}", directory, HITL_JWT_LEEWAY_SECONDS="0")


@pytest.fixture(scope="module")
def pg_console(browser_tools: None, pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    name = f"hitl_console_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    off_loop(asyncio.run, pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    try:
        yield from serve(pg_url(name), tmp_path_factory.mktemp("console-pg"), HITL_JWT_LEEWAY_SECONDS="0")
    finally:
        off_loop(asyncio.run, pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _emptied(console: Console) -> Iterator[Console]:
    try:
        yield console
    finally:
        for edge in gql(console.client, console.base, PENDING, token=ADMIN)["pendingPatches"]["edges"]:
            gql(console.client, console.base, CANCEL, {"id": edge["node"]["id"]}, token=ADMIN)


@pytest.fixture
def console(pg_console: Console) -> Iterator[Console]:
    """The console served on PostgreSQL (the production backend), with an empty queue."""
    yield from _emptied(pg_console)


@pytest.fixture(params=["sqlite", "postgresql"])
def console_each_backend(request: pytest.FixtureRequest) -> Iterator[Console]:
    """The console served on SQLite and on PostgreSQL (their event brokers differ), with an empty queue."""
    yield from _emptied(request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else 'sqlite'}_console"))
