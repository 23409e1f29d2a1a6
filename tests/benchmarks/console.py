"""The reviewer console in chromium (a script, not a pytest test): `python -m tests.benchmarks.console [--runs N]`.

One `hitl serve --dev` in a temporary directory: the dev data set of `./scripts/dev` (1,500 SYNTHETIC patches and a
model trained on them). Headless chromium (tests/support/browser.py), a fresh profile for every cold run:

- first load: navigation to /console#token=… (REVIEWER) until the queue's first 50 rows are on screen (the page's
  `hitl:queue-rendered` User Timing mark), and until its data arrived (`hitl:queue-data`): the difference is the
  render; then a reload in the same browser (assets revalidated, 304);
- 500 pending: 400 more patches submitted over HTTP, then /console/?size=500 the same way;
- JS heap of each page once its queue is rendered, after a garbage collection (DevTools Performance.getMetrics);
- baseline, same run and browser: /health (a JSON page from the same server: what any navigation costs here), and
  the JS heap of an empty page.

Medians of the runs are printed (and written with --out). The machine may be shared: compare only figures of one run.
`--screenshots DIR` also saves the queue and a patch page of the dev data set, as a LEAD sees them (the README's
docs/screenshots/ come from there).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support import console_data
from tests.support.browser import chromium, has_text, wait_for
from tests.support.processes import wait_until_ready
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
MARKS = "return Object.fromEntries(performance.getEntriesByType('mark').filter((m) => m.name.startsWith('hitl:')).map((m) => [m.name, [m.startTime, m.detail]]))"


def start_dev_server(directory: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """`hitl serve --dev` as ./scripts/dev runs it; its base URL and the tokens it prints."""
    port = free_port()
    log = open(directory / "serve.log", "w+b")  # noqa: SIM115 - read while the server runs, closed with it
    process = subprocess.Popen([sys.executable, "-m", "graphql_api.cli", "serve", "--dev", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=directory, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_until_ready(process, base, directory / "serve.log", 600, poll=0.5)  # --dev loads its demo data first
    text = (directory / "serve.log").read_text()
    tokens = dict(re.findall(r"^\s{4}(viewer|reviewer|lead|admin|service)\s+(eyJ\S+)$", text, re.MULTILINE))
    return process, base, tokens


def page_metrics(driver) -> dict[str, float]:
    """The page's JS heap after a collection, its DOM size, and the renderer's CPU time since the navigation spent
    running scripts, computing styles and layout (less sensitive to a busy machine than wall-clock times)."""
    metrics = {m["name"]: m["value"] for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
    driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    heap = {m["name"]: m["value"] for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}["JSHeapUsedSize"]
    return {
        "heap_mib": heap / 2**20, "dom_nodes": metrics["Nodes"], "script_cpu_ms": metrics["ScriptDuration"] * 1000,
        "style_layout_cpu_ms": (metrics["RecalcStyleDuration"] + metrics["LayoutDuration"]) * 1000, "task_cpu_ms": metrics["TaskDuration"] * 1000,
    }


def load_queue(driver, url: str, rows: int, *, reload: bool = False) -> dict[str, float]:
    driver.execute_cdp_cmd("Performance.enable", {})  # its CPU counters start now
    if reload:
        driver.refresh()
    else:
        driver.get(url)
    marks = wait_for(driver, lambda d: (m := d.execute_script(MARKS)).get("hitl:queue-rendered") and m, timeout=120, what="the rendered queue")
    shown = len(driver.find_elements("css selector", ".queue-table tbody tr[data-patch-id]"))
    assert shown == rows == marks["hitl:queue-rendered"][1], (shown, rows, marks)
    data, rendered = marks["hitl:queue-data"][0], marks["hitl:queue-rendered"][0]
    return {"data_ms": data, "rendered_ms": rendered, "render_ms": rendered - data, **page_metrics(driver)}


def baseline(driver, base: str) -> dict[str, float]:
    driver.execute_cdp_cmd("Performance.enable", {})
    driver.get(f"{base}/health")
    timing = driver.execute_script("const n = performance.getEntriesByType('navigation')[0]; return [n.domContentLoadedEventEnd, n.loadEventEnd]")
    health = page_metrics(driver)
    driver.execute_cdp_cmd("Performance.disable", {})
    driver.execute_cdp_cmd("Performance.enable", {})
    driver.get("data:text/html,<p>empty</p>")
    return {"health_dom_ready_ms": timing[0], "health_loaded_ms": timing[1], "health_task_cpu_ms": health["task_cpu_ms"],
            "empty_page_heap_mib": page_metrics(driver)["heap_mib"]}


def measure(base: str, tokens: dict[str, str], runs: int) -> dict[str, list[dict]]:
    reviewer = tokens["reviewer"]
    results: dict[str, list[dict]] = {"baseline": [], "first_load_50": [], "reload_50": [], "queue_500": []}
    for _ in range(runs):
        with chromium() as driver:
            results["baseline"].append(baseline(driver, base))
            results["first_load_50"].append(load_queue(driver, f"{base}/console/#token={reviewer}", 50))
            results["reload_50"].append(load_queue(driver, "", 50, reload=True))
    print("first load:", json.dumps(medians(results)), flush=True)  # noqa: T201
    with httpx.Client(timeout=60, trust_env=False) as client:
        pending = console_data.gql(client, base, "{ pendingPatches { totalCount } }", token=reviewer)["pendingPatches"]["totalCount"]
        if pending < 500:
            console_data.seed(client, base, 500 - pending, prefix="BENCH", seed=3, token=tokens["service"])
    for _ in range(runs):
        with chromium() as driver:
            results["queue_500"].append(load_queue(driver, f"{base}/console/?size=500#token={reviewer}", 500))
    return results


def screenshots(base: str, tokens: dict[str, str], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with chromium(width=1440, height=900) as driver:
        load_queue(driver, f"{base}/console/#token={tokens['lead']}", 50)
        driver.save_screenshot(str(directory / "queue.png"))
        with httpx.Client(timeout=60, trust_env=False) as client:
            query = "{ pendingPatches(first: 100) { edges { node { id diff requiresEscalation wargaming { validationPassed } } } } }"
            nodes = [edge["node"] for edge in console_data.gql(client, base, query, token=tokens["lead"])["pendingPatches"]["edges"]]
        shown = next(n for n in nodes if n["diff"] and n["wargaming"] and n["wargaming"]["validationPassed"] and not n["requiresEscalation"])
        driver.get(f"{base}/console/patches/{shown['id']}")
        wait_for(driver, has_text(".card", "What pushed the prediction"), what="the patch page")
        driver.set_window_size(1440, 1500)
        driver.save_screenshot(str(directory / "patch.png"))


def medians(results: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    return {name: {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]} for name, runs in results.items() if runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="0: only the screenshots")
    parser.add_argument("--out", type=Path, help="write the runs and their medians as JSON")
    parser.add_argument("--screenshots", type=Path, help="save the queue and a patch page of the dev data set here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hitl-console-bench-") as directory:
        started = time.monotonic()
        process, base, tokens = start_dev_server(Path(directory))
        print(f"dev data set ready in {time.monotonic() - started:.0f} s at {base}", flush=True)  # noqa: T201
        try:
            if args.screenshots:
                screenshots(base, tokens, args.screenshots)
            results = measure(base, tokens, args.runs) if args.runs else {}
        finally:
            process.terminate()
            process.wait(timeout=60)
    summary = medians(results)
    print(json.dumps(summary, indent=2))  # noqa: T201
    if args.out and results:
        args.out.write_text(json.dumps({"runs": args.runs, "medians": summary, "all": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
