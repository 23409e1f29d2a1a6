"""The trigger-kept patch counts per status equal a count over the table, whatever changed them."""

import asyncio
import os
from collections import Counter

import pytest
from alembic import command
from sqlalchemy import func, text
from sqlmodel import select

from db.enums import PatchStatus
from db.migrate import alembic_config, upgrade
from db.models import Patch, PatchStatusDelta
from db.services import decisions, queue, status_counts
from tests.support.databases import off_loop
from tests.support.factories import LEAD, REVIEWER, mixed_operations, submit
from tests.support.pg import pg_admin, pg_url


async def _counted(db) -> tuple[Counter, Counter]:
    """(what the deltas say, what the table says) per status."""
    async with db.read() as session:
        table = Counter(dict((await session.exec(select(Patch.status, func.count()).group_by(Patch.status))).all()))
        kept = Counter(
            {status: await status_counts.total(session=session, statuses=[status]) for status in PatchStatus}
        )
    return +kept, +table


async def test_counts_follow_every_kind_of_change_and_survive_compaction(database):
    await mixed_operations(database, 300)
    kept, table = await _counted(database)
    assert kept == table and sum(table.values()) > 50
    async with database.write() as session:
        folded = await status_counts.compact(session=session)
    assert folded > status_counts.COMPACT_ABOVE_ROWS
    async with database.read() as session:
        rows = (await session.exec(select(func.count()).select_from(PatchStatusDelta))).one()
        page = await queue.pending_page(session=session, first=5, now=_now())
        assert page.total_count == await queue.pending_count(session=session)
    assert rows == len(table)
    assert await _counted(database) == (kept, table)
    assert page.total_count == table["PENDING"] + table["ESCALATED"]


async def test_filtered_pages_still_count_their_own_set(database):
    for severity in ("LOW", "HIGH", "HIGH"):
        await submit(database, severity=severity)
    async with database.read() as session:
        page = await queue.pending_page(session=session, first=1, flt=queue.PendingFilter(severity=["HIGH"]), now=_now())
        whole = await queue.pending_page(session=session, first=1, flt=queue.PendingFilter(severity=[]), now=_now())
    assert (page.total_count, whole.total_count) == (2, 3)


@pytest.mark.postgres_only
async def test_bulk_statements_add_one_row_per_status_and_updates_without_a_status_change_none(pg_database):
    async with pg_database.engine.begin() as connection:
        before = (await connection.execute(text("SELECT count(*) FROM patch_status_deltas"))).scalar_one()
    patches = [await submit(pg_database) for _ in range(3)]
    async with pg_database.engine.begin() as connection:
        after_submits = (await connection.execute(text("SELECT count(*) FROM patch_status_deltas"))).scalar_one()
        await connection.execute(text("UPDATE patches SET version = version + 1"))  # touches every row, no status
        unchanged = (await connection.execute(text("SELECT count(*) FROM patch_status_deltas"))).scalar_one()
        await connection.execute(text("UPDATE patches SET status = 'CANCELLED'"))  # one statement, three rows
        cancelled = (await connection.execute(text("SELECT count(*) FROM patch_status_deltas"))).scalar_one()
    assert (after_submits - before, unchanged - after_submits, cancelled - unchanged) == (3, 0, 2)  # -3 PENDING, +3 CANCELLED
    kept, table = await _counted(pg_database)
    assert kept == table == Counter({"CANCELLED": len(patches)})


@pytest.mark.postgres_only
async def test_replicas_compacting_while_others_write_never_count_twice(pg_database):
    async def decide_some() -> None:
        for _ in range(15):
            patch = await submit(pg_database)
            async with pg_database.write() as session:
                await decisions.approve(session=session, actor=REVIEWER, patch_id=str(patch.id))
            await submit(pg_database)

    async def compact_often() -> None:
        for _ in range(30):
            async with pg_database.write() as session:
                await status_counts.compact(session=session)
            await asyncio.sleep(0)

    status_counts_floor = status_counts.COMPACT_ABOVE_ROWS
    status_counts.COMPACT_ABOVE_ROWS = 0  # fold on every call, to make the races likely
    try:
        await asyncio.gather(decide_some(), decide_some(), compact_often(), compact_often(), compact_often())
    finally:
        status_counts.COMPACT_ABOVE_ROWS = status_counts_floor
    kept, table = await _counted(pg_database)
    assert kept == table == Counter({"APPROVED": 30, "PENDING": 30})


@pytest.mark.postgres_only
async def test_migration_counts_the_patches_that_already_exist():
    name = f"hitl_counts_backfill_{os.getpid()}"
    await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    try:
        # Written by today's code, then taken back to the 0001 schema (no triggers, no counts), then upgraded.
        off_loop(upgrade, pg_url(name), "head")
        from db.engine import Database

        db = Database.from_url(pg_url(name))
        try:
            for _ in range(4):
                await submit(db)
            async with db.write() as session:
                await decisions.reject(session=session, actor=LEAD, patch_id=str((await submit(db)).id), reason="no")
        finally:
            await db.dispose()
        off_loop(command.downgrade, alembic_config(pg_url(name)), "0001")
        off_loop(upgrade, pg_url(name), "head")
        db = Database.from_url(pg_url(name))
        try:
            assert await _counted(db) == (Counter({"PENDING": 4, "REJECTED": 1}),) * 2
        finally:
            await db.dispose()
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _now():  # noqa: ANN202
    from db.types import utcnow

    return utcnow()
