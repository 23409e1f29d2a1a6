"""The mass-CVE burst (issue 19): thousands of submissions within seconds, with the model active, while
pendingQueue and pendingGroups subscribers watch; then one decideGroup on a group of 300.

Phases, one `hitl serve` worker on the loaded database, a model trained on its history and active (so every
submission is predicted and explained by the service), client processes on 127.0.0.1:
1. `submitPatch` burst: N submissions from 16 client processes, one by one as fast as answered.
2. `submitPatches` burst: N submissions in batches of 100 from 16 client processes.
3. Baseline: plain single-row INSERTs of the same rows into a bare copy of `patches` from 16 connections.
During 1 and 2, 500 pendingQueue and 100 pendingGroups subscribers (wsflood processes) record each page's receipt
and totalCount.
4. `decideGroup` (a LEAD) on a group of 300 pending members: time, audit rows appended.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable

import asyncpg

from tests.benchmarks.common import busy_cpu_seconds, cpu_seconds, dsn_for, latency_stats, postgres_cpu_seconds
from tests.benchmarks.floods import ROOT, STARTED_PIDS, FloodGroup
from tests.benchmarks.httpclient import GraphQLClient
from tests.benchmarks.scenarios import HOST, QUEUE_SUBSCRIPTION, TOKEN_TTL, Context, patch_input, ratio, target
from tests.support.server import API_KEY, token

CLIENTS = 16
BATCH = 100
GROUP_SIZE = 300
COALESCE_S = 0.05  # HITL_QUEUE_COALESCE_SECONDS default
OPEN_COUNT = "SELECT count(*) FROM patches WHERE status IN ('PENDING', 'ESCALATED')"
OPEN_GROUPS = "SELECT count(DISTINCT group_key) FROM patches WHERE status IN ('PENDING', 'ESCALATED') AND group_key IS NOT NULL"
GROUPS_SUBSCRIPTION = "subscription { pendingGroups(first: 20) { totalCount asOfSeq items { key pendingCount } } }"
DECIDE = """mutation($key: String!) { decideGroup(key: $key, decision: APPROVE, comment: "synthetic: burst benchmark") {
  group { pendingCount } applied { id } skipped { code } } }"""


def burst_input(n: int, tag: str) -> dict:
    """A submission without upstream prediction: the service predicts and explains it. One in ten comes with passing
    wargaming (auto-approved when the model is confident enough); the rest wait in the queue."""
    item = patch_input(n, tag, severity=("LOW", "MEDIUM", "HIGH")[n % 3])
    if n % 10:
        del item["wargaming"]
    return item


async def _train_model(database: str) -> str:
    from db.engine import Database
    from db.services.actor import system_actor
    from db.services.policy import Policy
    from ml.service import train_and_activate

    db = Database.from_url(dsn_for(database).replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        row = await train_and_activate(db=db, actor=system_actor("system:benchmark"), policy=Policy(), nthread=2)
    finally:
        await db.dispose()
    return row.version


async def _clients(port: int, inputs: list[dict], batch: int, start_in: float = 1.5, at_start: Callable[[], None] | None = None) -> dict:
    """Split `inputs` over CLIENTS processes, start them together, wait for all; aggregate. `at_start` is called
    when they start sending (after their imports)."""
    start_at = time.monotonic() + start_in
    shares = [inputs[k::CLIENTS] for k in range(CLIENTS)]
    processes = []
    for share in shares:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.benchmarks.burstclient", cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26,
        )
        STARTED_PIDS.add(process.pid)
        processes.append(process)
    try:
        jobs = [json.dumps({"port": port, "api_key": API_KEY, "inputs": share, "batch": batch, "start_at": start_at}).encode() for share in shares]
        answering = asyncio.gather(*(p.communicate(job) for p, job in zip(processes, jobs)))
        if at_start is not None:
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
            at_start()
        outputs = await answering
    finally:
        for process in processes:
            STARTED_PIDS.discard(process.pid)
    answers = [json.loads(out) for out, _ in outputs]
    first, last = min(a["first"] for a in answers), max(a["last"] for a in answers)
    latencies = [x for a in answers for x in a["latencies"]]
    errors = sum(a["error_count"] for a in answers)
    return {"first": first, "last": last, "seconds": last - first, "latencies": latencies, "errors": errors,
            "error_samples": [e for a in answers for e in a["errors"]][:3], "submissions": len(inputs)}


def _built(inputs: list[dict]) -> list:
    """The patch rows the service's own validation builds from `inputs` (without model or audit)."""
    from db.services.actor import system_actor
    from db.services.policy import Policy
    from db.services.submission import SubmitPatchData, WargamingData, build

    actor, policy, rows = system_actor("service:bench"), Policy(), []
    for item in inputs:
        data = SubmitPatchData(**{_snake(k): v for k, v in item.items() if k != "wargaming"})
        if "wargaming" in item:
            data.wargaming = WargamingData(**{_snake(k): v for k, v in item["wargaming"].items()})
        rows.append(build(data, actor=actor, policy=policy))
    return rows


