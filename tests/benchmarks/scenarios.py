"""The benchmark scenarios of issue 7. Each returns a JSON-able dict with its figures, the baseline measured
in the same run, the ratio, and the targets (met: true/false, or null when this mode cannot tell)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import API_KEY, token
from tests.benchmarks.common import Deadline, cpu_seconds, dsn_for, latency_stats, rss_mib
from tests.benchmarks.floods import FloodGroup
from tests.benchmarks.httpclient import GraphQLClient
from tests.support.processes import ServeProcess

TOKEN_TTL = 6 * 3600
HOST = "127.0.0.1"

PENDING_QUERY = """query Pending($first: Int!) {
  pendingPatches(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id patchId cveId packageName currentVersion targetVersion versionBump severity cvssScore priority status
      slaStatus slaDeadline ageSeconds createdAt version requiresEscalation autoApprovalEligible mlWargamingAgreement
      mlPrediction { confidence prediction } wargaming { validationPassed }
    } }
  }
}"""
GROUPS_QUERY = """query Groups($first: Int!) {
  patchGroups(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { key cveId packageName targetVersion size pendingCount highestPriority oldestPendingAt } }
  }
}"""
APPROVE = "mutation($id: ID!) { approvePatch(id: $id) { id status version } }"
REJECT = 'mutation($id: ID!) { rejectPatch(id: $id, reason: "synthetic: benchmark") { id status version } }'
COMMENT = 'mutation($id: ID!) { addComment(id: $id, body: "synthetic: benchmark comment") { id } }'
SUBMIT = "mutation($input: SubmitPatchInput!) { submitPatch(input: $input) { created patch { id version } } }"
AUDIT_PAGE = "{ auditLog(first: 50) { totalCount edges { node { seq action actor at } } } }"
EVENTS_SUBSCRIPTION = ("subscription { patchEvents { seq kind actor at "
                       "patch { id patchId status version priority severity packageName slaStatus } } }")
QUEUE_SUBSCRIPTION = "subscription { pendingQueue(first: 20) { totalCount asOfSeq items { id patchId priority status } } }"
SUMMARY_SUBSCRIPTION = "subscription { analyticsSummary { totalPatches pending approved autoApprovalRate } }"


ALL_SERVERS: list[ServeProcess] = []  # every server this run started: stopped again by the harness's last-resort cleanup


def stop_leftover_servers() -> None:
    for server in ALL_SERVERS:
        with contextlib.suppress(Exception):
            server.stop()


@dataclass
class Context:
    mode: str
    config: dict
    log_dir: Path
    servers: list = field(default_factory=list)
    seq_counter: int = 0

    profile_dir: Path | None = None
    profilers: dict = field(default_factory=dict)

    reuse: bool = False  # smoke mode: one server per (database, slot) for the whole run
    shared: dict = field(default_factory=dict)

    def serve_many(self, wanted: list[tuple[str, str, str]]) -> list[ServeProcess]:
        """Start servers for (database, name, slot) together (imports take seconds each), then wait for all."""
        started, fresh = [], []
        for database, name, slot in wanted:
            if self.reuse and (database, slot) in self.shared:
                started.append(self.shared[(database, slot)])
                continue
            server = ServeProcess(dsn_for(database).replace("postgresql://", "postgresql+asyncpg://", 1), self.log_dir / f"{name}.log")
            ALL_SERVERS.append(server)
            self.servers.append(server)
            if self.reuse:
                self.shared[(database, slot)] = server
            started.append(server)
            fresh.append((server, name))
        for server, name in fresh:
            server.wait_ready(timeout=90)
            if self.profile_dir is not None:  # sample the server with py-spy until it stops (raw = collapsed stacks)
                output = self.profile_dir / f"{self.mode}-{name}.txt"
                self.profilers[server] = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.process.pid), "--rate", "250",
                     "--format", "raw", "--output", str(output)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return started

    def serve(self, database: str, name: str, slot: str = "a") -> ServeProcess:
        return self.serve_many([(database, name, slot)])[0]

    def stop(self, server: ServeProcess, *, final: bool = False) -> None:
        if self.reuse and not final and server in self.shared.values():
            return
        profiler = self.profilers.pop(server, None)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            try:
                profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                profiler.kill()
                profiler.wait()
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self, *, final: bool = False) -> None:
        for server in list(self.servers):
            with contextlib.suppress(Exception):
                self.stop(server, final=final)
        if final:
            self.servers.clear()
            self.shared.clear()


def target(name: str, text: str, value: float | None, met: bool | None, note: str | None = None) -> dict:
    entry = {"name": name, "target": text, "value": value, "met": met}
    if note:
        entry["note"] = note
    return entry


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def _check(body: dict, what: str) -> None:
    if "errors" in body:
        raise RuntimeError(f"{what}: {body['errors'][:1]}")


def patch_input(n: int, tag: str, *, severity: str = "LOW") -> dict:
    return {
        "patchId": f"SYNTH-BENCH-{tag}-{n}",
        "apvId": f"APV-SYNTH-BENCH-{tag}-{n}",
        "cveId": f"CVE-0000-{n % 100000:05d}",
        "packageName": "demo-bench-lib",
        "currentVersion": "1.4.2",
        "targetVersion": "1.4.3",
        "severity": severity,
        "affectedSystems": ["synthetic-system-01"],
        "patchSizeLines": 12,
        "wargaming": {"phase1Success": True, "phase2Success": True, "validationPassed": True, "executionTimeMs": 42000},
    }


# --- 1. pending page ---------------------------------------------------------------------------------------------


async def capture_pending_sql(database: str) -> list[tuple[str, tuple]]:
    """The exact statements (and parameters) the service sends for the first pending page."""
    from sqlalchemy import event

    from db.engine import Database
    from db.services import queue
    from db.types import utcnow

    db = Database.from_url(dsn_for(database).replace("postgresql://", "postgresql+asyncpg://", 1))
    captured: list[tuple[str, tuple]] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        captured.append((statement, tuple(parameters)))

    try:
        async with db.read() as session:
            await queue.pending_page(session=session, first=50, now=utcnow())
    finally:
        await db.dispose()
    return [(sql.replace("%s", "$"), params) for sql, params in captured]


async def _sql_page(connection: asyncpg.Connection, statements: list[tuple[str, tuple]]) -> float:
    started = time.perf_counter()
    for sql, params in statements:
        await connection.fetch(sql, *params)
    return time.perf_counter() - started


async def pending_page(ctx: Context, small_db: str, large_db: str, data: dict) -> tuple[dict, dict, dict]:
    cfg = ctx.config
    statements = await capture_pending_sql(small_db)
    small_server, large_server = ctx.serve_many([(small_db, "pending-small", "a"), (large_db, "pending-large", "a")])
    servers = {"small": small_server, "large": large_server}
    viewer = token("bench-viewer", "viewer", ttl=TOKEN_TTL)
    clients = {key: GraphQLClient(HOST, server.port, token=viewer) for key, server in servers.items()}
    connections = {"small": await asyncpg.connect(dsn_for(small_db)), "large": await asyncpg.connect(dsn_for(large_db))}
    samples = {f"{kind}_{size}": [] for kind in ("graphql", "sql", "groups") for size in ("small", "large")}
    round_medians = {key: [] for key in samples}
    cpu = {"small": 0.0, "large": 0.0}
    try:
        for size in ("small", "large"):  # warm-up: connections, prepared statements, caches
            for _ in range(cfg["page_warmup"]):
                _, body = await clients[size].call(PENDING_QUERY, {"first": 50})
                _check(body, "pendingPatches")
                await _sql_page(connections[size], statements)
        deadline = Deadline(cfg["page_budget_s"])
        for _ in range(cfg["page_rounds"]):
            if deadline.expired:
                break
            for size in ("small", "large"):
                got = []
                cpu_before = cpu_seconds(servers[size].process.pid)
                for _ in range(cfg["page_reps"]):
                    elapsed, body = await clients[size].call(PENDING_QUERY, {"first": 50})
                    _check(body, "pendingPatches")
                    got.append(elapsed)
                cpu[size] += cpu_seconds(servers[size].process.pid) - cpu_before
                samples[f"graphql_{size}"] += got
                round_medians[f"graphql_{size}"].append(statistics.median(got) * 1000)
                got = [await _sql_page(connections[size], statements) for _ in range(cfg["page_reps"])]
                samples[f"sql_{size}"] += got
                round_medians[f"sql_{size}"].append(statistics.median(got) * 1000)
                got = []
                for _ in range(cfg["page_reps"]):
                    elapsed, groups_body = await clients[size].call(GROUPS_QUERY, {"first": 20})
                    _check(groups_body, "patchGroups")
                    got.append(elapsed)
                samples[f"groups_{size}"] += got
                round_medians[f"groups_{size}"].append(statistics.median(got) * 1000)
        total = body["data"]["pendingPatches"]["totalCount"]
        groups_total = groups_body["data"]["patchGroups"]["totalCount"]
    finally:
        for client in clients.values():
            await client.close()
        for connection in connections.values():
            await connection.close()
        for server in servers.values():
            ctx.stop(server)
    stats = {key: latency_stats(value) for key, value in samples.items()}
    spread = {key: [round(v, 3) for v in value] for key, value in round_medians.items()}
    small, large = data["small"], data["large"]
    gq_small, sql_small = stats["graphql_small"], stats["sql_small"]
    first = {
        "title": f"pendingPatches(first: 50) over HTTP, {small['patches']:,} patches / {small['open']:,} pending",
        "config": {"patches": small["patches"], "pending": small["open"], "rounds": len(round_medians["graphql_small"]),
                   "requests_per_round": cfg["page_reps"], "selection": "22 Patch fields incl. mlPrediction, wargaming",
                   "server": "1 hitl serve worker, DB pool 2..10", "client": "1 keep-alive connection, sequential"},
        "figure": {**gq_small, "server_cpu_ms_per_request": round(cpu["small"] * 1000 / max(gq_small["n"], 1), 2)},
        "baseline": {"what": "the same SQL statements the service sends (count + page), via asyncpg", **sql_small},
        "baseline_page_only_note": "count(*) of the pending set is part of both figure and baseline",
        "ratio_median": ratio(gq_small["median"], sql_small["median"]),
        "ratio_p99": ratio(gq_small["p99"], sql_small["p99"]),
        "round_medians_ms": {k: v for k, v in spread.items() if k.endswith("small")},
        "sql": [sql for sql, _ in statements],
        "targets": [target("median", "median <= 15 ms", gq_small["median"],
                           gq_small["median"] <= 15 if small["patches"] >= 100_000 else None,
                           None if small["patches"] >= 100_000 else "smaller data set than the target's 100k (quick/smoke)")],
    }
    gq_large = stats["graphql_large"]
    scale_ratio = ratio(gq_large["median"], gq_small["median"])
    second = {
        "title": f"same page at {large['patches']:,} patches / {large['open']:,} pending vs {small['patches']:,} / {small['open']:,}",
        "config": {"patches": large["patches"], "pending": large["open"], "compared_with": small["patches"],
                   "interleaved": "rounds alternate the two servers/databases"},
        "figure": {**gq_large, "server_cpu_ms_per_request": round(cpu["large"] * 1000 / max(gq_large["n"], 1), 2)},
        "baseline": {"what": f"the {small['patches']:,}-patch case in the same run", **gq_small},
        "raw_sql_at_large": stats["sql_large"],
        "ratio_median": scale_ratio,
        "ratio_p99": ratio(gq_large["p99"], gq_small["p99"]),
        "round_medians_ms": {k: v for k, v in spread.items() if k.endswith("large")},
        "totalCount_seen": total,
        "targets": [target("median ratio", "<= 1.25x the smaller case", scale_ratio,
                           scale_ratio <= 1.25 if large["patches"] >= 1_000_000 else None,
                           None if large["patches"] >= 1_000_000 else "smaller data sets than the target's 1M vs 100k")],
    }
    gr_small, gr_large = stats["groups_small"], stats["groups_large"]
    groups = {
        "title": f"patchGroups(first: 20) over HTTP, {small['patches']:,} patches / {small['open']:,} pending",
        "config": {"patches": small["patches"], "pending": small["open"], "groups_with_pending": groups_total,
                   "interleaved": "each round: pending page, raw SQL, group page, on both data sets",
                   "selection": "8 PatchGroup fields, counts and order from the database"},
        "figure": gr_small,
        "baseline": {"what": "the pendingPatches(first: 50) page on the same server and data, same rounds", **gq_small},
        "at_large": {"patches": large["patches"], "pending": large["open"], **gr_large},
        "ratio_median": ratio(gr_small["median"], gq_small["median"]),
        "ratio_p99": ratio(gr_small["p99"], gq_small["p99"]),
        "round_medians_ms": {k: v for k, v in spread.items() if k.startswith("groups")},
        "targets": [target("median", "median <= 15 ms (the pending page's target)", gr_small["median"],
                           gr_small["median"] <= 15 if small["patches"] >= 100_000 else None,
                           None if small["patches"] >= 100_000 else "smaller data set than 100k (smoke)")],
    }
    return first, second, groups


# --- 2. approvals ----------------------------------------------------------------------------------------------------

BASELINE_TABLE = """CREATE TABLE IF NOT EXISTS bench_audit_baseline (
  seq bigserial PRIMARY KEY, decision_id uuid NOT NULL, action varchar(64) NOT NULL, actor varchar(200) NOT NULL,
  at timestamptz NOT NULL, details json NOT NULL, ip_address varchar(64), user_agent varchar(512),
  prev_hash varchar(64) NOT NULL, hash varchar(64) NOT NULL)"""
BASELINE_INSERT = """INSERT INTO bench_audit_baseline (decision_id, action, actor, at, details, ip_address, user_agent, prev_hash, hash)
VALUES ($1, 'APPROVED', $2, now(), $3, '127.0.0.1', 'bench', $4, $5)"""


async def _client_round(clients: list[GraphQLClient], items: list, seconds: float, document: str, variables) -> dict:  # noqa: ANN001
    """Each client sends `document` with `variables(item)` for items taken from a shared pool, until the pool is
    empty or `seconds` have passed; latencies of successes, error samples, throughput."""
    latencies, errors = [], []
    pool = list(items)
    deadline = Deadline(seconds)

    async def worker(client: GraphQLClient) -> None:
        while pool and not deadline.expired:
            elapsed, body = await client.call(document, variables(pool.pop()))
            if "errors" in body:
                errors.append(body["errors"][0].get("message", "?")[:200])
            else:
                latencies.append(elapsed)

    try:
        for client in clients:
            await client.connection.open()
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for client in clients))
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.close()
    return {"ok": len(latencies), "errors": len(errors), "error_samples": errors[:3], "seconds": elapsed,
            "per_s": len(latencies) / elapsed if elapsed else 0.0, "latencies": latencies, "used": len(items) - len(pool)}


async def _approval_round(port: int, ids: list[str], clients_n: int, seconds: float) -> dict:
    clients = [GraphQLClient(HOST, port, token=token(f"bench-reviewer-{k}", "reviewer", ttl=TOKEN_TTL)) for k in range(clients_n)]
    return await _client_round(clients, ids, seconds, APPROVE, lambda patch_id: {"id": patch_id})


async def _insert_round(dsn: str, clients_n: int, seconds: float, max_rows: int) -> dict:
    connections = [await asyncpg.connect(dsn) for _ in range(clients_n)]
    latencies: list[float] = []
    deadline = Deadline(seconds)
    details = json.dumps({"patchId": "SYNTH-BENCH-x", "status": "APPROVED", "version": 2, "from": "PENDING",
                          "comment": None, "approvals": 1, "requiredApprovals": 1})

    async def worker(connection: asyncpg.Connection, k: int) -> None:
        while not deadline.expired and len(latencies) < max_rows:
            started = time.perf_counter()
            await connection.execute(BASELINE_INSERT, uuid.uuid4(), f"bench-reviewer-{k}", details, "0" * 64, uuid.uuid4().hex * 2)
            latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(c, k) for k, c in enumerate(connections)))
        elapsed = time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()
    return {"ok": len(latencies), "seconds": elapsed, "per_s": len(latencies) / elapsed, "latencies": latencies}


async def approvals(ctx: Context, database: str) -> dict:
    cfg = ctx.config
    clients_n = 16
    connection = await asyncpg.connect(dsn_for(database))
    try:
        await connection.execute(BASELINE_TABLE)
        needed = cfg["approval_rounds"] * cfg["approval_max"] + 200
        ids = [str(r["id"]) for r in await connection.fetch(
            "SELECT id FROM patches WHERE status = 'PENDING' AND NOT requires_escalation ORDER BY random() LIMIT $1", needed)]
    finally:
        await connection.close()
    server = ctx.serve(database, "approvals")
    rounds, inserts = [], []
    try:
        warm = ids[:100]
        ids = ids[100:]
        await _approval_round(server.port, warm, clients_n, 10)  # warm-up: pool, caches, JIT-free paths
        gc_before = await full_gc(server.port)
        for index in range(cfg["approval_rounds"]):
            chunk = ids[index * cfg["approval_max"]:(index + 1) * cfg["approval_max"]]
            cpu_before = cpu_seconds(server.process.pid)
            rounds.append(await _approval_round(server.port, chunk, clients_n, cfg["approval_seconds"]))
            rounds[-1]["server_cpu_s"] = cpu_seconds(server.process.pid) - cpu_before
            inserts.append(await _insert_round(dsn_for(database), clients_n, cfg["approval_seconds"], cfg["approval_max"] * 4))
        gc_pauses = full_gc_between(gc_before, await full_gc(server.port))
    finally:
        ctx.stop(server)
    all_lat = [x for r in rounds for x in r["latencies"]]
    ins_lat = [x for r in inserts for x in r["latencies"]]
    rate = statistics.median(r["per_s"] for r in rounds)
    base_rate = statistics.median(r["per_s"] for r in inserts)
    lat = latency_stats(all_lat)
    errors = sum(r["errors"] for r in rounds)
    cpu_per = sum(r["server_cpu_s"] for r in rounds) / max(sum(r["ok"] + r["errors"] for r in rounds), 1)
    return {
        "title": "approvePatch over HTTP, 16 concurrent clients (each: row lock, approval row, audit append, NOTIFY)",
        "config": {"clients": clients_n, "rounds": len(rounds), "round_seconds_max": cfg["approval_seconds"],
                   "round_approvals_max": cfg["approval_max"], "server": "1 hitl serve worker, DB pool 2..10",
                   "patches": "distinct PENDING patches not requiring escalation, random order"},
        "figure": {"approvals_per_s_median": round(rate, 1), "per_round_per_s": [round(r["per_s"], 1) for r in rounds],
                   "latency_ms": lat, "errors": errors, "server_cpu_ms_per_approval": round(cpu_per * 1000, 2),
                   "server_cpu_share": round(sum(r["server_cpu_s"] for r in rounds) / sum(r["seconds"] for r in rounds), 2), "error_samples": [e for r in rounds for e in r["error_samples"]][:3],
                   "server_gc": gc_pauses},
        "baseline": {"what": "plain INSERT of an audit-like row (autocommit), 16 concurrent asyncpg connections",
                     "inserts_per_s_median": round(base_rate, 1), "per_round_per_s": [round(r["per_s"], 1) for r in inserts],
                     "latency_ms": latency_stats(ins_lat)},
        "ratio_throughput": ratio(rate, base_rate),
        "ratio_p99": ratio(lat["p99"], latency_stats(ins_lat)["p99"]),
        "targets": [target("throughput", ">= 300 approvals/s", round(rate, 1), rate >= 300),
                    target("p99", "p99 <= 150 ms", lat["p99"], lat["p99"] is not None and lat["p99"] <= 150)],
    }


# --- 2b. submissions ---------------------------------------------------------------------------------------------------


def submission_input(n: int, tag: str) -> dict:
    """An upstream submission with its evidence: 1 in 10 is confident enough to be auto-approved."""
    confident = n % 10 == 0
    return {
        **patch_input(n, tag),
        "mlPrediction": {"modelVersion": "upstream-bench", "confidence": 0.99 if confident else 0.9, "prediction": True,
                         "executionTimeMs": 1.0, "shapValues": [{"feature": "cvss_base_score", "value": 0.3}]},
    }


async def _submission_round(port: int, numbers: list[int], tag: str, clients_n: int, seconds: float) -> dict:
    clients = [GraphQLClient(HOST, port, api_key=API_KEY) for _ in range(clients_n)]
    return await _client_round(clients, numbers, seconds, SUBMIT, lambda n: {"input": submission_input(n, tag)})


async def submissions(ctx: Context, database: str) -> dict:
    """submitPatch from 16 clients (X-API-Key), each a new patch with upstream evidence, against the loaded queue."""
    cfg = ctx.config
    clients_n = 16
    connection = await asyncpg.connect(dsn_for(database))
    try:
        await connection.execute(BASELINE_TABLE)
    finally:
        await connection.close()
    server = ctx.serve(database, "submissions")
    tag = uuid.uuid4().hex[:8]
    per_round = cfg["approval_max"]
    rounds, inserts = [], []
    try:
        await _submission_round(server.port, list(range(100)), f"{tag}w", clients_n, 10)  # warm-up
        for index in range(cfg["approval_rounds"]):
            numbers = list(range(index * per_round, (index + 1) * per_round))
            cpu_before = cpu_seconds(server.process.pid)
            rounds.append(await _submission_round(server.port, numbers, tag, clients_n, cfg["approval_seconds"]))
            rounds[-1]["server_cpu_s"] = cpu_seconds(server.process.pid) - cpu_before
            inserts.append(await _insert_round(dsn_for(database), clients_n, cfg["approval_seconds"], per_round * 4))
    finally:
        ctx.stop(server)
    lat = latency_stats([x for r in rounds for x in r["latencies"]])
    ins_lat = latency_stats([x for r in inserts for x in r["latencies"]])
    rate = statistics.median(r["per_s"] for r in rounds)
    base_rate = statistics.median(r["per_s"] for r in inserts)
    cpu_per = [r["server_cpu_s"] / max(r["ok"] + r["errors"], 1) for r in rounds]
    return {
        "title": "submitPatch over HTTP, 16 concurrent clients (each a new patch with upstream prediction and wargaming)",
        "config": {"clients": clients_n, "rounds": len(rounds), "round_seconds_max": cfg["approval_seconds"],
                   "round_submissions_max": per_round, "server": "1 hitl serve worker, DB pool 2..10",
                   "mix": "1 in 10 auto-approved on submission (confidence 0.99), the rest queued"},
        "figure": {"submissions_per_s_median": round(rate, 1), "per_round_per_s": [round(r["per_s"], 1) for r in rounds],
                   "latency_ms": lat, "errors": sum(r["errors"] for r in rounds),
                   "server_cpu_ms_per_submission_median": round(statistics.median(cpu_per) * 1000, 2),
                   "error_samples": [e for r in rounds for e in r["error_samples"]][:3]},
        "baseline": {"what": "plain INSERT of an audit-like row (autocommit), 16 concurrent asyncpg connections",
                     "inserts_per_s_median": round(base_rate, 1), "latency_ms": ins_lat},
        "ratio_throughput": ratio(rate, base_rate),
        "ratio_p99": ratio(lat["p99"], ins_lat["p99"]),
        "targets": [target("throughput", "measured only (no target)", round(rate, 1), None)],
    }


# --- 3/4. subscribers --------------------------------------------------------------------------------------------------


async def _metrics_text(port: int) -> str:
    probe = GraphQLClient(HOST, port)  # a fresh connection: a long-lived one may idle for minutes
    try:
        _, body = await probe.get("/metrics")
    finally:
        await probe.close()
    return body.decode()


async def full_gc(port: int) -> dict | None:
    """The server's full collections so far (hitl_gc_pause_seconds{generation="2"}): count, seconds, and how
    many took at most 100 ms. None from a server that does not report them (an older commit)."""
    found = None
    for family in text_string_to_metric_families(await _metrics_text(port)):
        if family.name != "hitl_gc_pause_seconds":
            continue
        found = {"count": 0.0, "seconds": 0.0, "within_100ms": 0.0}
        for sample in family.samples:
            if sample.labels.get("generation") != "2":
                continue
            if sample.name.endswith("_count"):
                found["count"] = sample.value
            elif sample.name.endswith("_sum"):
                found["seconds"] = sample.value
            elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == 0.1:
                found["within_100ms"] = sample.value
    return found


def full_gc_between(before: dict | None, after: dict | None) -> dict | None:
    if before is None or after is None:
        return None
    count = after["count"] - before["count"]
    return {"full_collections": int(count), "pause_seconds_total": round(after["seconds"] - before["seconds"], 3),
            "pauses_over_100ms": int(count - (after["within_100ms"] - before["within_100ms"]))}


async def _metric(client: GraphQLClient, name: str) -> float | None:
    for line in (await _metrics_text(client.connection.port)).splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


async def _wait_subscriptions(client: GraphQLClient, expected: int, timeout: float) -> float | None:
    deadline = Deadline(timeout)
    value = None
    while not deadline.expired:
        value = await _metric(client, "hitl_active_subscriptions")
        if value is not None and value >= expected:
            return value
        await asyncio.sleep(0.2)
    return value


class Mutator:
    """Submits SYNTHETIC patches through the API (SERVICE via X-API-Key) and finds each one's event seq."""

    def __init__(self, port: int, dsn: str, tag: str) -> None:
        self.client = GraphQLClient(HOST, port, api_key=API_KEY)
        self.dsn, self.tag, self.n = dsn, tag, 0
        self.db: asyncpg.Connection | None = None

    async def open(self) -> Mutator:
        self.db = await asyncpg.connect(self.dsn)
        await self.client.connection.open()
        return self

    async def submit(self) -> tuple[float, float, str]:
        """(t0 monotonic before sending, mutation latency s, patch id)."""
        self.n += 1
        t0 = time.monotonic()
        elapsed, body = await self.client.call(SUBMIT, {"input": patch_input(self.n, self.tag)})
        _check(body, "submitPatch")
        return t0, elapsed, body["data"]["submitPatch"]["patch"]["id"]

    async def seq_of(self, patch_id: str) -> int:
        return await self.db.fetchval("SELECT min(seq) FROM audit_log WHERE decision_id = $1", uuid.UUID(patch_id))

    async def close(self) -> None:
        await self.client.close()
        if self.db is not None:
            await self.db.close()


