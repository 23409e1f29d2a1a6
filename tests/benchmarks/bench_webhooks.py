"""Webhook delivery (issue 18): events/s delivered to one local receiver by one replica, and the lag (commit → the
receiver has it) at a steady 50 events/s to 5 endpoints; each beside reading the same events straight from the
audit table in the same run (a plain batched SELECT; a LISTEN connection that reads each new row)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import asyncpg

from tests.benchmarks.common import cpu_seconds, dsn_for, latency_stats, pg_admin, url_for
from tests.benchmarks.httpclient import GraphQLClient
from tests.benchmarks.scenarios import ALL_SERVERS, HOST, TOKEN_TTL, Context, _check, patch_input, ratio, target
from tests.support.processes import ServeProcess
from tests.support.receivers import Receiver
from tests.support.waiting import eventually
from tests.support.server import API_KEY, token

SUBMIT = "mutation($input: SubmitPatchInput!) { submitPatch(input: $input) { patch { id } } }"
CREATE = "mutation($u: String!, $e: Boolean!) { createWebhook(input: {url: $u, enabled: $e}) { endpoint { id } } }"
ENABLE = "mutation($id: ID!, $u: String!) { updateWebhook(id: $id, input: {url: $u, enabled: true}) { id } }"
SERVER_ENV = {"HITL_WEBHOOK_ALLOWED_HOSTS": HOST, "HITL_AUDIT_CHECKPOINT_SECONDS": "0"}
SUBMITTERS = 8


@contextlib.asynccontextmanager
async def own_database(base: str):  # noqa: ANN201
    """A database of its own: every replica on a database sends for its endpoints, and the harness's other servers
    (smoke mode shares them across scenarios) are not configured to reach 127.0.0.1."""
    name = f"{base}_wh"
    await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        await asyncio.to_thread(_upgrade, url_for(name))
        yield name
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _upgrade(url: str) -> None:
    import logging

    from db.migrate import upgrade

    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade(url)


def _serve(ctx: Context, database: str, name: str) -> ServeProcess:
    server = ServeProcess(dsn_for(database).replace("postgresql://", "postgresql+asyncpg://", 1), ctx.log_dir / f"{name}.log", **SERVER_ENV)
    ALL_SERVERS.append(server)
    ctx.servers.append(server)
    server.wait_ready(timeout=90)
    return server


async def _admin_call(client: GraphQLClient, query: str, variables: dict, what: str) -> dict:
    _, body = await client.call(query, variables)
    _check(body, what)
    return body["data"]


async def _submit_many(port: int, tag: str, count: int) -> list[str]:
    """`count` SYNTHETIC submissions from SUBMITTERS concurrent clients; the patch ids."""
    ids: list[str] = []
    numbers = iter(range(count))

    async def worker() -> None:
        client = GraphQLClient(HOST, port, api_key=API_KEY)
        try:
            for n in numbers:
                _, body = await client.call(SUBMIT, {"input": patch_input(n, tag)})
                _check(body, "submitPatch")
                ids.append(body["data"]["submitPatch"]["patch"]["id"])
        finally:
            await client.close()

    await asyncio.gather(*(worker() for _ in range(SUBMITTERS)))
    return ids


async def _read_straight(dsn: str, after: int, count: int) -> float:
    """Seconds to read `count` audit rows after `after` in batches of 200 (what a sender reads, without sending)."""
    connection = await asyncpg.connect(dsn)
    try:
        started, seq, read = time.perf_counter(), after, 0
        while read < count:
            rows = await connection.fetch(
                "SELECT a.seq, a.action, a.actor, a.at, p.patch_id, p.priority, p.status FROM audit_log a "
                "JOIN patches p ON p.id = a.decision_id WHERE a.seq > $1 ORDER BY a.seq LIMIT 200", seq,
            )
            if not rows:
                break
            read, seq = read + len(rows), rows[-1]["seq"]
        return time.perf_counter() - started
    finally:
        await connection.close()


async def throughput(ctx: Context, base: str) -> dict:
    async with own_database(base) as database:
        return await _throughput(ctx, database)


async def lag(ctx: Context, base: str) -> dict:
    async with own_database(base) as database:
        return await _lag(ctx, database)


async def _throughput(ctx: Context, database: str) -> dict:
    cfg = ctx.config
    count = cfg["webhook_events"]
    server = await asyncio.to_thread(_serve, ctx, database, "webhooks-throughput")
    admin = GraphQLClient(HOST, server.port, token=token("bench-admin", "admin", ttl=TOKEN_TTL))
    dsn = dsn_for(database)
    try:
        async with Receiver() as receiver:
            endpoint = (await _admin_call(admin, CREATE, {"u": receiver.url, "e": False}, "createWebhook"))["createWebhook"]["endpoint"]["id"]
            connection = await asyncpg.connect(dsn)
            cursor = await connection.fetchval("SELECT cursor_seq FROM webhook_endpoints WHERE id = $1", uuid.UUID(endpoint))
            await connection.close()
            await _submit_many(server.port, f"wh{ctx.mode}", count)  # the backlog, while the endpoint is disabled
            started, cpu_before = time.monotonic(), cpu_seconds(server.process.pid)
            await _admin_call(admin, ENABLE, {"id": endpoint, "u": receiver.url}, "updateWebhook")
            await eventually(lambda: len(receiver.received) >= count, timeout=cfg["webhook_timeout_s"], what=f"{count} deliveries")
            seconds = receiver.received[count - 1].at - started
            cpu_ms = (cpu_seconds(server.process.pid) - cpu_before) * 1000 / count
            duplicates = len(receiver.received) - len({item.headers["webhook-id"] for item in receiver.received})
        baseline_s = await _read_straight(dsn, cursor, count)
    finally:
        await admin.close()
        ctx.stop(server)
    rate = count / seconds
    baseline = count / baseline_s
    return {
        "title": "webhook throughput: a backlog of events delivered by one replica to one local receiver (in order, signed)",
        "config": {"events": count, "replicas": 1, "receivers": 1},
        "figure": {"events_per_s": round(rate, 1), "seconds": round(seconds, 3), "duplicates": duplicates,
                   "server_cpu_ms_per_event": round(cpu_ms, 3)},
        "baseline": {"what": "the same events read straight from the audit table (batches of 200, joined to patches)",
                     "events_per_s": round(baseline, 1)},
        "ratio": ratio(rate, baseline),
        "targets": [target("events/s per replica", ">= 500 events/s to one receiver", round(rate, 1), rate >= 500 and duplicates == 0)],
    }


async def _lag(ctx: Context, database: str) -> dict:
    cfg = ctx.config
    rate, endpoints_n = 50.0, 5
    count = int(rate * cfg["webhook_lag_seconds"])
    server = await asyncio.to_thread(_serve, ctx, database, "webhooks-lag")
    admin = GraphQLClient(HOST, server.port, token=token("bench-admin", "admin", ttl=TOKEN_TTL))
    submitter = GraphQLClient(HOST, server.port, api_key=API_KEY)
    committed: dict[str, float] = {}
    read_at: dict[str, float] = {}
    listener = await asyncpg.connect(dsn_for(database))
    last_seq = [await listener.fetchval("SELECT coalesce(max(seq), 0) FROM audit_log")]
    reader = await asyncpg.connect(dsn_for(database))
    reading = asyncio.Lock()

    async def read_new() -> None:  # the baseline: a LISTEN connection reading each new row from the table
        async with reading:
            if reader.is_closed():  # a notification that arrived as the scenario ended
                return
            rows = await reader.fetch("SELECT seq, decision_id FROM audit_log WHERE seq > $1 ORDER BY seq", last_seq[0])
            now = time.monotonic()
            for row in rows:
                read_at.setdefault(str(row["decision_id"]), now)
            if rows:
                last_seq[0] = rows[-1]["seq"]

    await listener.add_listener("hitl_events", lambda *_args: asyncio.get_running_loop().create_task(read_new()))
    receivers = [Receiver() for _ in range(endpoints_n)]
    try:
        for receiver in receivers:
            await receiver.start()
            await _admin_call(admin, CREATE, {"u": receiver.url, "e": True}, "createWebhook")
        warmup = int(rate)  # one second at the rate, not measured: every sender running and connected
        started = time.monotonic()
        for n in range(warmup + count):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            _, body = await submitter.call(SUBMIT, {"input": patch_input(n, f"whlag{ctx.mode}")})
            _check(body, "submitPatch")
            if n >= warmup:
                committed[body["data"]["submitPatch"]["patch"]["id"]] = time.monotonic()  # the commit precedes the answer
        await eventually(lambda: all(len(receiver.received) >= warmup + count for receiver in receivers), timeout=cfg["webhook_timeout_s"],
                         what="every event at every receiver")
        await eventually(lambda: len(read_at) >= count, timeout=10, what="the baseline reader")
        async with reading:  # the reader is one connection: not beside a read of new rows still running
            attempts = {row["attempts"]: row["n"] for row in await reader.fetch("SELECT attempts, count(*) AS n FROM webhook_deliveries GROUP BY 1")}
    finally:
        await listener.close()
        async with reading:
            await reader.close()
        for receiver in receivers:
            await receiver.stop()
        await admin.close()
        await submitter.close()
        ctx.stop(server)
    lags, missing, by_second = [], 0, {}
    for receiver in receivers:
        arrived: dict[str, float] = {}
        for item in receiver.received:
            arrived.setdefault(item.json["data"]["patch"]["id"], item.at)
        for patch_id, at in committed.items():
            if patch_id in arrived:
                lags.append(arrived[patch_id] - at)
                second = int(at - started)
                by_second[second] = max(by_second.get(second, 0.0), round(arrived[patch_id] - at, 3))
            else:
                missing += 1
    base = [read_at[patch_id] - at for patch_id, at in committed.items() if patch_id in read_at]
    stats, base_stats = latency_stats(lags), latency_stats(base)
    p99_s = stats["p99"] / 1000 if stats["p99"] is not None else None
    return {
        "title": "webhook lag: commit → receiver, steady 50 events/s to 5 endpoints (one replica)",
        "config": {"events": count, "rate_per_s": rate, "endpoints": endpoints_n, "warmup_events": warmup},
        "figure": {**stats, "missing": missing, "max_lag_s_by_second": by_second, "deliveries_by_attempts": attempts},
        "baseline": {"what": "the same events read straight from the audit table by a LISTEN connection", **base_stats},
        "ratio_p99": ratio(stats["p99"], base_stats["p99"]),
        "targets": [target("lag p99", "p99 <= 1 s at 50 events/s to 5 endpoints", p99_s, p99_s is not None and p99_s <= 1.0 and missing == 0)],
    }