def _distinct_feature_rows(inputs: list[dict]) -> int:
    """How many distinct model inputs the submissions hold: the service explains each distinct row once."""
    from ml.features import feature_matrix

    return len({row.tobytes() for row in feature_matrix(_built(inputs)).astype("float32")})


async def _baseline(database: str, inputs: list[dict]) -> dict:
    """The same rows (built by the service's own validation, without model or audit) as plain INSERTs."""
    from db.models import column_values

    rows = [column_values(row) for row in _built(inputs)]
    columns = list(rows[0])
    json_columns = {"cwe_ids", "affected_systems", "ml_prediction", "wargaming"}
    records = [tuple(json.dumps(r[c]) if c in json_columns and r[c] is not None else r[c] for c in columns) for r in rows]
    setup = await asyncpg.connect(dsn_for(database))
    try:
        await setup.execute("DROP TABLE IF EXISTS bench_patch_baseline")
        await setup.execute("CREATE TABLE bench_patch_baseline (LIKE patches INCLUDING DEFAULTS)")
    finally:
        await setup.close()
    sql = f"INSERT INTO bench_patch_baseline ({', '.join(columns)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})"
    connections = [await asyncpg.connect(dsn_for(database)) for _ in range(CLIENTS)]
    latencies: list[float] = []
    pool = list(records)

    async def worker(connection: asyncpg.Connection) -> None:
        while pool:
            record = pool.pop()
            started = time.perf_counter()
            await connection.execute(sql, *record)
            latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        seconds = time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()
    return {"rows": len(records), "seconds": seconds, "per_s": len(records) / seconds, "latency_ms": latency_stats(latencies)}


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


async def _subscriber_view(flood: FloodGroup, since: float, phase: dict, exact_total: int) -> dict:
    """Pages per subscriber during the burst, and when each got its first exact page (totalCount = the database's)."""
    pages = await flood.pages(since)
    during = [sum(1 for stamp, _ in subscriber if stamp <= phase["last"]) for subscriber in pages]
    waits, first_after_exact = [], 0
    for subscriber in pages:
        exact = next((stamp for stamp, total in subscriber if total == exact_total), None)
        waits.append(None if exact is None else max(0.0, exact - phase["last"]))
        after = [total for stamp, total in subscriber if stamp > phase["last"]]
        first_after_exact += bool(after) and after[0] == exact_total or (not after and exact is not None)
    got = [w for w in waits if w is not None]
    limit = phase["seconds"] / COALESCE_S + 2
    return {
        "subscribers": len(pages), "got_exact_page": len(got),
        "exact_page_after_burst_ms": latency_stats(got) if got else None,
        "exact_page_after_burst_max_ms": round(max(got) * 1000, 1) if got else None,
        "first_page_after_burst_exact": first_after_exact,
        "pages_during_burst": {"max": max(during), "median": statistics.median(during)}, "pages_limit": round(limit, 1),
    }