async def _deliver(floods: FloodGroup, seq: int, expected: int, timeout: float) -> tuple[list[float], int]:
    deadline = Deadline(timeout)
    got = 0
    while not deadline.expired:
        got = await floods.count(seq)
        if got >= expected:
            break
        await asyncio.sleep(0.01)
    return await floods.times(seq), got


async def _paced_events(mutator: Mutator, floods: FloodGroup | None, expected: int, count: int, timeout: float, gap: float) -> dict:
    """`count` mutations one at a time; each waits until every subscriber has its event."""
    last, median, mutation, missing = [], [], [], 0
    for _ in range(count):
        t0, elapsed, patch_id = await mutator.submit()
        mutation.append(elapsed)
        if floods is not None and expected:
            seq = await mutator.seq_of(patch_id)
            times, got = await _deliver(floods, seq, expected, timeout)
            missing += max(expected - got, 0)
            if times:
                last.append(max(times) - t0)
                median.append(statistics.median(times) - t0)
        await asyncio.sleep(gap)
    return {"last": last, "median": median, "mutation": mutation, "missing": missing}


async def _stream_mutations(mutator: Mutator, count: int, rate: float) -> list[float]:
    """`count` mutations at a fixed rate (not waiting for delivery): latency while fan-outs are running."""
    latencies, interval = [], 1.0 / rate
    start = time.monotonic()
    last_id = None
    for index in range(count):
        delay = start + index * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        _, elapsed, last_id = await mutator.submit()
        latencies.append(elapsed)
    mutator.last_stream_id = last_id
    return latencies


