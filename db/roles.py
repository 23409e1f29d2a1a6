"""Least privilege for the service's own PostgreSQL role.

The triggers refuse UPDATE/DELETE/TRUNCATE on the audit log to everyone, but a table's owner may
disable its triggers. Run migrations as the owner and the service as a separate role granted only
what it uses: it deletes nothing but folded count rows, only appends to the audit log, and only reads the
migration version.
"""

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import db.models  # noqa: F401 - registers the tables on SQLModel.metadata

DEFAULT_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE"
# patch_status_deltas: the triggers append as the acting role; folding them deletes (status_counts.compact).
TABLE_PRIVILEGES = {"audit_log": "SELECT, INSERT", "alembic_version": "SELECT", "patch_status_deltas": "SELECT, INSERT, DELETE"}


class RoleProblem(ValueError):
    """The role cannot be made a least-privilege application role."""


def table_privileges() -> dict[str, str]:
    tables = sorted({*SQLModel.metadata.tables, *TABLE_PRIVILEGES})
    return {table: TABLE_PRIVILEGES.get(table, DEFAULT_TABLE_PRIVILEGES) for table in tables}


async def grant_application_role(database_url: str, role: str) -> dict[str, str]:
    """Reset `role`'s privileges on this database's tables to exactly what the service needs."""
    if make_url(database_url).get_backend_name() != "postgresql":
        raise RoleProblem("only PostgreSQL has roles: the embedded SQLite database needs no grants")
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
