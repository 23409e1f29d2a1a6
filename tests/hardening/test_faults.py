"""Faults against real `hitl serve` processes and a real PostgreSQL of their own (tests/hardening/pgcluster.py):
PostgreSQL restarted under load, the LISTEN connection killed again and again, SIGTERM with requests in
flight, a connection pool held busy. Every wait is bounded: a request that hangs fails the test as a hang.
"""

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
import websockets

from db.migrate import upgrade
from db.services.audit_log import seq_cursor
from tests.support.waiting import subscriptions_open
from tests.support.server import API_KEY, REVIEWER, VIEWER, patch_input, submit_to
from tests.support.pgcluster import PgCluster, throwaway_cluster
from tests.support.processes import ServeProcess
from tests.support.wsclient import BRIEF_EVENTS, connect

pytestmark = [pytest.mark.hardening, pytest.mark.slow]

SUBMIT = "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { id patchId } } }"
APPROVE = "mutation($id: ID!) { approvePatch(id: $id) { id status } }"
VERIFY = "{ verifyAuditChain { valid entriesChecked firstBrokenSeq } }"
REQUEST_BOUND = 20.0  # no single request may take longer than this, whatever the fault


# --- fixtures ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """One throwaway cluster for the module with a migrated template; each test copies the template."""
    with throwaway_cluster() as pg:
        asyncio.run(pg.execute('CREATE DATABASE "hitl_template"'))
        with ThreadPoolExecutor(max_workers=1) as pool:  # alembic starts its own event loop
            pool.submit(upgrade, pg.url("hitl_template")).result()
        yield pg


POOL_TIMEOUT, STATEMENT_TIMEOUT = 1.5, 4.0
POOL_ENV = {
    "HITL_DB_POOL_MIN_SIZE": "1",
    "HITL_DB_POOL_MAX_SIZE": "2",
    "HITL_DB_POOL_TIMEOUT_SECONDS": str(POOL_TIMEOUT),
    "HITL_DB_STATEMENT_TIMEOUT_SECONDS": str(STATEMENT_TIMEOUT),
    "HITL_SLA_CHECK_INTERVAL_SECONDS": "3600",
}


@pytest.fixture(scope="module")
def servers(cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple]]:
    """Every `hitl serve` process of the module, started at once (a start costs seconds of imports on this
    machine): two replicas on one database for the restart and listener tests (each counts from the head
    seq it starts at), one to SIGTERM, one with a pool of 2. Each on its own copy of the template."""
    plan = {"replicas": (2, {}), "sigterm": (1, {"HITL_SHUTDOWN_GRACE_SECONDS": "10"}), "pool": (1, POOL_ENV)}
    logs = tmp_path_factory.mktemp("serve")
    started: dict[str, tuple] = {}
    try:
        for name, (count, env) in plan.items():
            database = f"hitl_{name}"
            asyncio.run(cluster.execute(f'CREATE DATABASE "{database}" TEMPLATE "hitl_template"'))
            started[name] = (database, [ServeProcess(cluster.url(database), logs / f"{name}-{i}.log", **env) for i in range(count)])
        for _database, processes in started.values():
            for process in processes:
                process.wait_ready()
        yield {name: (database, tuple(processes)) for name, (database, processes) in started.items()}
    finally:
        for _database, processes in started.values():
            for process in processes:
                process.stop()


async def head_seq(cluster: PgCluster, database: str) -> int:
    return await cluster.fetchval("SELECT coalesce(max(seq), 0) FROM audit_log", database=database)


# --- helpers ---------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    op: str
    ok: bool
    status: int | None
    code: str | None
    elapsed: float
    at: float
    body: dict | None = None
    retry_after: str | None = None


async def call(client: httpx.AsyncClient, base: str, op: str, query: str, variables: dict, headers: dict) -> Outcome:
    """One GraphQL request, bounded: a transport error is recorded (code TRANSPORT), a hang fails the test."""
    started = time.monotonic()
    try:
        response = await asyncio.wait_for(client.post(f"{base}/graphql", json={"query": query, "variables": variables}, headers=headers), REQUEST_BOUND)
    except TimeoutError:
        pytest.fail(f"{op} did not answer within {REQUEST_BOUND} s: a hang")
    except httpx.TransportError as exc:
        return Outcome(op, False, None, f"TRANSPORT:{type(exc).__name__}", time.monotonic() - started, started)
    body = response.json()
    errors = body.get("errors")
    code = errors[0].get("extensions", {}).get("code") if errors else None
    return Outcome(op, not errors, response.status_code, code, time.monotonic() - started, started, body, response.headers.get("retry-after"))