async def subscribers(ctx: Context, database: str) -> tuple[dict, dict]:
    cfg = ctx.config
    server = ctx.serve(database, "subscribers")
    viewer = token("bench-dashboard", "viewer", ttl=TOKEN_TTL)
    probe = GraphQLClient(HOST, server.port)
    mutator = await Mutator(server.port, dsn_for(database), f"sub{ctx.mode}").open()
    floods = await FloodGroup.start(cfg["flood_processes"], ctx.log_dir, "flood-")
    levels_out, level_errors = [], []
    try:
        await asyncio.sleep(1.0)
        idle_rss = rss_mib(server.process.pid)
        # 0 subscribers: the baseline of the mutation-latency scenario.
        await _paced_events(mutator, None, 0, 5, 1, 0.02)  # warm-up
        zero_paced = await _paced_events(mutator, None, 0, cfg["events_per_level"], 1, cfg["event_gap_s"])
        zero_stream = await _stream_mutations(mutator, cfg["stream_mutations"], cfg["stream_rate"])
        rss_after_warmup = rss_mib(server.process.pid)
        current = 0
        for level in cfg["levels"]:
            try:
                connect = await floods.connect(level - current, host=HOST, port=server.port, token=viewer,
                                               query=EVENTS_SUBSCRIPTION, timeout=cfg["connect_timeout_s"])
                current += connect["connected"]
                active = await _wait_subscriptions(probe, current, cfg["connect_timeout_s"])
                await asyncio.sleep(cfg["settle_s"])
                rss_connected = rss_mib(server.process.pid)
                cpu_before, gc_before = cpu_seconds(server.process.pid), await full_gc(server.port)
                paced = await _paced_events(mutator, floods, current, cfg["events_per_level"], cfg["delivery_timeout_s"], cfg["event_gap_s"])
                cpu_per_event = (cpu_seconds(server.process.pid) - cpu_before) / max(cfg["events_per_level"], 1)
                rss_events = rss_mib(server.process.pid)
                entry = {
                    "subscribers": current, "requested": level, "connect_failed": connect["failed"],
                    "connect_failures": connect["failures"], "connect_seconds": connect["seconds"],
                    "active_subscriptions_metric": active,
                    "rss_mib_connected": round(rss_connected, 1), "rss_mib_after_events": round(rss_events, 1),
                    "rss_mib": round(max(rss_connected, rss_events), 1),
                    "rss_kib_per_subscriber": round((max(rss_connected, rss_events) - idle_rss) * 1024 / max(current, 1), 1),
                    "events": cfg["events_per_level"], "missing_deliveries": paced["missing"],
                    "last_subscriber_ms": latency_stats(paced["last"]), "median_subscriber_ms": latency_stats(paced["median"]),
                    "mutation_ms_paced": latency_stats(paced["mutation"]),
                    "server_cpu_ms_per_event": round(cpu_per_event * 1000, 1),
                    "server_gc_during_events": full_gc_between(gc_before, await full_gc(server.port)),
                }
                if level == cfg["mutation_level"]:
                    gc_before = await full_gc(server.port)
                    stream = await _stream_mutations(mutator, cfg["stream_mutations"], cfg["stream_rate"])
                    entry["server_gc_during_stream"] = full_gc_between(gc_before, await full_gc(server.port))
                    seq = await mutator.seq_of(mutator.last_stream_id)
                    await _deliver(floods, seq, current, cfg["delivery_timeout_s"] * 3)  # let the backlog drain
                    entry["mutation_ms_stream"] = latency_stats(stream)
                entry["client_status"] = await floods.status()
                levels_out.append(entry)
                print(f"  {current:>6} subscribers: RSS {entry['rss_mib']:.0f} MiB, last subscriber median "
                      f"{entry['last_subscriber_ms']['median']} ms p99 {entry['last_subscriber_ms']['p99']} ms, "
                      f"server CPU {entry['server_cpu_ms_per_event']} ms/event", flush=True)
            except Exception as exc:  # noqa: BLE001 - keep the levels measured so far; say where it broke
                level_errors.append(f"at {level:,} subscribers: {type(exc).__name__}: {exc}"[:300])
                print(f"  level {level:,} failed: {level_errors[-1]}", flush=True)
                break
    finally:
        await floods.stop()
        await mutator.close()
        await probe.close()
        ctx.stop(server)
    by_level = {e["requested"]: e for e in levels_out}
    top = max(cfg["levels"])
    at_2k = by_level.get(cfg["mutation_level"])
    at_top = by_level.get(top)
    rss_target_met = (at_top["rss_mib"] <= 512) if (at_top and top >= 10_000) else None
    p99_2k = at_2k["last_subscriber_ms"]["p99"] if at_2k else None
    subs = {
        "title": "patchEvents subscribers on one worker: server RSS and mutation-sent -> last subscriber received",
        "config": {"levels": cfg["levels"], "events_per_level": cfg["events_per_level"], "event_gap_s": cfg["event_gap_s"],
                   "client_processes": cfg["flood_processes"], "compression": "off (server and clients)",
                   "subscription": EVENTS_SUBSCRIPTION, "event": "submitPatch via X-API-Key, one at a time",
                   "clock": "t0 = just before the mutation is sent (includes the mutation's own latency)"},
        "baseline": {"what": "idle server RSS (started, ready, no subscribers)", "idle_rss_mib": round(idle_rss, 1),
                     "rss_after_warmup_mib": round(rss_after_warmup, 1)},
        "levels": levels_out,
        "level_errors": level_errors,
        "targets": [
            target("RSS at 10k", "<= 512 MiB with 10,000 subscribers", at_top["rss_mib"] if at_top else None,
                   rss_target_met, None if top >= 10_000 else f"RSS at {top:,}, the largest level in this mode"),
            target("p99 at 2k", "p99 <= 250 ms to the last of 2,000", p99_2k,
                   None if cfg["mutation_level"] != 2000 or not at_2k
                   else (p99_2k is not None and p99_2k <= 250 and at_2k["missing_deliveries"] == 0),
                   None if cfg["mutation_level"] == 2000 else f"measured at {cfg['mutation_level']:,} in this mode"),
        ],
    }
    zp, zs = latency_stats(zero_paced["mutation"]), latency_stats(zero_stream)
    mp = at_2k["mutation_ms_paced"] if at_2k else None
    ms = at_2k.get("mutation_ms_stream") if at_2k else None
    stream_ratio = ratio(ms["median"], zs["median"]) if ms else None
    stream_p99_ratio = ratio(ms["p99"], zs["p99"]) if ms else None
    mutation = {
        "title": f"submitPatch latency with {cfg['mutation_level']:,} patchEvents subscribers vs 0",
        "config": {"stream": f"{cfg['stream_mutations']} mutations at {cfg['stream_rate']}/s, not waiting for delivery "
                             "(fan-outs of earlier events run meanwhile)",
                   "paced": "one mutation at a time, next one after every subscriber got the event"},
        "figure": {"stream": ms, "paced": mp, "server_gc_during_stream": at_2k.get("server_gc_during_stream") if at_2k else None},
        "baseline": {"what": "the same with 0 subscribers", "stream": zs, "paced": zp},
        "ratio_median": stream_ratio,
        "ratio_p99": ratio(ms["p99"], zs["p99"]) if ms else None,
        "ratio_median_paced": ratio(mp["median"], zp["median"]) if mp else None,
        "ratio_p99_paced": ratio(mp["p99"], zp["p99"]) if mp else None,
        "targets": [target("median ratio (stream)", "<= 1.5x the latency at 0 subscribers (median)", stream_ratio,
                           stream_ratio <= 1.5 if stream_ratio is not None and cfg["mutation_level"] == 2000 else None,
                           None if cfg["mutation_level"] == 2000 else f"measured at {cfg['mutation_level']:,} in this mode"),
                    target("p99 ratio (stream)", "<= 1.5x the latency at 0 subscribers (p99)", stream_p99_ratio,
                           stream_p99_ratio <= 1.5 if stream_p99_ratio is not None and cfg["mutation_level"] == 2000 else None,
                           None if cfg["mutation_level"] == 2000 else f"measured at {cfg['mutation_level']:,} in this mode")],
    }
    return subs, mutation


