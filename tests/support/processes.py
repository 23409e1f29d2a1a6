"""Real `hitl serve` processes on 127.0.0.1 for multi-replica tests; always stopped afterwards."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.server import API_KEY, CHECKPOINT_KEY, SECRET, free_port

ROOT = Path(__file__).resolve().parents[2]


def hitl_environment(database_url: str, **env: str) -> dict[str, str]:
    """The environment a `hitl` command of the tests runs with: this database and the test credentials."""
    return {
        **os.environ,
        "HITL_DATABASE_URL": database_url,
        "HITL_JWT_SECRET": SECRET,
        "HITL_INTERNAL_API_KEY": API_KEY,
        "HITL_AUDIT_CHECKPOINT_KEY": CHECKPOINT_KEY,
        "HITL_LOG_FORMAT": "json",
        **env,
    }


def load_demo(database_url: str, count: int = 600) -> None:
    """`hitl demo`: SYNTHETIC decided history, a model trained on it and active, open patches with predictions."""
    result = subprocess.run([sys.executable, "-m", "graphql_api.cli", "demo", "--count", str(count)], cwd=ROOT,
                            env=hitl_environment(database_url), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "trained" in result.stdout and "no model trained" not in result.stdout, result.stdout


class PortTaken(RuntimeError):
    """The server's port was bound by another process between choosing it and the server binding it."""


def wait_until_ready(process: subprocess.Popen, base: str, log_path: Path, timeout: float, *, path: str = "/ready", poll: float = 0.1) -> None:
    """Until the `hitl serve` process at `base` answers 200 on `path`; its log's end in the error if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text()[-2000:]
            raise (PortTaken if "address already in use" in log else RuntimeError)(f"hitl serve exited with {process.returncode}: {log}")
        try:
            if httpx.get(f"{base}{path}", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(poll)
    raise TimeoutError(f"hitl serve not ready: {log_path.read_text()[-2000:]}")


class ServeProcess:
    PORT_ATTEMPTS = 3

    def __init__(self, database_url: str, log_path: Path, *, port: int | None = None, source: Path = ROOT, **env: str) -> None:
        """`source`: the checkout whose code serves (a benchmark runs another one's, with PYTHONPATH in `env`).
        A given `port` is kept (the same server again after a restart); a chosen one is chosen again if another
        process takes it before the server binds it."""
        self.log_path = log_path
        self._port_given = port is not None
        self._environment = hitl_environment(database_url, **env)
        self._source = source
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop(); appended to across restarts
        self._start(port or free_port())

    def _start(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "graphql_api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        self.process = subprocess.Popen(command, cwd=self._source, env=self._environment, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90, *, path: str = "/ready") -> None:
        """Until `path` answers 200 (/health for a server whose database is not expected to answer)."""
        for attempt in range(1, self.PORT_ATTEMPTS + 1):
            try:
                return wait_until_ready(self.process, self.base, self.log_path, timeout, path=path)
            except PortTaken:
                if self._port_given or attempt == self.PORT_ATTEMPTS:
                    raise
                self._start(free_port())

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


@contextmanager
def serving(database_url: str, tmp_path: Path, count: int = 1, **env: str):
    processes = [ServeProcess(database_url, tmp_path / f"serve-{i}.log", **env) for i in range(count)]
    try:
        for process in processes:
            process.wait_ready()
        yield processes
    finally:
        for process in processes:
            process.stop()