def submit_call(client: httpx.AsyncClient, base: str, patch_id: str) -> "asyncio.Future[Outcome]":
    return call(client, base, "submit", SUBMIT, {"i": patch_input(0, patchId=patch_id, apvId=f"APV-{patch_id}")}, {"X-API-Key": API_KEY})


def approve_call(client: httpx.AsyncClient, base: str, decision_id: str) -> "asyncio.Future[Outcome]":
    return call(client, base, "approve", APPROVE, {"id": decision_id}, {"Authorization": f"Bearer {REVIEWER}"})


def assert_unavailable_shape(outcome: Outcome) -> None:
    """SERVICE_UNAVAILABLE as documented: retryable, a reason, no SQL or DSN; 503 + Retry-After for one operation."""
    error = outcome.body["errors"][0]
    assert error["extensions"]["retryable"] is True and error["extensions"]["reason"], error
    text = str(outcome.body).lower()
    assert "select" not in text and "insert" not in text and "postgres" not in text and "traceback" not in text, outcome.body
    assert outcome.status == 503 and outcome.retry_after == "1", outcome


@dataclass
class Subscriber:
    """A dashboard's patchEvents subscription: on any close or error it reconnects with `after` = the last
    cursor it saw (from seq 0, so it must end up with every event exactly once)."""

    base: str
    name: str
    from_seq: int = 0
    seqs: list[int] = field(default_factory=list)
    reconnects: int = 0
    closes: list[str] = field(default_factory=list)
    websocket: object = None
    task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"subscriber-{self.name}")

    async def _run(self) -> None:
        while True:
            try:
                async with connect(self.base, token=VIEWER) as client:
                    self.websocket = client.connection
                    await client.subscribe(BRIEF_EVENTS, {"after": seq_cursor(self.seqs[-1] if self.seqs else self.from_seq)})
                    while True:
                        message = await client.next_payload(timeout=3600)
                        if message["type"] in ("next", "data") and not message["payload"].get("errors"):
                            self.seqs.append(message["payload"]["data"]["patchEvents"]["seq"])
                        else:
                            self.closes.append(f"{message['type']}: {str(message.get('payload'))[:200]}")
                            break
            except (websockets.ConnectionClosed, OSError, TimeoutError, websockets.InvalidStatus) as exc:
                self.closes.append(type(exc).__name__)
            self.websocket = None
            self.reconnects += 1
            await asyncio.sleep(0.25)

    async def drop(self) -> None:
        """Lose the socket (as a laptop on a flaky network does)."""
        if self.websocket is not None:
            with contextlib.suppress(Exception):
                await self.websocket.close()

    async def wait_for(self, head: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (not self.seqs or self.seqs[-1] < head):
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def ready_status(client: httpx.AsyncClient, base: str) -> int:
    started = time.monotonic()
    response = await asyncio.wait_for(client.get(f"{base}/ready"), 5)
    assert time.monotonic() - started < 3.5, "/ready must answer within the probe's timeout"
    return response.status_code


# --- a. PostgreSQL restarted while 8 clients submit and approve ---------------------------------------------

async def test_postgres_restart_under_load(cluster: PgCluster, servers: dict[str, tuple]):
    database, (a, b) = servers["replicas"]
    start = await head_seq(cluster, database)
    outcomes: list[Outcome] = []
    submitted: dict[str, str] = {}  # patchId -> decision id, for every submit that returned success
    approved: set[str] = set()  # decision ids of every approve that returned success
    stop_load = asyncio.Event()

    async def client_loop(n: int, base: str) -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=REQUEST_BOUND + 5) as client:
            for i in itertools.count():
                if stop_load.is_set():
                    return
                patch_id = f"R-{n}-{i}"
                outcome = await submit_call(client, base, patch_id)
                outcomes.append(outcome)
                if not outcome.ok:
                    await asyncio.sleep(0.1)  # a client backing off on SERVICE_UNAVAILABLE
                    continue
                decision_id = outcome.body["data"]["submitPatch"]["patch"]["id"]
                submitted[patch_id] = decision_id
                outcome = await approve_call(client, base, decision_id)
                outcomes.append(outcome)
                if outcome.ok:
                    approved.add(decision_id)
                else:
                    await asyncio.sleep(0.1)

    subscribers = [Subscriber(a.base, "a-open", start), Subscriber(b.base, "b-open", start), Subscriber(b.base, "b-dropped", start)]
    for subscriber in subscribers:
        subscriber.start()
    await subscriptions_open(a.base, 1)
    await subscriptions_open(b.base, 2)
    clients = [asyncio.create_task(client_loop(n, (a, b)[n % 2].base)) for n in range(8)]
    async with httpx.AsyncClient(trust_env=False, timeout=5) as probe:
        try:
            await asyncio.sleep(2.5)
            assert {await ready_status(probe, a.base), await ready_status(probe, b.base)} == {200}

            await asyncio.to_thread(cluster.stop, "fast")
            down_at = time.monotonic()
            await subscribers[2].drop()  # this one reconnects (with after) while the database is down
            down_statuses = []
            while time.monotonic() - down_at < 3.0:
                down_statuses += [await ready_status(probe, a.base), await ready_status(probe, b.base)]
                await asyncio.sleep(0.2)
            down_seconds = time.monotonic() - down_at

            await asyncio.to_thread(cluster.start)
            up_at = time.monotonic()
            recovered = set()
            while len(recovered) < 2 and time.monotonic() - up_at < 15:
                for server in (a, b):
                    if await ready_status(probe, server.base) == 200:
                        recovered.add(server.base)
                await asyncio.sleep(0.1)
            recovery_seconds = time.monotonic() - up_at
            assert len(recovered) == 2, f"/ready did not come back within 15 s ({recovered})"
            await asyncio.sleep(2.5)  # load continues on the recovered service
        finally:
            stop_load.set()
            if not cluster.running:  # a failed assertion mid-outage must not leave the other tests without a database
                await asyncio.to_thread(cluster.start)
            await asyncio.wait_for(asyncio.gather(*clients), REQUEST_BOUND * 2 + 5)

        # The database agrees with every success the clients were told about.
        connection = await asyncpg.connect(cluster.dsn(database))
        try:
            head = await connection.fetchval("SELECT coalesce(max(seq), 0) FROM audit_log")
            rows = await connection.fetch("SELECT patch_id, id::text AS id, status FROM patches WHERE patch_id LIKE 'R-%'")
            actions = await connection.fetch("SELECT decision_id::text AS id, action FROM audit_log")
        finally:
            await connection.close()
        stored = {row["patch_id"]: row for row in rows}
        audited = {(row["id"], row["action"]) for row in actions}
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            report = (await client.post(f"{b.base}/graphql", json={"query": VERIFY}, headers={"Authorization": f"Bearer {VIEWER}"})).json()
        for subscriber in subscribers:
            await subscriber.wait_for(head, timeout=15)
            await subscriber.stop()

    after_recovery = [o for o in outcomes if o.at > up_at + recovery_seconds]
    codes = sorted({o.code for o in outcomes if not o.ok})
    failed = [o for o in outcomes if not o.ok]
    print(  # noqa: T201 - the measurements the report quotes
        f"\nrestart: {len(outcomes)} mutations, {sum(o.ok for o in outcomes)} ok ({len(submitted)} submits, {len(approved)} approvals), "
        f"{len(failed)} failed {codes}; /ready 503 for {down_seconds:.1f} s ({len(down_statuses)} probes); recovery {recovery_seconds:.2f} s; "
        f"slowest request {max(o.elapsed for o in outcomes):.2f} s; {sum(o.ok for o in after_recovery)} ok after recovery; head seq {head}; "
        f"reconnects {[s.reconnects for s in subscribers]}"
    )
    assert set(down_statuses) == {503}, down_statuses
    assert codes and set(codes) <= {"SERVICE_UNAVAILABLE"}, [o.body or o.code for o in failed][:5]
    for outcome in failed:
        assert_unavailable_shape(outcome)
    assert max(o.elapsed for o in outcomes) < REQUEST_BOUND
    assert sum(o.ok for o in after_recovery) >= 8, "the service must recover by itself"
    for patch_id, decision_id in submitted.items():
        assert patch_id in stored and stored[patch_id]["id"] == decision_id and (decision_id, "SUBMITTED") in audited
    for decision_id in approved:
        assert (decision_id, "APPROVED") in audited
    assert {row["id"] for row in rows if row["status"] == "APPROVED"} >= approved
    assert report["data"]["verifyAuditChain"] == {"valid": True, "entriesChecked": head, "firstBrokenSeq": None}, report
    assert subscribers[2].reconnects >= 1
    # The outage is in the logs as short warnings: no SQL, no traceback of a database error.
    for server in (a, b):
        log = server.log_path.read_text()
        assert "database unavailable" in log and "SELECT" not in log and "INSERT" not in log and "[SQL" not in log
    for subscriber in subscribers:
        assert subscriber.seqs == list(range(start + 1, head + 1)), (subscriber.name, _gaps(subscriber.seqs, start, head))


