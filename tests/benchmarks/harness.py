"""`python -m tests.benchmarks --quick|--full|--smoke [--only ...] [--out DIR]`: the whole benchmark suite.

Creates throwaway PostgreSQL databases (hitl_bench_<pid>…), migrates and bulk-loads SYNTHETIC patches,
starts real `hitl serve` processes and client processes on 127.0.0.1, runs the scenarios of issue 7 with
bounded loops, and always stops what it started and drops the databases (also on Ctrl-C / SIGTERM).
Writes results.json, results.md and subscribers.png to --out (default tests/benchmarks/results/).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from tests.benchmarks import bench_webhooks, burst, report, scenarios
from tests.benchmarks.common import dsn_for, pg_admin, pg_settings, raise_nofile_limit, url_for
from tests.benchmarks.data import load_patches
from tests.benchmarks.floods import kill_leftovers

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("pending", "approvals", "submissions", "burst", "subscribers", "cross", "webhooks", "ml", "soak")

MODES: dict[str, dict] = {
    "smoke": {
        "describe": "smoke: a few seconds per scenario on tiny data; checks that the harness works, its numbers mean nothing",
        "small": 2_000, "large": 4_000, "pool": 1_000,
        "page_warmup": 5, "page_rounds": 2, "page_reps": 10, "page_budget_s": 20,
        "approval_rounds": 2, "approval_seconds": 2, "approval_max": 60,
        "levels": [10, 20], "mutation_level": 20, "events_per_level": 3, "event_gap_s": 0.05, "stream_mutations": 5,
        "stream_rate": 5, "flood_processes": 2, "connect_timeout_s": 30, "settle_s": 0.3, "delivery_timeout_s": 10,
        "cross_events": 5, "cross_subscribers": 2, "cross_gap_s": 0.05,
        "ml_labels": 600, "ml_calls": 30, "burst_submissions": 300, "burst_subscribers": 20, "burst_group_subscribers": 5,
        "soak_s": 4, "soak_subscribers": 10, "soak_queue_subscribers": 2, "soak_submit_rate": 4, "soak_decide_rate": 4,
        "soak_read_rate": 8, "soak_churn_s": 1.5, "soak_sample_s": 0.5, "soak_warmup_s": 1, "soak_slope_limit": 5.0,
        "soak_rss_abort_mib": 2048,
        "webhook_events": 100, "webhook_lag_seconds": 3, "webhook_timeout_s": 60,
    },
    "quick": {
        "describe": ("quick (< 3 min): 100k patches / 10k pending vs 300k / 30k pending (not the 1M of the target), "
                     "1,000 and 2,000 subscribers, fewer repetitions; ML on 5,000 labels; no memory soak"),
        "small": 100_000, "large": 300_000, "pool": 5_000,
        "page_warmup": 20, "page_rounds": 4, "page_reps": 50, "page_budget_s": 30,
        "approval_rounds": 3, "approval_seconds": 4, "approval_max": 1500,
        "levels": [1000, 2000], "mutation_level": 2000, "events_per_level": 15, "event_gap_s": 0.1, "stream_mutations": 25,
        "stream_rate": 5, "flood_processes": 2, "connect_timeout_s": 60, "settle_s": 1.0, "delivery_timeout_s": 15,
        "cross_events": 40, "cross_subscribers": 5, "cross_gap_s": 0.05,
        "ml_labels": 5_000, "ml_calls": 300,
        "soak_s": None,
        "webhook_events": 2_000, "webhook_lag_seconds": 20, "webhook_timeout_s": 120,
    },
    "full": {
        "describe": ("full: 100k patches / 10k pending vs 1M / 100k pending, 1,000 / 2,000 / 5,000 / 10,000 subscribers, "
                     "ML on 50,000 labels, 30 min memory soak"),
        "small": 100_000, "large": 1_000_000, "pool": 20_000,
        "page_warmup": 50, "page_rounds": 10, "page_reps": 100, "page_budget_s": 180,
        "approval_rounds": 5, "approval_seconds": 6, "approval_max": 1200,
        "levels": [1000, 2000, 5000, 10000], "mutation_level": 2000, "events_per_level": 40, "event_gap_s": 0.2,
        "stream_mutations": 50, "stream_rate": 5, "flood_processes": 2, "connect_timeout_s": 180, "settle_s": 3.0,
        "delivery_timeout_s": 30, "cross_events": 200, "cross_subscribers": 5, "cross_gap_s": 0.05,
        "ml_labels": 50_000, "ml_calls": 2_000,
        "soak_s": 1800, "soak_subscribers": 500, "soak_queue_subscribers": 20, "soak_submit_rate": 5, "soak_decide_rate": 5,
        "soak_read_rate": 20, "soak_churn_s": 30, "soak_sample_s": 10, "soak_warmup_s": 300, "soak_slope_limit": 5.0,
        "soak_rss_abort_mib": 2048,
        "webhook_events": 10_000, "webhook_lag_seconds": 120, "webhook_timeout_s": 300,
    },
}


def _git() -> dict:
    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout

    # Porcelain lines are "XY path": stripping the whole output would eat the first line's leading space.
    dirty = [line[3:] for line in run("status", "--porcelain", "--", "graphql_api", "db", "ml").splitlines()]
    return {"commit": run("rev-parse", "HEAD").strip() or "unknown", "branch": run("rev-parse", "--abbrev-ref", "HEAD").strip(),
            "dirty_app_files": dirty}


def _machine(pg: dict) -> dict:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    versions = {}
    for name in ("uvicorn", "strawberry-graphql", "fastapi", "sqlalchemy", "asyncpg", "websockets", "uvloop", "httptools", "xgboost-cpu"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[name] = version(name)
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem_kib / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release(), "postgresql": pg, "packages": versions}


async def _prepare(name: str, patches: int, pool: int) -> dict:
    await pg_admin(f'CREATE DATABASE "{name}"')
    await asyncio.to_thread(_upgrade_quietly, url_for(name))
    return await load_patches(dsn_for(name), patches, pool_size=pool)


def _upgrade_quietly(url: str) -> None:
    import logging

    from db.migrate import upgrade

    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade(url)


async def _run(mode: str, selected: list[str], databases: list[str], log_dir: Path, results: dict, profile: Path | None) -> None:
    cfg = MODES[mode]
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    ctx = scenarios.Context(mode=mode, config=cfg, log_dir=log_dir, profile_dir=profile, reuse=mode == "smoke")
    # SIGTERM like Ctrl-C: cancel the run, so every `finally` below stops what it started.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    out = results["scenarios"]
    small_db, large_db = databases
    try:
        needs_db = any(s in selected for s in ("pending", "approvals", "submissions", "burst", "subscribers", "cross", "soak"))
        if needs_db:
            print(f"loading {cfg['small']:,} SYNTHETIC patches into {small_db} ...", flush=True)
            results["data"]["small"] = await _prepare(small_db, cfg["small"], cfg["pool"])
        if "pending" in selected or ("soak" in selected and cfg["soak_s"]):
            print(f"loading {cfg['large']:,} SYNTHETIC patches into {large_db} ...", flush=True)
            results["data"]["large"] = await _prepare(large_db, cfg["large"], cfg["pool"])
        if ctx.reuse and needs_db:  # smoke: start the few servers of the whole run at once
            wanted = [(small_db, "smoke-small-a", "a"), (small_db, "smoke-small-b", "b")]
            if "large" in results["data"]:
                wanted.append((large_db, "smoke-large-a", "a"))
            await asyncio.to_thread(ctx.serve_many, wanted)

        async def step(name: str, keys: tuple[str, ...], coroutine_factory) -> None:  # noqa: ANN001
            if name not in selected:
                for key in keys:
                    out[key] = {"skipped": "not selected (--only)"}
                return
            load_before = _loadavg()
            print(f"[{time.strftime('%H:%M:%S')}] {name} ... (load average {load_before})", flush=True)
            started = time.monotonic()
            try:
                value = await coroutine_factory()
                value = value if isinstance(value, tuple) else (value,)
                for key, entry in zip(keys, value):
                    if mode == "smoke":  # tiny sizes: the numbers exercise the code, they judge nothing
                        for t in entry.get("targets", []):
                            t["met"], t["note"] = None, "smoke mode"
                    entry["seconds"] = round(time.monotonic() - started, 1)
                    entry["load_average_before_after"] = [load_before, _loadavg()]
                    out[key] = entry
                    for t in entry.get("targets", []):
                        print(f"    {key}: {t['name']} = {t['value']} ({t['target']}): "
                              f"{ {True: 'met', False: 'MISSED', None: 'n/a'}[t['met']] }", flush=True)
            except Exception as exc:  # noqa: BLE001 - recorded; the other scenarios still run
                traceback.print_exc()
                for key in keys:
                    out[key] = {"failed": f"{type(exc).__name__}: {exc}"}
            finally:
                ctx.stop_all()

        await step("pending", ("pending_page", "pending_page_scale", "pending_groups_page"), lambda: scenarios.pending_page(ctx, small_db, large_db, results["data"]))
        await step("approvals", ("approvals",), lambda: scenarios.approvals(ctx, small_db))
        await step("submissions", ("submissions",), lambda: scenarios.submissions(ctx, small_db))
        await step("burst", ("mass_cve_burst",), lambda: burst.burst(ctx, small_db))
        await step("subscribers", ("subscribers", "mutation_latency"), lambda: scenarios.subscribers(ctx, small_db))
        await step("cross", ("cross_replica",), lambda: scenarios.cross_replica(ctx, small_db))
        await step("webhooks", ("webhook_throughput",), lambda: bench_webhooks.throughput(ctx, small_db))
        await step("webhooks", ("webhook_lag",), lambda: bench_webhooks.lag(ctx, small_db))
        if cfg["soak_s"]:
            await step("soak", ("memory_soak",), lambda: scenarios.soak(ctx, large_db if "large" in results["data"] else small_db))
        else:
            out["memory_soak"] = {"skipped": "--full only (30 min of mixed load)"}
        ctx.stop_all(final=True)
        await step("ml", ("ml_predict", "ml_training"), lambda: asyncio.to_thread(scenarios.ml, ctx))
    finally:
        ctx.stop_all(final=True)


async def _drop(databases: list[str]) -> None:
    for name in databases:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _merge(results: dict, earlier: dict) -> None:
    origin = {key: earlier.get(key) for key in ("started_at", "command", "mode", "wall_s")}
    origin["commit"] = earlier.get("git", {}).get("commit")
    merged = []
    for key, entry in earlier.get("scenarios", {}).items():
        if "skipped" in results["scenarios"].get(key, {"skipped": True}) and "skipped" not in entry:
            results["scenarios"][key] = {"from_run": origin, **entry}  # keeps an older run's own origin
            merged.append(key)
    for key, value in earlier.get("data", {}).items():
        results["data"].setdefault(key, value)
    if merged:
        results["notes"].append(f"Merged from the run of {origin['started_at']} ({origin['command']}, commit "
                                f"{(origin['commit'] or '?')[:12]}): {', '.join(merged)}.")


def _loadavg() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def _terminate(signum, frame):  # noqa: ANN001, ARG001
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--quick", action="store_true", help="under 3 minutes: smaller sizes, fewer repetitions")
    group.add_argument("--full", action="store_true", help="the real sizes and the 30 min memory soak (long)")
    group.add_argument("--smoke", action="store_true", help="seconds: checks the harness (writes to a temp dir by default)")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default tests/benchmarks/results/)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record every server with py-spy (collapsed stacks) into this directory")
    parser.add_argument("--soak-seconds", type=float, default=None,
                        help="run the memory soak for this long instead of the mode's duration (warm-up: a sixth of it, at most 5 min)")
    parser.add_argument("--merge", type=Path, default=None,
                        help="a results.json of an earlier run: scenarios not selected with --only are taken from it "
                             "(each marked with the run it comes from)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server and client logs (path printed)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full" if args.full else "smoke"
    selected = [s.strip() for s in args.only.split(",")] if args.only else list(SCENARIOS)
    unknown = set(selected) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    out_dir = args.out or (Path(tempfile.mkdtemp(prefix="hitl-bench-smoke-")) if mode == "smoke" else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.soak_seconds is not None:
        MODES[mode] = {**MODES[mode], "soak_s": args.soak_seconds,
                       "soak_warmup_s": min(300.0, args.soak_seconds / 6)}
        if "soak_subscribers" not in MODES[mode]:  # quick has no soak of its own: use the full one's load
            MODES[mode] = {**MODES["full"], **MODES[mode], "soak_s": args.soak_seconds, "soak_warmup_s": min(300.0, args.soak_seconds / 6)}
    limits = raise_nofile_limit()
    os.environ["HITL_BENCH_RUN"] = str(os.getpid())  # inherited by everything started; lets a test find leftovers
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C cleans up even where a shell ignored SIGINT
    databases = [f"hitl_bench_{os.getpid()}", f"hitl_bench_{os.getpid()}_large"]
    log_dir = Path(tempfile.mkdtemp(prefix="hitl-bench-logs-"))
    started = time.monotonic()
    command = "python -m tests.benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict = {
        "mode": mode, "command": command, "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": _git(), "notes": [MODES[mode]["describe"]], "data": {}, "scenarios": {}, "nofile_limit": list(limits),
        "selected": selected,
    }
    print(f"benchmarks: {MODES[mode]['describe']}", flush=True)
    code = 0
    try:
        results["machine"] = _machine(asyncio.run(pg_settings()))
        asyncio.run(_run(mode, selected, databases, log_dir, results, args.profile))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: stopping everything and dropping the databases", file=sys.stderr)
        results["notes"].append("INTERRUPTED: partial results")
        code = 130
    finally:
        scenarios.stop_leftover_servers()
        kill_leftovers()
        try:
            asyncio.run(_drop(databases))
        except BaseException as exc:  # noqa: BLE001
            print(f"could not drop {databases}: {exc}", file=sys.stderr)
            code = code or 1
        if args.keep_logs:
            print(f"logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    results["wall_s"] = round(time.monotonic() - started, 1)
    if args.merge is not None:
        _merge(results, json.loads(args.merge.read_text()))
    results["notes"].append(
        "Data is SYNTHETIC (ml/synthetic.py templates, 'SYNTH-BENCH-' ids), bulk-loaded with COPY; "
        "latencies are medians/p99 over all samples of repeated rounds; every ratio compares with a baseline "
        "measured in the same run; clients, servers and PostgreSQL share the 2 cores.")
    results.setdefault("machine", {})
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    if results["machine"]:
        (out_dir / "results.md").write_text(report.markdown(results))
        report.plot(results, out_dir / "subscribers.png")
    print(f"wrote {out_dir}/results.json (wall time {results['wall_s']:.0f} s)")
    return code
