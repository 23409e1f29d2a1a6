"""The benchmark harness works end to end (`python -m tests.benchmarks --smoke`): every scenario reports numbers,
and nothing is left behind. No assertion on speed: the smoke sizes are tiny and the machine is shared."""

import json
import math
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.support.pg import PG_ADMIN_DSN

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("pending_page", "pending_page_scale", "pending_groups_page", "approvals", "submissions", "subscribers", "mutation_latency", "cross_replica",
             "ml_predict", "ml_training", "memory_soak", "mass_cve_burst", "webhook_throughput", "webhook_lag")

pytestmark = pytest.mark.slow


def _numbers(value: object) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


async def _bench_databases() -> list[str]:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return [row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'hitl_bench_%'")]
    finally:
        await connection.close()


def _processes_of_run(run_pid: int) -> list[int]:
    """Processes started by that harness run (it marks its environment with HITL_BENCH_RUN=<its pid>)."""
    marker = f"HITL_BENCH_RUN={run_pid}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                found.append(int(entry.name))
    return found


async def test_smoke_run_reports_every_scenario_and_cleans_up(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "tests.benchmarks", "--smoke", "--out", str(tmp_path)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "smoke"
    assert results["git"]["commit"]
    assert results["machine"]["cpus"] >= 1
    for name in SCENARIOS:
        entry = results["scenarios"][name]
        assert "failed" not in entry and "skipped" not in entry, (name, entry)
        assert entry["targets"], name
        for t in entry["targets"]:
            assert t["value"] is not None and math.isfinite(t["value"]), (name, t)
            assert t["met"] in (True, False, None)
        assert _numbers(entry.get("figure") or entry.get("levels")), name
    for name in ("pending_page", "pending_page_scale", "approvals", "submissions", "mutation_latency", "cross_replica", "ml_predict", "memory_soak"):
        assert _numbers(results["scenarios"][name]["baseline"]), name
    levels = results["scenarios"]["subscribers"]["levels"]
    assert len(levels) >= 2 and all(level["rss_mib"] > 0 and level["last_subscriber_ms"]["n"] > 0 for level in levels)
    assert results["scenarios"]["approvals"]["figure"]["approvals_per_s_median"] > 0
    assert results["scenarios"]["submissions"]["figure"]["submissions_per_s_median"] > 0
    assert (tmp_path / "results.md").read_text().count("\n|") >= 8

    # The harness names its databases after its own pid; other runs on the machine are not this test's business.
    own = [name for name in await _bench_databases() if name.startswith(f"hitl_bench_{process.pid}")]
    assert not own, f"the harness left benchmark databases behind: {own}"
    assert not _processes_of_run(process.pid), "the harness left a server or client process behind"
