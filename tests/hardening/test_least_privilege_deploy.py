"""The overlays' least-privilege split, run for real on a PostgreSQL that checks passwords: the migration Job's
container (command and environment exactly as the production overlay renders them) migrates as the tables' owner
and creates the application role; the Deployment's container (`hitl serve`, as rendered) serves as that role,
which cannot UPDATE, DELETE or TRUNCATE the audit log nor disable its triggers, while the API works."""

import asyncio
import base64
import hashlib
import secrets
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from db.roles import scram_sha256_verifier
from tests.support.deploy import build_overlay, clean_app_env, container_environment, find, find_all, free_port, pod_spec
from tests.support.pg import pg_admin
from tests.support.pgcluster import throwaway_cluster
from tests.support.processes import ROOT
from tests.support.server import API_KEY, CHECKPOINT_KEY, SECRET, patch_input, token

pytestmark = [pytest.mark.hardening, pytest.mark.postgres_only]

OWNER, OWNER_PASSWORD = "maximus", secrets.token_urlsafe(24)
APP, APP_PASSWORD = "hitl_app", secrets.token_urlsafe(32)
SECRETS = {
    "postgres-immunity-owner-secret": {"username": OWNER, "password": OWNER_PASSWORD},
    "postgres-immunity-secret": {"username": APP, "password": APP_PASSWORD},
    "hitl-api-keys": {"jwt-secret": SECRET, "internal-api-key": API_KEY, "audit-checkpoint-key": CHECKPOINT_KEY},
}
SUBMIT = "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { id } } }"
APPROVE = "mutation($id: ID!) { approvePatch(id: $id) { status } }"
VERIFY = "{ verifyAuditChain { valid entriesChecked } }"
# What an intruder holding the service's own credentials would try against the audit trail.
REFUSED = [
    ("UPDATE audit_log SET actor = 'mallory'", "permission denied for table audit_log"),
    ("DELETE FROM audit_log", "permission denied for table audit_log"),
    ("TRUNCATE audit_log", "permission denied for table audit_log"),
    ("ALTER TABLE audit_log DISABLE TRIGGER ALL", "must be owner of table audit_log"),
    ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete", "must be owner of table audit_log"),
    ("UPDATE audit_checkpoints SET seq = 1", "permission denied for table audit_checkpoints"),
    ("DELETE FROM audit_checkpoints", "permission denied for table audit_checkpoints"),
    ("SET session_replication_role = replica", 'permission denied to set parameter "session_replication_role"'),
]


def _hitl() -> str:
    return str(Path(sys.executable).parent / "hitl")


def _rendered(port: int) -> tuple[dict, dict, dict]:
    """(migration container, API container, ConfigMaps by name) of the production overlay, the database's address
    replaced by the test cluster's (what an operator sets in the overlay for their PostgreSQL)."""
    docs = build_overlay("production")
    configmaps = {cm["metadata"]["name"]: dict(cm["data"]) for cm in find_all(docs, "ConfigMap")}
    for data in configmaps.values():
        if "POSTGRES_HOST" in data:
            data.update(POSTGRES_HOST="127.0.0.1", POSTGRES_PORT=str(port))
    (migrate,) = pod_spec(find(docs, "Job"))["containers"]
    (api,) = pod_spec(find(docs, "Deployment"))["containers"]
    return migrate, api, configmaps


def _environment(container: dict, configmaps: dict, home: Path) -> dict[str, str]:
    return clean_app_env(**{**container_environment(container, configmaps=configmaps, secrets=SECRETS), "HOME": str(home)})


def _run_job(container: dict, configmaps: dict, home: Path) -> subprocess.CompletedProcess:
    command = [_hitl(), *container["command"][1:], *container.get("args", [])]
    return subprocess.run(command, env=_environment(container, configmaps, home), cwd=home, capture_output=True, text=True, timeout=180)


async def _gql(client: httpx.AsyncClient, base: str, query: str, variables: dict | None = None, **headers: str) -> dict:
    body = (await client.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, headers=headers)).json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
def cluster():  # noqa: ANN201
    with throwaway_cluster(password_logins=True) as pg:
        asyncio.run(pg.execute(
            f"CREATE ROLE {OWNER} LOGIN CREATEROLE PASSWORD '{OWNER_PASSWORD}'",
            f"CREATE DATABASE adaptive_immunity OWNER {OWNER}",
        ))
        yield pg