def _gaps(seqs: list[int], start: int, head: int) -> dict:
    expected = set(range(start + 1, head + 1))
    return {"missing": sorted(expected - set(seqs))[:20], "count": len(seqs), "expected": len(expected), "duplicates": len(seqs) - len(set(seqs))}


# --- b. the LISTEN connection killed again and again -------------------------------------------------------

async def test_listener_killed_repeatedly(cluster: PgCluster, servers: dict[str, tuple]):
    """Five kills in a row, each as soon as the listeners are back, while replica A keeps changing things:
    the subscriber on replica B sees every change, in order, without a gap or a duplicate. After each
    reconnect a change reaches B through the new LISTEN connection, not only through the hub's 2 s poll."""
    listeners = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hitl-listener' AND datname = $1"
    kill = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'hitl-listener' AND datname = $1"
    database, (a, b) = servers["replicas"]
    start = await head_seq(cluster, database)
    received: dict[int, float] = {}
    seqs: list[int] = []

    async def read(subscriber) -> None:  # noqa: ANN001
        while True:
            seq = (await subscriber.data(timeout=3600))["patchEvents"]["seq"]
            seqs.append(seq)
            received[seq] = time.monotonic()

    async def delivered(seq: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while seq not in received:
            assert time.monotonic() < deadline, f"seq {seq} not delivered within {timeout} s"
            await asyncio.sleep(0.01)

    submitted, reconnect_times, catch_up, latencies = 0, [], [], []

    async def submit() -> float:
        nonlocal submitted
        await submit_to(client, a.base, submitted)
        submitted += 1
        return time.monotonic()

    async with httpx.AsyncClient(trust_env=False, timeout=REQUEST_BOUND) as client, connect(b.base, token=VIEWER) as subscriber:
        await subscriber.subscribe(BRIEF_EVENTS, {"after": seq_cursor(start)})
        reader = asyncio.create_task(read(subscriber))
        admin = await asyncpg.connect(cluster.dsn())
        try:
            for _kill in range(5):
                for _ in range(6):
                    await submit()
                # Keep the listeners out while A commits (pooled connections go on working): nobody is
                # notified of these changes, B must read them from the audit log once it is back.
                await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
                try:
                    assert await admin.fetchval(kill, database) == 2  # both replicas' listeners
                    killed_at = time.monotonic()
                    for _ in range(4):
                        await submit()
                finally:
                    await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
                while await admin.fetchval(listeners, database) < 2:
                    assert time.monotonic() - killed_at < 10, "listeners did not reconnect within 10 s"
                    await asyncio.sleep(0.02)
                back_at = time.monotonic()
                reconnect_times.append(back_at - killed_at)
                await delivered(start + submitted)  # caught up after the reconnect, without a new change
                catch_up.append(max(received[start + submitted] - back_at, 0.0))
                sent_at = await submit()  # and notified through the new LISTEN connection
                await delivered(start + submitted)
                latencies.append(received[start + submitted] - sent_at)
            for _ in range(5):
                await submit()
            await delivered(start + submitted)
            await asyncio.sleep(0.5)  # nothing more may come
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await admin.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    print(  # noqa: T201
        f"\nlistener: 5 kills x 2 replicas, {submitted} mutations, listeners back after {[round(t, 2) for t in reconnect_times]} s, "
        f"caught up {[round(t, 3) for t in catch_up]} s after, next change delivered in {[round(t, 3) for t in latencies]} s"
    )
    assert seqs == list(range(start + 1, start + submitted + 1))
    # Medians: woken by the reconnect and by NOTIFY (milliseconds), not by the hub's 2 s poll (~1 s on average).
    assert sorted(catch_up)[2] < 0.5 and sorted(latencies)[2] < 0.5, (catch_up, latencies)


# --- c. SIGTERM with requests in flight ----------------------------------------------------------------------

async def test_sigterm_completes_in_flight_requests(cluster: PgCluster, servers: dict[str, tuple]):
    """Requests held in flight by a table lock taken from outside, plus clients in a loop, plus subscribers:
    on SIGTERM the sockets get 1001 at once, every request the server had accepted gets its real response
    (the lock is released after the signal), and the process exits cleanly within the grace period.
    The held requests are one submitPatch and three approvals, each waiting on the lock in a session of its own
    (concurrent submitPatch calls would share one: db.group_commit)."""
    database, (server,) = servers["sigterm"]
    base = server.base
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connect(base, token=VIEWER)) for _ in range(3)]
        for socket_client in sockets:
            await socket_client.subscribe(BRIEF_EVENTS)
        held = [await stack.enter_async_context(httpx.AsyncClient(trust_env=False, timeout=REQUEST_BOUND)) for _ in range(4)]
        looping = await stack.enter_async_context(httpx.AsyncClient(trust_env=False, timeout=REQUEST_BOUND))
        outcomes: list[Outcome] = []
        stop = asyncio.Event()

        async def loop(n: int) -> None:
            for i in itertools.count():
                if stop.is_set():
                    return
                outcome = await call(looping, base, "query", "{ pendingPatches(first: 5) { totalCount } }", {}, {"Authorization": f"Bearer {VIEWER}"})
                outcomes.append(outcome)
                await asyncio.sleep(0.02 * (n + i % 3) + (0.2 if not outcome.ok else 0))

        approvable = [await submit_call(held[0], base, f"T-{n}") for n in range(1, len(held))]
        assert all(outcome.ok for outcome in approvable), approvable
        lock = await asyncpg.connect(cluster.dsn(database))
        try:
            await lock.execute("BEGIN")
            await lock.execute("LOCK TABLE patches IN SHARE MODE")  # reads go on, writes wait
            slow = [asyncio.create_task(submit_call(held[0], base, "T-0"))] + [
                asyncio.create_task(approve_call(client, base, outcome.body["data"]["submitPatch"]["patch"]["id"]))
                for client, outcome in zip(held[1:], approvable, strict=True)
            ]
            loopers = [asyncio.create_task(loop(n)) for n in range(3)]
            deadline = time.monotonic() + 10
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'hitl-patch-service' AND wait_event_type = 'Lock'"
            # (asked outside the locking transaction: pg_stat_activity is a snapshot per transaction)
            while await cluster.fetchval(waiting, database) < len(held):
                assert time.monotonic() < deadline, "the held requests never reached the database"
                await asyncio.sleep(0.05)
            signalled_at = time.monotonic()
            exit_code = asyncio.get_running_loop().run_in_executor(None, server.terminate)
            codes = []
            for socket_client in sockets:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await socket_client.next_payload(timeout=5)
                codes.append(closed.value.rcvd.code)
            closed_after = time.monotonic() - signalled_at
            await asyncio.sleep(1.0)  # the held requests are still in flight during shutdown
            assert not any(task.done() for task in slow)
            await lock.execute("COMMIT")
        finally:
            await lock.close()
        results = await asyncio.wait_for(asyncio.gather(*slow), REQUEST_BOUND)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loopers), REQUEST_BOUND)
        status = await asyncio.wait_for(exit_code, 15)
        exited_after = time.monotonic() - signalled_at
    log = server.log_path.read_text()
    before = [o for o in outcomes if o.at < signalled_at]
    after = [o for o in outcomes if o.at >= signalled_at]
    print(  # noqa: T201
        f"\nsigterm: {len(results)} held mutations {[r.status for r in results]}, {len(outcomes)} looping queries "
        f"({sum(o.ok for o in outcomes)} ok; after the signal: {sorted({o.code for o in after if not o.ok} - {None})}), "
        f"ws close codes {codes} after {closed_after:.2f} s, exit {status} after {exited_after:.2f} s"
    )
    assert codes == [1001] * len(sockets) and closed_after < 2
    assert all(r.ok and r.status == 200 for r in results), results
    assert all(o.ok for o in before), [o for o in before if not o.ok][:3]
    # After the signal a new request is refused at connect (or finds its idle keep-alive connection
    # closed); none gets an error response or hangs.
    assert all(o.ok or (o.code or "").startswith("TRANSPORT") for o in after)
    assert status in (0, -15) and exited_after < 10 and "Application shutdown complete" in log
    connection = await asyncpg.connect(cluster.dsn(database))
    try:
        stored = await connection.fetch("SELECT patch_id, status FROM patches WHERE patch_id LIKE 'T-%' ORDER BY patch_id")
    finally:
        await connection.close()
    assert [tuple(row) for row in stored] == [("T-0", "PENDING")] + [(f"T-{n}", "APPROVED") for n in range(1, len(held))]


