"""Audit integrity on PostgreSQL: the application's role cannot change the audit log, and a row a
superuser alters behind the triggers' back is pinpointed by `verifyAuditChain`."""

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from db.services.audit import entry_hash
from graphql_api.cli import app as cli
from tests.api.conftest import API_KEY, settings_for, start_server, token
from tests.pg import pg_admin
from tests.processes import ROOT, serving

pytestmark = [pytest.mark.hardening, pytest.mark.postgres_only]

SUBMIT = """mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { id } } }"""
VERIFY = "{ verifyAuditChain { valid entriesChecked firstBrokenSeq } }"
REVIEWER = token("rita", "REVIEWER")
LEAD = token("lena", "LEAD")
ADMIN = token("adam", "ADMIN")


def _dsn(database_url: str, user: str | None = None) -> str:
    url = make_url(database_url).set(drivername="postgresql")
    return url.set(username=user).render_as_string(hide_password=False) if user else url.render_as_string(hide_password=False)


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HITL_DATABASE_URL": database_url}
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


async def pg_admin_on(database_url: str, statement: str) -> None:
    connection = await asyncpg.connect(_dsn(database_url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
async def app_role(pg_database_url: str) -> AsyncIterator[str]:
    """A login role for the service that does not own the tables (they were migrated as `postgres`)."""
    role = f"hitl_app_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield role
    finally:
        await pg_admin_on(pg_database_url, f'REASSIGN OWNED BY "{role}" TO postgres; DROP OWNED BY "{role}"')
        await pg_admin(f'DROP ROLE IF EXISTS "{role}"')


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