async def test_migrate_as_owner_serve_as_the_app_role_which_cannot_touch_the_audit_log(cluster, tmp_path):
    migrate, api, configmaps = _rendered(cluster.port)
    assert migrate["command"] == ["hitl", "db", "upgrade", "--grant-app-role"]

    job = _run_job(migrate, configmaps, tmp_path)
    assert job.returncode == 0, job.stdout + job.stderr
    assert f"created login role {APP}" in job.stdout and "audit_log: SELECT, INSERT" in job.stdout
    assert APP_PASSWORD not in job.stdout + job.stderr and OWNER_PASSWORD not in job.stdout + job.stderr
    again = _run_job(migrate, configmaps, tmp_path)  # the next release's Job: the role exists, grants are reset
    assert again.returncode == 0 and "created login role" not in again.stdout, again.stdout + again.stderr
    attributes = await cluster.fetchval(
        "SELECT row(rolsuper, rolcreaterole, rolcreatedb, rolbypassrls)::text FROM pg_roles WHERE rolname = $1", APP)
    assert attributes == "(f,f,f,f)"
    owned = await cluster.fetchval("SELECT count(*) FROM pg_tables WHERE tableowner = $1", APP, database="adaptive_immunity")
    assert owned == 0

    port = free_port()
    environment = _environment(api, configmaps, tmp_path)
    assert (environment["POSTGRES_USER"], environment["POSTGRES_PASSWORD"]) == (APP, APP_PASSWORD)
    command = [_hitl(), *api["command"][1:], *(a if a not in ("0.0.0.0", "8027") else {"0.0.0.0": "127.0.0.1", "8027": str(port)}[a] for a in api["args"])]
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
                deadline = time.monotonic() + 90
                while True:
                    assert server.poll() is None, log_path.read_text()[-3000:]
                    try:
                        if (await client.get(f"{base}/ready")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                    await asyncio.sleep(0.2)

                created = await _gql(client, base, SUBMIT, {"i": patch_input(1, severity="LOW")}, **{"X-API-Key": API_KEY})
                patch_id = created["submitPatch"]["patch"]["id"]
                approved = await _gql(client, base, APPROVE, {"id": patch_id}, Authorization=f"Bearer {token('rita', 'REVIEWER')}")
                assert approved["approvePatch"]["status"] == "APPROVED"

                with pytest.raises(asyncpg.InvalidPasswordError):
                    await asyncpg.connect(host="127.0.0.1", port=cluster.port, user=APP, password="not-it", database="adaptive_immunity")
                intruder = await asyncpg.connect(host="127.0.0.1", port=cluster.port, user=APP, password=APP_PASSWORD, database="adaptive_immunity")
                try:
                    assert await intruder.fetchval("SELECT current_user") == APP
                    for statement, refusal in REFUSED:
                        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=refusal):
                            await intruder.execute(statement)
                finally:
                    await intruder.close()

                # The service goes on as before.
                await _gql(client, base, SUBMIT, {"i": patch_input(2)}, **{"X-API-Key": API_KEY})
                report = (await _gql(client, base, VERIFY, Authorization=f"Bearer {token('vera', 'VIEWER')}"))["verifyAuditChain"]
                assert report == {"valid": True, "entriesChecked": 3}
                backends = await cluster.fetchval(
                    "SELECT array_agg(DISTINCT usename)::text FROM pg_stat_activity WHERE datname = 'adaptive_immunity'")
                assert backends == "{hitl_app}", f"the service connects only as the application role: {backends}"
        finally:
            server.terminate()
            server.wait(timeout=30)


async def test_the_scram_verifier_is_the_one_postgresql_computes():
    """The password never travels in CREATE ROLE: its SCRAM-SHA-256 verifier, computed here, must equal the one
    PostgreSQL derives itself from the same password and salt."""
    role = f"hitl_scram_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(32)
    await pg_admin(f"SET password_encryption = 'scram-sha-256'; CREATE ROLE {role} PASSWORD '{password}'")
    try:
        connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        try:
            stored = await connection.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
        finally:
            await connection.close()
    finally:
        await pg_admin(f"DROP ROLE {role}")
    iterations, salt = stored.split("$")[1].split(":")
    assert scram_sha256_verifier(password, salt=base64.b64decode(salt), iterations=int(iterations)) == stored
    assert scram_sha256_verifier(password) != scram_sha256_verifier(password), "a fresh salt every time"
    assert hashlib.sha256(password.encode()).hexdigest() not in scram_sha256_verifier(password)


def test_creating_the_role_needs_a_password_and_createrole(tmp_path):
    from tests.support.pg import pg_url

    suffix = secrets.token_hex(4)
    owner, database = f"hitl_owner_{suffix}", f"hitl_grant_{suffix}"
    asyncio.run(pg_admin(f"CREATE ROLE {owner} LOGIN", f"CREATE DATABASE {database} OWNER {owner}"))
    try:
        url = pg_url(database).replace("postgres@", f"{owner}@")
        environment = clean_app_env(HITL_DATABASE_URL=url, HITL_APP_ROLE=f"hitl_new_{suffix}")
        upgrade = subprocess.run([_hitl(), "db", "upgrade", "--grant-app-role"], env=environment, capture_output=True, text=True, timeout=180)
        assert upgrade.returncode == 2 and "no password was given to create it (HITL_APP_ROLE_PASSWORD)" in upgrade.stderr, upgrade.stderr
        environment["HITL_APP_ROLE_PASSWORD"] = secrets.token_urlsafe(24)
        refused = subprocess.run([_hitl(), "db", "grant-app-role", "--create"], env=environment, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and "needs CREATEROLE" in refused.stderr, refused.stderr
        assert environment["HITL_APP_ROLE_PASSWORD"] not in refused.stdout + refused.stderr
        no_role = subprocess.run([_hitl(), "db", "upgrade", "--grant-app-role"], env=clean_app_env(HITL_DATABASE_URL=url), capture_output=True, text=True, timeout=60)
        assert no_role.returncode == 2 and "HITL_APP_ROLE is not set" in no_role.stderr
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', f"DROP ROLE IF EXISTS {owner}"))
