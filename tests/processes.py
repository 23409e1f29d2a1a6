"""Real `hitl serve` processes on 127.0.0.1 for multi-replica tests; always stopped afterwards."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.api.conftest import API_KEY, SECRET, free_port

ROOT = Path(__file__).resolve().parents[1]


class ServeProcess:
    def __init__(self, database_url: str, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {
            **os.environ,
            "HITL_DATABASE_URL": database_url,
            "HITL_JWT_SECRET": SECRET,
            "HITL_INTERNAL_API_KEY": API_KEY,
            "HITL_LOG_FORMAT": "json",
            **env,
        }
        command = [sys.executable, "-m", "graphql_api.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hitl serve exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/ready", timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"hitl serve not ready: {self.log_path.read_text()[-2000:]}")

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
