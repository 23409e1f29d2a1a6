"""`GET /metrics` latency while PostgreSQL hangs (a script, not a pytest test; issue 22):

    python -m tests.benchmarks.metrics_outage [--source DIR] [--mode stalled|hung-at-start] [--scrapes N] [--gap S]

One `hitl serve` (default settings, as deployed) on a throwaway database of SYNTHETIC patches, reached through a
relay (tests/support/stalling_relay.py) that makes the database hang: connections stay open, nothing answers.

- `stalled`: the service runs normally, then the database hangs mid-run (pooled connections included).
- `hung-at-start`: the service starts against the hung database (the operator's report in issue 22).

Then N rounds, `--gap` seconds apart (longer than any metrics cache, so every scrape is one Prometheus would make):
`GET /health` then `GET /metrics`, each timed by the client, which gives up after `--client-timeout` seconds (a
scrape that gives up counts as that long). Prints the medians and their ratio: /health is the same-run baseline.

`--source DIR` runs the service from another checkout, e.g. main's code for the "before" figure:
    git archive main | tar -x -C /tmp/hitl-main && python -m tests.benchmarks.metrics_outage --source /tmp/hitl-main
(the database is migrated by this checkout's code; run it only where the schema is the same).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.benchmarks.common import url_for
from tests.benchmarks.harness import _drop, _prepare
from tests.support.processes import ServeProcess
from tests.support.stalling_relay import StallingRelay

ROOT = Path(__file__).resolve().parents[2]
DATABASE = f"hitl_bench_metrics_{os.getpid()}"


def _timed(client: httpx.Client, url: str, limit: float) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        status = str(client.get(url, timeout=limit).status_code)
    except httpx.TimeoutException:
        status = "timeout"
    return time.perf_counter() - started, status


def run(source: Path, mode: str, scrapes: int, gap: float, client_timeout: float) -> dict:
    asyncio.run(_drop([DATABASE]))
    asyncio.run(_prepare(DATABASE, 5_000, 500))
    relay = StallingRelay(5432).start()
    server = None
    try:
        with tempfile.TemporaryDirectory() as logs:
            log = Path(logs) / "serve.log"
            if mode == "hung-at-start":
                relay.stall()
            server = ServeProcess(url_for(DATABASE).replace(":5432/", f":{relay.port}/"), log, source=source, PYTHONPATH=str(source))
            base = server.base
            server.wait_ready(120, path="/health" if mode == "hung-at-start" else "/ready")
            health, scrape, statuses = [], [], []
            with httpx.Client(trust_env=False) as client:
                if mode == "stalled":
                    _timed(client, f"{base}/metrics", client_timeout)  # a normal scrape first
                    relay.stall()
                for _ in range(scrapes):
                    time.sleep(gap)
                    health.append(_timed(client, f"{base}/health", client_timeout)[0])
                    seconds, status = _timed(client, f"{base}/metrics", client_timeout)
                    scrape.append(seconds)
                    statuses.append(status)
    finally:
        if server is not None:
            server.stop()
        relay.close()
        asyncio.run(_drop([DATABASE]))
    return {
        "health_median_ms": statistics.median(health) * 1000,
        "metrics_median_ms": statistics.median(scrape) * 1000,
        "ratio": statistics.median(scrape) / statistics.median(health),
        "metrics_ms": [round(s * 1000, 1) for s in scrape],
        "metrics_status": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose code serves (default: this one)")
    parser.add_argument("--mode", choices=("stalled", "hung-at-start"), default="stalled")
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--gap", type=float, default=6.0, help="seconds between rounds (main caches its gauges 5 s)")
    parser.add_argument("--client-timeout", type=float, default=15.0)
    args = parser.parse_args()
    result = run(args.source.resolve(), args.mode, args.scrapes, args.gap, args.client_timeout)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"source={args.source} mode={args.mode} scrapes={args.scrapes} gap={args.gap}s load={' '.join(load)}")
    print(f"/health median {result['health_median_ms']:.1f} ms; /metrics median {result['metrics_median_ms']:.1f} ms; "
          f"ratio {result['ratio']:.1f}x")
    print(f"/metrics each: {result['metrics_ms']} ms, status {result['metrics_status']}")


if __name__ == "__main__":
    main()