# --- 5. cross-replica ------------------------------------------------------------------------------------------------


async def cross_replica(ctx: Context, database: str) -> dict:
    cfg = ctx.config
    a, b = ctx.serve_many([(database, "replica-a", "a"), (database, "replica-b", "b")])
    viewer = token("bench-dashboard", "viewer", ttl=TOKEN_TTL)
    mutator = await Mutator(a.port, dsn_for(database), f"x{ctx.mode}").open()
    floods_a = await FloodGroup.start(1, ctx.log_dir, "cross-a-")
    floods_b = await FloodGroup.start(1, ctx.log_dir, "cross-b-")
    n = cfg["cross_subscribers"]
    same, other, extra, missing = [], [], [], 0
    try:
        for floods, server in ((floods_a, a), (floods_b, b)):
            await floods.connect(n, host=HOST, port=server.port, token=viewer, query=EVENTS_SUBSCRIPTION, timeout=30)
        for server in (a, b):
            probe = GraphQLClient(HOST, server.port)
            await _wait_subscriptions(probe, n, 30)
            await probe.close()
        await _paced_events(mutator, None, 0, 5, 1, 0.02)  # warm-up
        await asyncio.sleep(0.5)
        for _ in range(cfg["cross_events"]):
            t0, _, patch_id = await mutator.submit()
            seq = await mutator.seq_of(patch_id)
            times_a, got_a = await _deliver(floods_a, seq, n, cfg["delivery_timeout_s"])
            times_b, got_b = await _deliver(floods_b, seq, n, cfg["delivery_timeout_s"])
            missing += (n - got_a) + (n - got_b)
            if times_a and times_b:
                same.append(max(times_a) - t0)
                other.append(max(times_b) - t0)
                extra.append(max(times_b) - max(times_a))
            await asyncio.sleep(cfg["cross_gap_s"])
    finally:
        await floods_a.stop()
        await floods_b.stop()
        await mutator.close()
        ctx.stop(a)
        ctx.stop(b)
    s_same, s_other, s_extra = latency_stats(same), latency_stats(other), latency_stats(extra)
    extra_p99 = round(s_other["p99"] - s_same["p99"], 3) if same else None
    return {
        "title": "cross-replica delivery: mutation on replica A, subscribers on B vs on A (LISTEN/NOTIFY)",
        "config": {"events": cfg["cross_events"], "subscribers_per_replica": n, "gap_s": cfg["cross_gap_s"]},
        "figure": s_other,
        "baseline": {"what": "subscribers on the replica that served the mutation", **s_same},
        "extra_p99_ms": extra_p99,
        "per_event_extra_ms": s_extra,
        "missing_deliveries": missing,
        "ratio_p99": ratio(s_other["p99"], s_same["p99"]),
        "targets": [target("extra p99", "p99(B) - p99(A) <= 50 ms", extra_p99,
                           (extra_p99 <= 50 and missing == 0) if extra_p99 is not None else False)],
    }


