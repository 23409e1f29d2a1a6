"""Harness side of the subscriber client processes (`tests.benchmarks.wsflood`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTED_PIDS: set[int] = set()  # killed by the harness's last-resort cleanup


class FloodProcess:
    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process, self.name = process, name
        self.lock = asyncio.Lock()

    @classmethod
    async def start(cls, name: str, stderr_path: Path) -> FloodProcess:
        stderr = open(stderr_path, "wb")  # noqa: SIM115 - the child owns it
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.benchmarks.wsflood", cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
                limit=2**26,
            )
        finally:
            stderr.close()
        STARTED_PIDS.add(process.pid)
        return cls(process, name)

    async def call(self, command: dict, timeout: float = 30.0) -> dict:
        async with self.lock:
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            await self.process.stdin.drain()
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"subscriber process {self.name} exited ({self.process.returncode})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"subscriber process {self.name}: {answer['error']}")
        return answer

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(Exception):
                self.process.stdin.write(b'{"cmd": "exit"}\n')
                await self.process.stdin.drain()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        STARTED_PIDS.discard(self.process.pid)


class FloodGroup:
    """Several client processes; subscribers are spread evenly over them."""

    def __init__(self, processes: list[FloodProcess]) -> None:
        self.processes = processes
        self.assigned = [0] * len(processes)

    @classmethod
    async def start(cls, count: int, log_dir: Path, prefix: str) -> FloodGroup:
        processes = []
        try:
            for index in range(count):
                processes.append(await FloodProcess.start(f"{prefix}{index}", log_dir / f"{prefix}{index}.err"))
        except BaseException:
            for process in processes:
                await process.stop()
            raise
        return cls(processes)

    async def connect(self, n: int, *, host: str, port: int, token: str, query: str, timeout: float) -> dict:
        shares = [0] * len(self.processes)
        for _ in range(n):  # fill the least loaded process first
            index = min(range(len(self.processes)), key=lambda i: self.assigned[i] + shares[i])
            shares[index] += 1
        answers = await asyncio.gather(*(
            process.call({"cmd": "connect", "n": share, "host": host, "port": port, "token": token, "query": query}, timeout)
            for process, share in zip(self.processes, shares) if share
        ))
        for index, share in enumerate(shares):
            self.assigned[index] += share
        return {"connected": sum(a["connected"] for a in answers), "failed": sum(a["failed"] for a in answers),
                "failures": [f for a in answers for f in a["failures"]][:5], "seconds": max(a["seconds"] for a in answers)}

    async def count(self, seq: int) -> int:
        answers = await asyncio.gather(*(p.call({"cmd": "count", "seq": seq}) for p in self.processes))
        return sum(a["count"] for a in answers)

    async def times(self, seq: int) -> list[float]:
        answers = await asyncio.gather(*(p.call({"cmd": "times", "seq": seq}) for p in self.processes))
        return [t for a in answers for t in a["times"]]

    async def status(self) -> dict:
        answers = await asyncio.gather(*(p.call({"cmd": "status"}) for p in self.processes))
        codes: dict[str, int] = {}
        for answer in answers:
            for code, n in answer["close_codes"].items():
                codes[code] = codes.get(code, 0) + n
        return {"open": sum(a["open"] for a in answers), "close_codes": codes,
                "errors": [e for a in answers for e in a["errors"]][:5],
                "client_cpu_s": round(sum(a["cpu_s"] for a in answers), 2)}

    async def pages(self, since: float) -> list[list[list[float]]]:
        """Per subscriber: its live pages [receipt, totalCount] received at or after `since` (monotonic)."""
        answers = await asyncio.gather(*(p.call({"cmd": "pages", "since": since}, 60) for p in self.processes))
        return [pages for answer in answers for pages in answer["pages"]]

    async def disconnect(self, n: int) -> int:
        closed = 0
        for index, process in enumerate(self.processes):
            if closed >= n:
                break
            answer = await process.call({"cmd": "disconnect", "n": n - closed})
            closed += answer["closed"]
            self.assigned[index] = answer["open"]
        return closed

    async def stop(self) -> None:
        for process in self.processes:
            await process.stop()


def kill_leftovers() -> None:
    """Last resort (after the event loop is gone): kill the client processes this run started."""
    for pid in list(STARTED_PIDS):
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        STARTED_PIDS.discard(pid)
