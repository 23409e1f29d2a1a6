"""Least privilege for the service's own PostgreSQL role.

The triggers refuse UPDATE/DELETE/TRUNCATE on the audit log to everyone, but a table's owner may
disable its triggers. Run migrations as the owner and the service as a separate role granted only
what it uses: it deletes nothing but folded count rows and removed webhook endpoints, only appends to the audit log, and only reads the
migration version.
"""

import base64
import hashlib
import hmac
import secrets

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import db.models  # noqa: F401 - registers the tables on SQLModel.metadata

DEFAULT_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE"
# patch_status_deltas: the triggers append as the acting role; folding them deletes (status_counts.compact).
TABLE_PRIVILEGES = {
    "audit_log": "SELECT, INSERT",
    "audit_checkpoints": "SELECT, INSERT",
    "auto_approval_outcomes": "SELECT, INSERT",  # the guard's window only grows; a resume moves its start
    "alembic_version": "SELECT",
    "patch_status_deltas": "SELECT, INSERT, DELETE",
    # deleteWebhook removes an endpoint and its delivery log.
    "webhook_endpoints": "SELECT, INSERT, UPDATE, DELETE",
    "webhook_deliveries": "SELECT, INSERT, UPDATE, DELETE",
}


class RoleProblem(ValueError):
    """The role cannot be made a least-privilege application role."""


SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677, PostgreSQL's text form), computed here so
    that the password itself never travels in a statement (which the server might log). Printable ASCII only: for
    those SASLprep changes nothing, so the server derives the same keys from the password at login."""
    if not password or any(not " " <= char <= "~" for char in password):
        raise RoleProblem("the application role's password must be non-empty printable ASCII (e.g. openssl rand -base64 32)")
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _check_backend_and_name(database_url: str, role: str) -> None:
    if make_url(database_url).get_backend_name() != "postgresql":
        raise RoleProblem("only PostgreSQL has roles: the embedded SQLite database needs no grants")
    if not role or len(role.encode()) > 63:  # PostgreSQL would silently cut a longer name
        raise RoleProblem(f"role name {role!r} must be 1 to 63 bytes long")


async def ensure_login_role(database_url: str, role: str, password: str | None) -> bool:
    """Create `role` as a plain login role (no superuser, no role or database creation) with `password`, unless it
    exists; an existing role and its password are left as they are. Returns whether it was created."""
    _check_backend_and_name(database_url, role)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            if (await connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role})).first():
                return False
            if password is None:
                raise RoleProblem(f"role {role!r} does not exist and no password was given to create it (HITL_APP_ROLE_PASSWORD)")
            verifier = scram_sha256_verifier(password)
            quote = connection.dialect.identifier_preparer.quote
            try:
                await connection.exec_driver_sql(  # as it is: no bind parameters to look for in the verifier
                    f"CREATE ROLE {quote(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
                    f"PASSWORD '{verifier}'"  # base64 and "$:" only: nothing to escape
                )
            except sa_exc.DBAPIError as exc:
                if isinstance(exc.orig.__cause__, asyncpg.InsufficientPrivilegeError):
                    raise RoleProblem(
                        f"cannot create role {role!r}: the migrating role needs CREATEROLE, or create it yourself "
                        f"(CREATE ROLE {quote(role)} LOGIN PASSWORD '...')"
                    ) from None
                if isinstance(exc.orig.__cause__, asyncpg.DuplicateObjectError):
                    return False  # created meanwhile (another migration Job)
                raise
        return True
    finally:
        await engine.dispose()


def table_privileges() -> dict[str, str]:
    tables = sorted({*SQLModel.metadata.tables, *TABLE_PRIVILEGES})
    return {table: TABLE_PRIVILEGES.get(table, DEFAULT_TABLE_PRIVILEGES) for table in tables}


async def grant_application_role(database_url: str, role: str) -> dict[str, str]:
    """Reset `role`'s privileges on this database's tables to exactly what the service needs."""
    _check_backend_and_name(database_url, role)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            found = (
                await connection.execute(text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :role"), {"role": role})
            ).first()
            if found is None:
                raise RoleProblem(f"role {role!r} does not exist: CREATE ROLE it first")
            if found.rolsuper:
                raise RoleProblem(f"role {role!r} is a superuser: privileges and triggers do not bind it")
            owners = (
                await connection.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner = :role"),
                    {"role": role},
                )
            ).scalars().all()
            if owners:
                raise RoleProblem(f"role {role!r} owns {', '.join(sorted(owners))}: run migrations as another role")
            quote = connection.dialect.identifier_preparer.quote
            grantee = quote(role)
            privileges = table_privileges()
            await connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {grantee}"))
            for table, allowed in privileges.items():
                await connection.execute(text(f"REVOKE ALL ON TABLE {quote(table)} FROM {grantee}"))
                await connection.execute(text(f"GRANT {allowed} ON TABLE {quote(table)} TO {grantee}"))
            await connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {grantee}"))
        return privileges
    finally:
        await engine.dispose()