# --- 6. ML --------------------------------------------------------------------------------------------------------------


def ml(ctx: Context) -> tuple[dict, dict]:
    from tests.benchmarks import bench_ml

    cfg = ctx.config
    result = bench_ml.run(quick=ctx.mode != "full", labels=cfg["ml_labels"], calls=cfg["ml_calls"], verbose=False)
    p, t = result["prediction"], result["training"]
    full, bare = p["predict_with_shap_ms"], p["inplace_predict_baseline_ms"]
    predict = {
        "title": "Predictor.predict (features + DMatrix + prediction + TreeSHAP) for one patch, in process",
        "config": {"calls": p["calls"], "trees": p["trees"], "features": p["features"], "model_trained_on": t["labelled_patches"]},
        "figure": {"median": round(full["p50"], 4), "p99": round(full["p99"], 4), "mean": round(full["mean"], 4)},
        "baseline": {"what": "bare booster.inplace_predict on the same feature row, interleaved",
                     "median": round(bare["p50"], 4), "p99": round(bare["p99"], 4)},
        "features_only_ms": {"median": round(p["features_only_ms"]["p50"], 4), "p99": round(p["features_only_ms"]["p99"], 4)},
        "ratio_median": ratio(full["p50"], bare["p50"]),
        "ratio_p99": ratio(full["p99"], bare["p99"]),
        "targets": [target("p99", "p99 <= 2 ms", round(full["p99"], 4), full["p99"] <= 2)],
    }
    full_size = t["labelled_patches"] >= 50_000
    training = {
        "title": f"train_model on {t['labelled_patches']:,} labelled SYNTHETIC patches (nthread={t['nthread']})",
        "config": {"labelled_patches": t["labelled_patches"], "nthread": t["nthread"], "rounds": t["rounds"]},
        "figure": {"seconds": round(t["train_s"], 2), "generation_seconds": round(t["generate_s"], 2),
                   "test_auc": t["test_auc"], "test_log_loss": t["test_log_loss"], "baseline_log_loss": t["baseline_log_loss"]},
        "baseline": None,
        "targets": [target("training time", "<= 20 s on 50,000 labelled patches", round(t["train_s"], 2),
                           t["train_s"] <= 20 if full_size else None,
                           None if full_size else f"trained on {t['labelled_patches']:,} labels in this mode")],
    }
    return predict, training


