"""Server CPU per request, layer by layer (a script, not a pytest test): `python -m tests.benchmarks.layers [N] [ROUNDS]`.

One `hitl serve` on a throwaway PostgreSQL database of 60,000 SYNTHETIC patches. Each round sends N sequential
requests of each kind and reads the server's CPU time from /proc:

- `GET /health`, which costs uvicorn, the middleware and FastAPI routing;
- an authenticated `{ __typename }`, which adds the fixed cost of a GraphQL request;
- a read of one patch by id, which adds one database read;
- approvePatch, which adds the decision transaction;
- and, in this process without HTTP, `Database.write()` + `decisions.approve` alone (the service's part).

The first round warms up and is not reported. CPU time, not latency: the client shares the machine, and a
noisy machine still changes the result from round to round, so the rounds are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from db.engine import Database
from db.enums import Role
from db.services import decisions
from db.services.actor import Actor
from tests.support.server import token
from tests.benchmarks.common import cpu_seconds, dsn_for, url_for
from tests.benchmarks.harness import _drop, _prepare
from tests.support.processes import ServeProcess

DATABASE = "hitl_bench_layers"
APPROVE = "mutation($id: ID!) { approvePatch(id: $id) { id status version } }"
READ = "query($id: ID!) { patch(id: $id) { id status version } }"


async def _measure(count: int, rounds: int) -> dict[str, list[float]]:
    needed = 2 * count * (rounds + 1)  # the server's approvals, then the in-process ones
    await _drop([DATABASE])
    try:
        await _prepare(DATABASE, 60_000, 2_000)
        connection = await asyncpg.connect(dsn_for(DATABASE))
        try:
            ids = [str(row["id"]) for row in await connection.fetch(
                "SELECT id FROM patches WHERE status = 'PENDING' AND NOT requires_escalation LIMIT $1", needed)]
        finally:
            await connection.close()
        if len(ids) < needed:
            raise SystemExit(f"only {len(ids)} approvable patches: use fewer requests or rounds")
        with tempfile.TemporaryDirectory() as logs:
            server = ServeProcess(url_for(DATABASE), Path(logs) / "serve.log")
            try:
                server.wait_ready()
                results = await _rounds(server, ids[: needed // 2], count, rounds)
            finally:
                server.stop()
        results["service"] = await _service_rounds(ids[needed // 2:], count, rounds)
        return results
    finally:
        await _drop([DATABASE])


async def _rounds(server: ServeProcess, ids: list[str], count: int, rounds: int) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {token('bench-reviewer', 'reviewer')}"}
    per_request: dict[str, list[float]] = {"health": [], "typename": [], "read": [], "approve": []}
    async with httpx.AsyncClient(base_url=server.base, timeout=30, trust_env=False) as client:
        for index in range(rounds + 1):
            chunk = ids[index * count:(index + 1) * count]
            requests = {
                "health": lambda _i: client.get("/health"),
                "typename": lambda _i: client.post("/graphql", json={"query": "{ __typename }"}, headers=headers),
                "read": lambda i: client.post("/graphql", json={"query": READ, "variables": {"id": chunk[i]}}, headers=headers),
                "approve": lambda i: client.post("/graphql", json={"query": APPROVE, "variables": {"id": chunk[i]}}, headers=headers),
            }
            for kind, send in requests.items():
                before = cpu_seconds(server.process.pid)
                for i in range(count):
                    response = await send(i)
                    response.raise_for_status()
                    if kind != "health" and "errors" in response.json():
                        raise SystemExit(f"{kind} failed: {response.text[:500]}")
                if index > 0:  # round 0 warms up
                    per_request[kind].append((cpu_seconds(server.process.pid) - before) / count * 1000)
    return per_request


async def _service_rounds(ids: list[str], count: int, rounds: int) -> list[float]:
    database = Database.from_url(url_for(DATABASE))
    actor = Actor(subject="bench-reviewer", roles=frozenset({Role.REVIEWER}))
    per_approval = []
    try:
        for index in range(rounds + 1):
            started = time.process_time()
            for patch_id in ids[index * count:(index + 1) * count]:
                async with database.write() as session:
                    await decisions.approve(session=session, actor=actor, patch_id=patch_id)
            if index > 0:
                per_approval.append((time.process_time() - started) / count * 1000)
    finally:
        await database.dispose()
    return per_approval


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("count", nargs="?", type=int, default=300, help="requests of each kind per round")
    parser.add_argument("rounds", nargs="?", type=int, default=3, help="measured rounds (after one warm-up round)")
    args = parser.parse_args(argv)
    results = asyncio.run(_measure(args.count, args.rounds))
    for kind, values in results.items():
        what = "CPU per approval in this process" if kind == "service" else "server CPU per request"
        print(f"{kind:9s} {what}: median {statistics.median(values):.2f} ms, rounds {[round(v, 2) for v in values]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