async def burst(ctx: Context, database: str) -> dict:
    cfg = ctx.config
    total = cfg.get("burst_submissions", 5000)
    subscribers = cfg.get("burst_subscribers", 500)
    group_subscribers = cfg.get("burst_group_subscribers", 100)
    model_version = await _train_model(database)
    server = ctx.serve(database, "burst")
    flood = await FloodGroup.start(2, ctx.log_dir, "burst-flood-")
    group_flood = await FloodGroup.start(1, ctx.log_dir, "burst-groups-flood-")
    tag = uuid.uuid4().hex[:8]
    connection = await asyncpg.connect(dsn_for(database))
    try:
        viewer = token("bench-viewer", "viewer", ttl=TOKEN_TTL)
        connected = await flood.connect(subscribers, host=HOST, port=server.port, token=viewer, query=QUEUE_SUBSCRIPTION,
                                        timeout=cfg["connect_timeout_s"])
        groups_connected = await group_flood.connect(group_subscribers, host=HOST, port=server.port, token=viewer, query=GROUPS_SUBSCRIPTION,
                                                     timeout=cfg["connect_timeout_s"])
        await _clients(server.port, [burst_input(n, f"{tag}w") for n in range(200)], 1, 0.5)  # warm-up
        await asyncio.sleep(1.0)
        phases = {}
        for name, batch, offset in (("submitPatch", 1, 0), ("submitPatches", BATCH, total)):
            inputs = [burst_input(n, tag) for n in range(offset, offset + total)]
            since = time.monotonic()
            result = await _measured(server, inputs, batch)
            await asyncio.sleep(1.0)  # the pages after the burst have long arrived by now (or never will)
            exact_total = await connection.fetchval(OPEN_COUNT)
            result["subscribers"] = await _subscriber_view(flood, since, result, exact_total)
            result["group_subscribers"] = await _subscriber_view(group_flood, since, result, await connection.fetchval(OPEN_GROUPS))
            phases[name] = result
        # Both again with every submission a different model input (patchSizeLines varies), so that each is explained
        # by the model: what a burst costs when no two submissions look alike. Throughput, latency and CPU only.
        for name, batch, suffix in (("submitPatch_distinct_rows", 1, "ds"), ("submitPatches_distinct_rows", BATCH, "d")):
            distinct_inputs = [{**burst_input(n, f"{tag}{suffix}"), "patchSizeLines": 1 + n} for n in range(total)]
            phases[name] = await _measured(server, distinct_inputs, batch)
        baseline = await _baseline(database, [burst_input(n, f"{tag}b") for n in range(total)])
        flood_status = await flood.status()
    finally:
        await flood.stop()
        await group_flood.stop()
        await connection.close()
    group = await _group_decision(ctx, server.port, database, tag)
    ctx.stop(server)
    single, batched = phases["submitPatch"], phases["submitPatches"]
    single_distinct, distinct = phases["submitPatch_distinct_rows"], phases["submitPatches_distinct_rows"]
    worst = [phase[view] for phase in (single, batched) for view in ("subscribers", "group_subscribers")]
    exact_ms = max(float("inf") if w["exact_page_after_burst_max_ms"] is None else w["exact_page_after_burst_max_ms"] for w in worst)
    pages_ok = all(w["pages_during_burst"]["max"] <= w["pages_limit"] for w in worst)
    return {
        "title": f"mass-CVE burst: {total:,} submissions with the model active, from {CLIENTS} client processes, "
                 f"{subscribers} pendingQueue and {group_subscribers} pendingGroups subscribers",
        "config": {"submissions_per_phase": total, "client_processes": CLIENTS, "batch": BATCH, "subscribers": subscribers,
                   "subscribers_connected": connected["connected"], "group_subscribers": group_subscribers,
                   "group_subscribers_connected": groups_connected["connected"], "model": model_version, "server": "1 hitl serve worker"},
        "figure": {"submitPatch": single, "submitPatches": batched, "submitPatch_distinct_rows": single_distinct,
                   "submitPatches_distinct_rows": distinct,
                   "subscriber_clients": flood_status, "decideGroup": group},
        "baseline": {"what": "plain single-row INSERT of the same rows into a bare copy of patches, 16 asyncpg connections",
                     **baseline},
        "ratio_throughput": ratio(single["per_s"], baseline["per_s"]),
        "targets": [
            target("submitPatch throughput", ">= 500 submissions/s", round(single["per_s"], 1), single["per_s"] >= 500),
            target("submitPatch p99", "p99 <= 150 ms", single["latency_ms"]["p99"], single["latency_ms"]["p99"] <= 150),
            target("submitPatches throughput", ">= 2,000 submissions/s (batches of 100)", round(batched["per_s"], 1), batched["per_s"] >= 2000),
            target("errors", "0 errors", errors := sum(phase["errors"] for phase in phases.values()), errors == 0),
            target("exact page after the burst", "<= 250 ms, totalCount = the database's", exact_ms, exact_ms <= 250),
            target("pages per subscriber", "<= burst s / window + 2", max(w["pages_during_burst"]["max"] for w in worst), pages_ok),
            target("decideGroup audit rows", f"{GROUP_SIZE} + 0", group["audit_rows"], group["audit_rows"] == GROUP_SIZE),
        ],
    }


