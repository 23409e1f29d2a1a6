"""Audit integrity on PostgreSQL: the application's role cannot change the audit log, a row a superuser
alters behind the triggers' back is pinpointed by `verifyAuditChain`, and rows a superuser cuts from the head
are caught by the signed checkpoints the service logged (GraphQL and `hitl audit verify`)."""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from db.services.audit import entry_hash
from graphql_api.cli import app as cli
from tests.support.waiting import eventually, metric
from tests.support.server import API_KEY, CHECKPOINT_KEY, settings_for, start_server, token
from tests.support.pg import login_role, pg_admin_on
from tests.support.processes import ROOT, serving

pytestmark = [pytest.mark.hardening, pytest.mark.postgres_only]

SUBMIT = """mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { id } } }"""
VERIFY = "{ verifyAuditChain { valid entriesChecked firstBrokenSeq } }"
REVIEWER = token("rita", "REVIEWER")
LEAD = token("lena", "LEAD")
ADMIN = token("adam", "ADMIN")


def _dsn(database_url: str, user: str | None = None) -> str:
    url = make_url(database_url).set(drivername="postgresql")
    return url.set(username=user).render_as_string(hide_password=False) if user else url.render_as_string(hide_password=False)


def _cli(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HITL_DATABASE_URL": database_url, **env}
    return subprocess.run([sys.executable, "-m", "graphql_api.cli", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)


async def _gql(client: httpx.AsyncClient, base: str, query: str, variables: dict | None = None, **headers: str) -> dict:
    response = await client.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def _exercise(client: httpx.AsyncClient, base: str) -> None:
    """Every kind of write the service makes: submit, wargaming, comment, approve, escalate, reject, cancel, pause."""
    ids = []
    for n in range(4):
        data = await _gql(
            client, base, SUBMIT,
            {"i": {"patchId": f"AUD-{n}", "apvId": "apv", "packageName": "lib", "currentVersion": "1.0.0", "targetVersion": "1.0.1", "severity": "MEDIUM"}},
            **{"X-API-Key": API_KEY},
        )
        ids.append(data["submitPatch"]["patch"]["id"])
    wargaming = """mutation($id: ID!) { recordWargamingResult(id: $id, input: {phase1Success: true, phase2Success: true, validationPassed: true, executionTimeMs: 10}) { id } }"""
    await _gql(client, base, wargaming, {"id": ids[0]}, **{"X-API-Key": API_KEY})
    await _gql(client, base, """mutation($id: ID!) { addComment(id: $id, body: "checked") { id } }""", {"id": ids[0]}, Authorization=f"Bearer {REVIEWER}")
    await _gql(client, base, """mutation($id: ID!) { approvePatch(id: $id) { status } }""", {"id": ids[0]}, Authorization=f"Bearer {REVIEWER}")
    await _gql(client, base, """mutation($id: ID!) { escalatePatch(id: $id, reason: "lead") { status } }""", {"id": ids[1]}, Authorization=f"Bearer {REVIEWER}")
    await _gql(client, base, """mutation($id: ID!) { rejectPatch(id: $id, reason: "breaks") { status } }""", {"id": ids[1]}, Authorization=f"Bearer {LEAD}")
    await _gql(client, base, """mutation($id: ID!) { cancelPatch(id: $id, reason: "superseded") { status } }""", {"id": ids[2]}, **{"X-API-Key": API_KEY})
    await _gql(client, base, """mutation { setAutoApprovalPaused(paused: true, reason: "drill") { paused } }""", Authorization=f"Bearer {ADMIN}")


@pytest.fixture
async def app_role(pg_database_url: str) -> AsyncIterator[str]:
    async with login_role(pg_database_url) as role:
        yield role


# Each is something an intruder holding the service's credentials would try. Privileges refuse them
# before the append-only triggers (which also say insufficient_privilege) would have to.
REFUSED_TO_THE_APPLICATION = [
    ("UPDATE audit_log SET actor = 'mallory'", "permission denied for table audit_log"),
    ("DELETE FROM audit_log", "permission denied for table audit_log"),
    ("TRUNCATE audit_log", "permission denied for table audit_log"),
    ("ALTER TABLE audit_log DISABLE TRIGGER ALL", "must be owner of table audit_log"),
    ("DROP TRIGGER audit_log_no_update_delete ON audit_log", "must be owner of (relation|table) audit_log"),
    ("DROP TABLE audit_log", "must be owner of table audit_log"),
    ("SET session_replication_role = replica", 'permission denied to set parameter "session_replication_role"'),
    ("DELETE FROM patches", "permission denied for table patches"),
    ("UPDATE alembic_version SET version_num = '0000'", "permission denied for table alembic_version"),
]


async def test_the_application_role_runs_the_service_but_cannot_change_the_audit_log(pg_database_url, app_role, tmp_path):
    granted = _cli(pg_database_url, "db", "grant-app-role", app_role)
    assert granted.returncode == 0, granted.stderr
    assert "audit_log: SELECT, INSERT" in granted.stdout

    app_url = make_url(pg_database_url).set(username=app_role).render_as_string(hide_password=False)
    with serving(app_url, tmp_path) as (server,):
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            await _exercise(client, server.base)
            before = (await _gql(client, server.base, VERIFY, Authorization=f"Bearer {REVIEWER}"))["verifyAuditChain"]
            assert before["valid"] and before["entriesChecked"] == 11

            intruder = await asyncpg.connect(_dsn(pg_database_url, app_role))
            try:
                for statement, refusal in REFUSED_TO_THE_APPLICATION:
                    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=refusal):
                        await intruder.execute(statement)
            finally:
                await intruder.close()

            after = (await _gql(client, server.base, VERIFY, Authorization=f"Bearer {REVIEWER}"))["verifyAuditChain"]
            assert after == before


@pytest.mark.parametrize("forger_rehashes", [False, True], ids=["altered", "altered-and-rehashed"])
async def test_a_row_altered_by_a_superuser_is_pinpointed(pg_database_url, forger_rehashes):
    settings = settings_for(pg_database_url)
    server, task, base, _app = await start_server(settings)
    try:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            await _exercise(client, base)
            victim = 6
            superuser = await asyncpg.connect(_dsn(pg_database_url))
            try:
                async with superuser.transaction():
                    await superuser.execute("SET LOCAL session_replication_role = replica")  # past the triggers
                    await superuser.execute("""UPDATE audit_log SET actor = 'mallory' WHERE seq = $1""", victim)
                    if forger_rehashes:
                        row = await superuser.fetchrow("SELECT * FROM audit_log WHERE seq = $1", victim)
                        await superuser.execute("UPDATE audit_log SET hash = $1 WHERE seq = $2", entry_hash(row["prev_hash"], _entry(row)), victim)
            finally:
                await superuser.close()
            report = (await _gql(client, base, VERIFY, Authorization=f"Bearer {REVIEWER}"))["verifyAuditChain"]
    finally:
        server.should_exit = True
        await task
    # A rehashed row is consistent in itself; the next row's prevHash no longer matches it.
    broken = victim + 1 if forger_rehashes else victim
    assert report == {"valid": False, "entriesChecked": broken, "firstBrokenSeq": broken}


def _entry(row: asyncpg.Record):  # noqa: ANN202
    import json

    from db.models import AuditEntry

    details = row["details"]
    return AuditEntry(**{**dict(row), "details": json.loads(details) if isinstance(details, str) else details})


@pytest.mark.parametrize(
    ("who", "message"),
    [("postgres", "is a superuser"), ("no_such_role_x", "does not exist")],
)
def test_grant_app_role_refuses_roles_it_cannot_restrict(pg_database_url, who, message):
    result = CliRunner().invoke(cli, ["db", "grant-app-role", who], env={"HITL_DATABASE_URL": pg_database_url})
    assert result.exit_code == 2 and message in result.output


async def test_grant_app_role_refuses_the_tables_owner(pg_database_url, app_role):
    """An owner may disable the triggers, so it cannot be the restricted application role."""
    await pg_admin_on(pg_database_url, f'ALTER TABLE patches OWNER TO "{app_role}"')
    result = _cli(pg_database_url, "db", "grant-app-role", app_role)
    assert result.returncode == 2 and "owns patches: run migrations as another role" in result.stderr


def test_grant_app_role_explains_that_sqlite_has_no_roles(tmp_path):
    result = CliRunner().invoke(cli, ["db", "grant-app-role", "hitl"], env={"HITL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"})
    assert result.exit_code == 2 and "only PostgreSQL has roles" in result.output


# --- signed checkpoints, end to end ----------------------------------------------------------------------

CHECKPOINTED = "query($c: [AuditCheckpointInput!]) { verifyAuditChain(checkpoints: $c) { valid entriesChecked firstBrokenSeq truncated } }"


def _checkpoint_lines(*logs: Path) -> list[dict]:
    lines = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if '"audit_checkpoint"' in line:
                lines.append(json.loads(line))
    return lines


async def _checkpoint_at_head(log: Path, head: int, bound: float = 30) -> dict:
    """The first logged checkpoint that pins `head` (the writer runs every HITL_AUDIT_CHECKPOINT_SECONDS)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        found = [line for line in _checkpoint_lines(log) if line["seq"] == head]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    pytest.fail(f"no checkpoint of seq {head} logged within {bound} s: {_checkpoint_lines(log)}")


async def test_logged_checkpoints_catch_rows_cut_from_the_head_and_refuse_forgeries(pg_database_url, tmp_path):
    with serving(pg_database_url, tmp_path, HITL_AUDIT_CHECKPOINT_SECONDS="0.3", HITL_METRICS_REFRESH_SECONDS="0.5") as (server,):
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            await _exercise(client, server.base)  # 11 entries
            line = await _checkpoint_at_head(server.log_path, 11)
            assert set(line) == {"event", "seq", "hash", "at", "signature"}, line
            # The gauges are read in the background (HITL_METRICS_REFRESH_SECONDS): wait for a read after the 11th entry.
            await eventually(lambda: _head_seq_is(client, server.base, 11), what="hitl_audit_head_seq 11 on /metrics")
            assert CHECKPOINT_KEY not in server.log_path.read_text(), "the key is never logged"

            # The log line, pasted as it is.
            whole = await _gql(client, server.base, CHECKPOINTED, {"c": [line]}, Authorization=f"Bearer {REVIEWER}")
            assert whole["verifyAuditChain"] == {"valid": True, "entriesChecked": 11, "firstBrokenSeq": None, "truncated": False}

            superuser = await asyncpg.connect(_dsn(pg_database_url))
            try:
                async with superuser.transaction():
                    await superuser.execute("SET LOCAL session_replication_role = replica")  # past the triggers
                    await superuser.execute("DELETE FROM audit_log WHERE seq > 8")
            finally:
                await superuser.close()
            alone = await _gql(client, server.base, CHECKPOINTED, {"c": None}, Authorization=f"Bearer {REVIEWER}")
            assert alone["verifyAuditChain"]["valid"] is True, "without a checkpoint the shorter chain looks whole"
            cut = await _gql(client, server.base, CHECKPOINTED, {"c": [line]}, Authorization=f"Bearer {REVIEWER}")
            assert cut["verifyAuditChain"] == {"valid": False, "entriesChecked": 8, "firstBrokenSeq": 9, "truncated": True}

            forged = {**line, "seq": 8, "hash": "0" * 64}  # "the head was always 8": not signed by the service
            response = await client.post(
                f"{server.base}/graphql", json={"query": CHECKPOINTED, "variables": {"c": [line, forged]}}, headers={"Authorization": f"Bearer {REVIEWER}"}
            )
            (error,) = response.json()["errors"]
            assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "checkpoints"} and "checkpoints[1]" in error["message"], error

    checkpoints = tmp_path / "checkpoints.jsonl"
    checkpoints.write_text("".join(json.dumps(line) + "\n" for line in _checkpoint_lines(server.log_path)))
    verified = _cli(pg_database_url, "audit", "verify", "--checkpoints", str(checkpoints), HITL_AUDIT_CHECKPOINT_KEY=CHECKPOINT_KEY)
    assert verified.returncode == 1, verified.stderr
    assert json.loads(verified.stdout) | {"checkpoints": None} == {
        "valid": False, "entriesChecked": 8, "firstBrokenSeq": 9, "truncated": True, "checkpoints": None}
    checkpoints.write_text(json.dumps(forged) + "\n")
    refused = _cli(pg_database_url, "audit", "verify", "--checkpoints", str(checkpoints), HITL_AUDIT_CHECKPOINT_KEY=CHECKPOINT_KEY)
    assert refused.returncode == 2 and "line 1: the signature does not verify" in refused.stderr, refused.stderr
    wrong_key = _cli(pg_database_url, "audit", "verify", "--checkpoints", str(checkpoints), HITL_AUDIT_CHECKPOINT_KEY="k" * 40)
    assert wrong_key.returncode == 2


async def test_replicas_write_about_one_checkpoint_per_interval_between_them(pg_database_url, tmp_path):
    interval = 0.5
    with serving(pg_database_url, tmp_path, count=2, HITL_AUDIT_CHECKPOINT_SECONDS=str(interval)) as servers:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            await _exercise(client, servers[0].base)
            connection = await asyncpg.connect(_dsn(pg_database_url))
            try:
                deadline = time.monotonic() + 30
                while await connection.fetchval("SELECT count(*) FROM audit_checkpoints") < 6 and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                stored = await connection.fetch("SELECT seq, at, signature FROM audit_checkpoints ORDER BY id")
            finally:
                await connection.close()
        logs = [server.log_path for server in servers]
    assert len(stored) >= 6
    gaps = [(later["at"] - earlier["at"]).total_seconds() for earlier, later in zip(stored, stored[1:])]
    assert min(gaps) >= interval * 0.9 - 1e-3, f"two checkpoints closer than the interval allows: {gaps}"
    logged = {line["signature"] for line in _checkpoint_lines(*logs)}
    assert {row["signature"] for row in stored} <= logged, "every stored checkpoint was also logged"
    writers = [log for log in logs if _checkpoint_lines(log)]
    assert writers, "some replica wrote them"


async def _head_seq_is(client: httpx.AsyncClient, base: str, seq: int) -> bool:
    return await metric(base, "hitl_audit_head_seq", client) == seq