# --- 7. memory soak ----------------------------------------------------------------------------------------------------


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) points, in MiB per hour."""
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mx) ** 2 for x in xs)
    if denominator == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / denominator * 3600


async def soak(ctx: Context, database: str) -> dict:
    cfg = ctx.config
    seconds = cfg["soak_s"]
    server = ctx.serve(database, "soak")
    viewer = token("bench-dashboard", "viewer", ttl=TOKEN_TTL)
    floods = await FloodGroup.start(1, ctx.log_dir, "soak-")
    side = await FloodGroup.start(1, ctx.log_dir, "soak-live-")
    mutator = await Mutator(server.port, dsn_for(database), f"soak{ctx.mode}").open()
    reader = GraphQLClient(HOST, server.port, token=viewer)
    lead = GraphQLClient(HOST, server.port, token=token("bench-lead", "lead", ttl=TOKEN_TTL))
    reviewer = GraphQLClient(HOST, server.port, token=token("bench-soak-reviewer", "reviewer", ttl=TOKEN_TTL))
    samples: list[tuple[float, float]] = []
    aborted: list[str] = []
    counts = {"submit": 0, "approve": 0, "reject": 0, "comment": 0, "page": 0, "audit": 0, "churn": 0, "errors": 0}
    error_samples: list[str] = []
    try:
        await floods.connect(cfg["soak_subscribers"], host=HOST, port=server.port, token=viewer, query=EVENTS_SUBSCRIPTION, timeout=60)
        await side.connect(cfg["soak_queue_subscribers"], host=HOST, port=server.port, token=viewer, query=QUEUE_SUBSCRIPTION, timeout=60)
        await side.connect(3, host=HOST, port=server.port, token=viewer, query=SUMMARY_SUBSCRIPTION, timeout=60)
        connection = await asyncpg.connect(dsn_for(database))
        try:
            open_ids = [str(r["id"]) for r in await connection.fetch(
                "SELECT id FROM patches WHERE status = 'PENDING' AND NOT requires_escalation ORDER BY random() LIMIT 20000")]
        finally:
            await connection.close()
        rng = random.Random(5)
        deadline = Deadline(seconds)
        start = time.monotonic()

        def failed(body: dict, what: str) -> None:
            if "errors" in body:
                counts["errors"] += 1
                if len(error_samples) < 5:
                    error_samples.append(f"{what}: {body['errors'][0].get('message', '?')[:160]}")

        async def every(interval: float, action) -> None:  # noqa: ANN001
            tick = 0
            while not deadline.expired:
                tick += 1
                await action()
                delay = start + tick * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(min(delay, deadline.left))

        async def submit() -> None:
            mutator.n += 1
            severity = rng.choice(("LOW", "MEDIUM", "HIGH", "CRITICAL"))
            _, body = await mutator.client.call(SUBMIT, {"input": patch_input(mutator.n, mutator.tag, severity=severity)})
            failed(body, "submit")
            counts["submit"] += 1

        async def decide() -> None:
            if not open_ids:
                return
            patch_id = open_ids.pop()
            roll = rng.random()
            if roll < 0.7:
                _, body = await reviewer.call(APPROVE, {"id": patch_id})
                counts["approve"] += 1
            elif roll < 0.85:
                _, body = await lead.call(REJECT, {"id": patch_id})
                counts["reject"] += 1
            else:
                _, body = await reviewer.call(COMMENT, {"id": patch_id})
                counts["comment"] += 1
            failed(body, "decide")

        async def read() -> None:
            if rng.random() < 0.8:
                _, body = await reader.call(PENDING_QUERY, {"first": 50})
                counts["page"] += 1
            else:
                _, body = await reader.call(AUDIT_PAGE)
                counts["audit"] += 1
            failed(body, "read")

        async def churn() -> None:
            n = max(cfg["soak_subscribers"] // 10, 1)
            await floods.disconnect(n)
            await floods.connect(n, host=HOST, port=server.port, token=viewer, query=EVENTS_SUBSCRIPTION, timeout=60)
            counts["churn"] += n

        async def sample() -> None:
            samples.append((time.monotonic() - start, rss_mib(server.process.pid)))
            if samples[-1][1] > cfg["soak_rss_abort_mib"] and not aborted:
                # A runaway process on a shared 24 GiB machine: stop the load, report what was seen.
                aborted.append(f"RSS {samples[-1][1]:.0f} MiB > {cfg['soak_rss_abort_mib']} MiB after {samples[-1][0]:.0f} s")
                deadline.end = time.monotonic()

        await asyncio.gather(
            every(1 / cfg["soak_submit_rate"], submit),
            every(1 / cfg["soak_decide_rate"], decide),
            every(1 / cfg["soak_read_rate"], read),
            every(cfg["soak_churn_s"], churn),
            every(cfg["soak_sample_s"], sample),
        )
        await sample()
        status = await floods.status()
    finally:
        for client in (reader, lead, reviewer):
            await client.close()
        await mutator.close()
        await floods.stop()
        await side.stop()
        ctx.stop(server)
    warmup = cfg["soak_warmup_s"]
    steady = [p for p in samples if p[0] >= warmup]
    slope_all, slope_steady = slope_per_hour(samples), slope_per_hour(steady)
    start_rss = samples[0][1] if samples else None
    if slope_steady is None and aborted:  # stopped before the warm-up ended: judge on what there is
        slope_steady = slope_all
    met = False if aborted else None if slope_steady is None else slope_steady <= cfg["soak_slope_limit"]
    return {
        "title": f"server RSS over {seconds / 60:.1f} min of mixed load",
        "config": {"seconds": seconds, "patchEvents_subscribers": cfg["soak_subscribers"],
                   "pendingQueue_subscribers": cfg["soak_queue_subscribers"], "analyticsSummary_subscribers": 3,
                   "submits_per_s": cfg["soak_submit_rate"], "decisions_per_s": cfg["soak_decide_rate"],
                   "reads_per_s": cfg["soak_read_rate"], "churn": f"10% of patchEvents subscribers every {cfg['soak_churn_s']} s",
                   "sample_every_s": cfg["soak_sample_s"], "warmup_excluded_s": warmup,
                   "upward_trend_if": f"least-squares slope after warm-up > {cfg['soak_slope_limit']} MiB/h"},
        "figure": {"start_rss_mib": round(start_rss, 1) if start_rss else None,
                   "end_rss_mib": round(samples[-1][1], 1) if samples else None,
                   "max_rss_mib": round(max(p[1] for p in samples), 1) if samples else None,
                   "slope_mib_per_h_after_warmup": round(slope_steady, 2) if slope_steady is not None else None,
                   "slope_mib_per_h_all": round(slope_all, 2) if slope_all is not None else None,
                   "operations": counts, "error_samples": error_samples, "client_status": status,
                   "aborted": aborted[0] if aborted else None,
                   "duration_s": round(samples[-1][0], 1) if samples else None},
        "baseline": {"what": "RSS at the start of the load", "start_rss_mib": round(start_rss, 1) if start_rss else None},
        "samples": [(round(t, 1), round(r, 2)) for t, r in samples],
        "targets": [target("trend", "no upward RSS trend (slope after warm-up)",
                           round(slope_steady, 2) if slope_steady is not None else None, met)],
    }
