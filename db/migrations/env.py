import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import db.models  # noqa: F401 - registers the tables on SQLModel.metadata

target_metadata = SQLModel.metadata


def _include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001
    # Never propose dropping objects this project does not own.
    return not (reflected and compare_to is None)


# Replicas starting together (init containers) migrate one at a time.
MIGRATION_LOCK_KEY = 0x48_49_54_4D  # "HITM"


def _run(connection) -> None:  # noqa: ANN001
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_lock(:key)").bindparams(key=MIGRATION_LOCK_KEY))
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(:key)").bindparams(key=MIGRATION_LOCK_KEY))


async def _run_async() -> None:
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url"))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