async def _measured(server, inputs: list[dict], batch: int) -> dict:  # noqa: ANN001
    """`inputs` sent by the client processes, with the rate and the CPU from the moment they start sending until the
    last answer: the server's, PostgreSQL's and the share of the machine's cores busy (clients, server and PostgreSQL
    share them)."""
    before: dict[str, float] = {}

    def read() -> dict[str, float]:
        return {"server": cpu_seconds(server.process.pid), "postgres": postgres_cpu_seconds(), "busy": busy_cpu_seconds(), "at": time.monotonic()}

    result = await _clients(server.port, inputs, batch, at_start=lambda: before.update(read()))
    used = {key: value - before[key] for key, value in read().items()}
    result["server_cpu_s"] = round(used["server"], 2)
    result["server_cpu_ms_per_submission"] = round(used["server"] * 1000 / len(inputs), 2)
    result["server_cpu_share"] = round(used["server"] / used["at"], 2)  # of one core
    result["postgres_cpu_ms_per_submission"] = round(used["postgres"] * 1000 / len(inputs), 2)
    result["machine_cpu_busy"] = round(used["busy"] / used["at"] / (os.cpu_count() or 1), 2)
    result["distinct_feature_rows"] = _distinct_feature_rows(inputs)
    result["per_s"] = result["submissions"] / result["seconds"]
    result["latency_ms"] = latency_stats(result.pop("latencies"))
    return result


async def _group_decision(ctx: Context, port: int, database: str, tag: str) -> dict:
    fix = {"cveId": "CVE-0000-99999", "packageName": "demo-burst-lib", "currentVersion": "3.1.0", "targetVersion": "3.1.1"}
    # Without wargaming evidence none is auto-approved on arrival: all 300 wait for the group decision.
    inputs = [{**{k: v for k, v in burst_input(n, f"{tag}g").items() if k != "wargaming"}, **fix} for n in range(GROUP_SIZE)]
    service = GraphQLClient(HOST, port, api_key=API_KEY)
    lead = GraphQLClient(HOST, port, token=token("bench-lead", "lead", ttl=TOKEN_TTL))
    connection = await asyncpg.connect(dsn_for(database))
    try:
        for index in range(0, GROUP_SIZE, BATCH):
            _, body = await service.call(
                "mutation($i: [SubmitPatchInput!]!) { submitPatches(inputs: $i) { created } }", {"i": inputs[index:index + BATCH]}
            )
            if "errors" in body:
                raise RuntimeError(f"group submissions: {body['errors'][:1]}")
        key = await connection.fetchval("SELECT group_key FROM patches WHERE patch_id = $1", inputs[0]["patchId"])
        head = await connection.fetchval("SELECT max(seq) FROM audit_log")
        elapsed, body = await lead.call(DECIDE, {"key": key})
        if "errors" in body:
            raise RuntimeError(f"decideGroup: {body['errors'][:1]}")
        rows = await connection.fetchval("SELECT count(*) FROM audit_log WHERE seq > $1", head)
    finally:
        await service.close()
        await lead.close()
        await connection.close()
    result = body["data"]["decideGroup"]
    return {"members": GROUP_SIZE, "applied": len(result["applied"]), "skipped": len(result["skipped"]),
            "ms": round(elapsed * 1000, 1), "audit_rows": rows, "pending_after": result["group"]["pendingCount"]}
