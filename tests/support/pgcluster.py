"""A throwaway PostgreSQL cluster for fault-injection tests: its own data directory and port on 127.0.0.1,
so it can be stopped, killed and restarted without touching the shared server everybody else uses.

Restarting keeps the data directory and the port (it is the same database coming back, not a new one).
`throwaway_cluster()` always stops the server and deletes the directory, also when the test fails; an
atexit hook covers an interpreter that exits without running the context manager's cleanup.
"""

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from tests.support.ports import free_port

PG_BIN = Path(os.environ.get("HITL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
START_TIMEOUT = 30

_live: set["PgCluster"] = set()


def _as_postgres(*command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user when we are root."""
    prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=timeout, check=False)


class PgCluster:
    def __init__(self, *, password_logins: bool = False) -> None:
        # password_logins: every role but `postgres` logs in over TCP with its SCRAM-SHA-256 password, as in a
        # real deployment (the shared test server trusts everyone, so it cannot show a password works).
        self.password_logins = password_logins
        self.root = Path(tempfile.mkdtemp(prefix="hitl-pgcluster-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.running = False
        if os.geteuid() == 0:
            shutil.chown(self.root, PG_USER, PG_USER)

    # --- addresses ---------------------------------------------------------------------------------
    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """SQLAlchemy URL (asyncpg driver)."""
        return self.dsn(database).replace("postgresql://", "postgresql+asyncpg://", 1)

    # --- lifecycle ---------------------------------------------------------------------------------
    def init(self) -> None:
        result = _as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", PG_USER, "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr[-2000:]}")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",  # a throwaway cluster: speed over durability against OS crashes
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            "shared_buffers": "32MB",
            "logging_collector": "off",
        }
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# throwaway cluster for fault tests\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        if self.password_logins:
            (self.data / "pg_hba.conf").write_text(
                "local all all trust\n"
                "host all postgres 127.0.0.1/32 trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
            )
        _live.add(self)

    def start(self) -> None:
        result = _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(START_TIMEOUT), "start",
            timeout=START_TIMEOUT + 10,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {result.stderr[-1000:]} {self.tail_log()}")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """`fast`: clients are disconnected, clean shutdown. `immediate`: like a crash (recovery on start)."""
        if not self.data.exists():
            return
        result = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop", timeout=40)
        self.running = False
        if result.returncode != 0 and "is the server running" not in result.stderr:
            raise RuntimeError(f"pg_ctl stop failed: {result.stderr[-1000:]}")

    def restart(self, mode: str = "fast", down_seconds: float = 0.0) -> None:
        self.stop(mode)
        time.sleep(down_seconds)
        self.start()

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            _live.discard(self)

    def tail_log(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # --- admin ---------------------------------------------------------------------------------------
    async def execute(self, *statements: str, database: str = "postgres") -> None:
        connection = await asyncpg.connect(self.dsn(database), timeout=10)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    async def fetchval(self, query: str, *args: object, database: str = "postgres") -> object:
        connection = await asyncpg.connect(self.dsn(database), timeout=10)
        try:
            return await connection.fetchval(query, *args)
        finally:
            await connection.close()


@contextmanager
def throwaway_cluster(*, password_logins: bool = False) -> Iterator[PgCluster]:
    cluster = PgCluster(password_logins=password_logins)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@atexit.register
def _destroy_leftovers() -> None:
    for cluster in list(_live):
        cluster.destroy()
