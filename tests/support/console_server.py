"""A real `hitl serve` process for the console tests on a given database, which a test can stop and start again on
the same port (a restart under an open console)."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.processes import ServeProcess


@dataclass
class Console:
    database_url: str
    process: ServeProcess
    client: httpx.Client
    log_dir: Path
    env: dict

    @property
    def base(self) -> str:
        return self.process.base

    def stop(self) -> None:
        """SIGTERM, as a rolling update does: the server closes every WebSocket with 1001 first."""
        self.process.terminate()
        self.process.stop()

    def start(self) -> None:
        """The server again, on the same port and database."""
        self.process = ServeProcess(self.database_url, self.log_dir / "serve.log", port=self.process.port, **self.env)
        self.process.wait_ready()


def serve(database_url: str, tmp_path: Path, *, port: int | None = None, **env: str) -> Iterator[Console]:
    env = {"HITL_LOG_LEVEL": "WARNING", "HITL_SHUTDOWN_GRACE_SECONDS": "2", **env}
    process = ServeProcess(database_url, tmp_path / "serve.log", port=port, **env)
    console = None
    try:
        process.wait_ready()
        with httpx.Client(timeout=30, trust_env=False) as client:
            console = Console(database_url, process, client, tmp_path, env)
            yield console
    finally:
        (console.process if console else process).stop()