# --- d. the connection pool held busy ---------------------------------------------------------------------------

async def test_pool_exhaustion_is_bounded_and_coded(cluster: PgCluster, servers: dict[str, tuple]):
    """Pool of 2; an outside transaction locks `patches`, so the two connections block on it. The other
    requests wait at most HITL_DB_POOL_TIMEOUT_SECONDS and get SERVICE_UNAVAILABLE (POOL_EXHAUSTED, HTTP 503);
    the blocked ones succeed once the lock goes within the statement timeout, or get STATEMENT_TIMEOUT past
    it. Nothing waits longer than pool timeout + statement timeout, and the pool is whole afterwards."""
    pool_timeout, statement_timeout = POOL_TIMEOUT, STATEMENT_TIMEOUT
    query = "{ pendingPatches(first: 5) { totalCount } }"
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    bound = pool_timeout + statement_timeout + 2.0
    database, (server,) = servers["pool"]
    base = server.base
    async with httpx.AsyncClient(trust_env=False, timeout=REQUEST_BOUND, limits=httpx.Limits(max_connections=50)) as client:
        assert (await submit_call(client, base, "D-0")).ok

        async def burst(hold: float) -> tuple[list[Outcome], list[int]]:
            lock = await asyncpg.connect(cluster.dsn(database))
            try:
                await lock.execute("BEGIN")
                await lock.execute("LOCK TABLE patches IN ACCESS EXCLUSIVE MODE")
                requests = [asyncio.create_task(call(client, base, "query", query, {}, viewer)) for _ in range(6)]
                requests += [asyncio.create_task(submit_call(client, base, f"D-{uuid.uuid4().hex[:8]}")) for _ in range(4)]
                await asyncio.sleep(0.5)
                ready = asyncio.create_task(ready_status(client, base))  # answers within its bound, whatever the pool
                await asyncio.sleep(hold - 0.5)
                await lock.execute("COMMIT")
            finally:
                await lock.close()
            return await asyncio.wait_for(asyncio.gather(*requests), REQUEST_BOUND), [await ready]

        released, ready_released = await burst(hold=2.5)  # within the statement timeout
        timed_out, ready_timed_out = await burst(hold=statement_timeout + 1.5)  # past it
        after = [await call(client, base, "query", query, {}, viewer) for _ in range(10)]
        after.append(await submit_call(client, base, "D-after"))
        ready_after = await ready_status(client, base)

    def summary(outcomes: list[Outcome]) -> str:
        return ", ".join(
            f"{code or 'ok'} x{len(group)} ({min(o.elapsed for o in group):.1f}-{max(o.elapsed for o in group):.1f} s)"
            for code in sorted({o.code or "" for o in outcomes})
            for group in [[o for o in outcomes if (o.code or "") == code]]
        )

    reasons = lambda outcomes: sorted({o.body["errors"][0]["extensions"]["reason"] for o in outcomes if not o.ok})  # noqa: E731
    print(  # noqa: T201
        f"\npool: lock released in time: {summary(released)} {reasons(released)}; /ready {ready_released}; "
        f"lock held past statement timeout: {summary(timed_out)} {reasons(timed_out)}; /ready {ready_timed_out}; after: {summary(after)}"
    )
    for outcomes in (released, timed_out):
        assert all(o.ok or o.code == "SERVICE_UNAVAILABLE" for o in outcomes), [o.body for o in outcomes if not o.ok]
        assert max(o.elapsed for o in outcomes) < bound
        for outcome in outcomes:
            if not outcome.ok:
                assert_unavailable_shape(outcome)
    assert "POOL_EXHAUSTED" in reasons(released) and any(o.ok for o in released)
    assert all(o.elapsed < pool_timeout + 1.0 for o in released if not o.ok)
    assert "STATEMENT_TIMEOUT" in reasons(timed_out)
    assert all(o.ok for o in after) and ready_after == 200
