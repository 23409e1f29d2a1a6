"""Small helpers shared by the benchmark scenarios: statistics, process memory/CPU, limits, PostgreSQL admin."""

from __future__ import annotations

import os
import resource
import statistics
import time
from dataclasses import dataclass

import asyncpg

from tests.support.pg import PG_ADMIN_DSN, pg_admin, pg_dsn as dsn_for, pg_url as url_for  # noqa: F401 - shared with tests/conftest.py

PAGE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without numpy."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_stats(samples_s: list[float]) -> dict:
    """Milliseconds: median, p99, mean, min, max and the sample count."""
    ms = [s * 1000.0 for s in samples_s]
    if not ms:
        return {"n": 0, "median": None, "p99": None, "mean": None, "min": None, "max": None}
    return {
        "n": len(ms),
        "median": round(statistics.median(ms), 3),
        "p99": round(percentile(ms, 99), 3),
        "mean": round(statistics.fmean(ms), 3),
        "min": round(min(ms), 3),
        "max": round(max(ms), 3),
    }


def rss_mib(pid: int) -> float:
    """Resident set size of a process (VmRSS), MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def postgres_cpu_seconds() -> float:
    """CPU time used so far by the running processes of the PostgreSQL server the benchmarks use, which runs on this
    machine (127.0.0.1): its backends, autovacuum and background writers. A backend that has exited is not counted."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() != "postgres":
                    continue
            total += cpu_seconds(int(pid))
        except OSError:  # exited meanwhile
            continue
    return total


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent outside idle and I/O wait since boot (all cores, /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def raise_nofile_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by the servers and clients started afterwards)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)





async def pg_settings() -> dict:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        names = ("server_version", "shared_buffers", "synchronous_commit", "max_connections", "work_mem")
        return {name: await connection.fetchval(f"SHOW {name}") for name in names}
    finally:
        await connection.close()


@dataclass
class Deadline:
    """A wall-clock budget for one bounded loop."""

    seconds: float

    def __post_init__(self) -> None:
        self.end = time.monotonic() + self.seconds

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    @property
    def left(self) -> float:
        return max(self.end - time.monotonic(), 0.0)
