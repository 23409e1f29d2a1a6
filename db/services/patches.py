"""Reading patches and the one way every patch change is recorded (version bump + audit row)."""

import functools
import uuid
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import Insert, Table, Update, bindparam, insert, inspect, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import FINAL_STATUS_VALUES, PatchStatus
from db.models import Approval, Patch, column_values
from db.services import audit
from db.services.actor import Actor
from db.services.errors import BadUserInput, Conflict, NotFound
from db.services.validation import LIMITS, text_field
from db.types import utcnow


def parse_id(value: str | uuid.UUID, *, field: str = "id") -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadUserInput(f"{field} is not a valid id", field=field) from None


async def get(*, session: AsyncSession, patch_id: str | uuid.UUID) -> Patch | None:
    return await session.get(Patch, parse_id(patch_id))


async def get_by_patch_id(*, session: AsyncSession, upstream_id: str) -> Patch | None:
    # Checked like the submitted value: a NUL or a lone surrogate must not reach the database (PostgreSQL refuses both).
    upstream_id = text_field(upstream_id, field="patchId", max_length=LIMITS["identifier"])
    return (await session.exec(select(Patch).where(Patch.patch_id == upstream_id))).first()


async def get_many(*, session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Patch]:
    rows = (await session.exec(select(Patch).where(Patch.id.in_(list(ids))))).all()
    return {row.id: row for row in rows}


# The decision path's reads, built once: SQLAlchemy then reuses their cache keys and compiled forms.
_LOCK = select(Patch).where(Patch.id == bindparam("patch_key")).with_for_update().execution_options(populate_existing=True)
_APPROVERS = select(Approval.approver).where(Approval.patch_id == bindparam("patch_key"))


async def lock(*, session: AsyncSession, patch_id: str | uuid.UUID) -> Patch:
    """Load the latest committed row and hold it until commit (PostgreSQL row lock; SQLite writes are serialized).

    The patch comes back detached from the session: its changes are written by `record` or `save`, never by a
    flush (which would cost a unit-of-work pass over it on every later query of the transaction)."""
    patch = (await session.exec(_LOCK, params={"patch_key": parse_id(patch_id)})).first()
    if patch is None:
        raise NotFound(f"patch {patch_id} not found")
    session.expunge(patch)
    return patch


def conflict(patch: Patch, message: str) -> Conflict:
    return Conflict(message, current_status=patch.status, current_version=patch.version)


def require_open(patch: Patch, what: str) -> None:
    if patch.status in FINAL_STATUS_VALUES:
        raise conflict(patch, f"cannot {what}: patch is {patch.status}")


def check_expected_version(patch: Patch, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != patch.version:
        raise conflict(patch, f"patch changed: expected version {expected_version}, current version {patch.version}")


async def record(
    *, session: AsyncSession, patch: Patch, action: str, actor: Actor, details: dict, inserts: Sequence[SQLModel] = ()
) -> None:
    """Persist a change to `patch`, and the new rows `inserts` that belong to it, together with exactly one
    audit entry. The caller holds the patch's row lock (`lock`, or a patch it inserted itself)."""
    patch.version += 1
    patch.updated_at = utcnow()
    await audit.append(
        session=session,
        decision_id=patch.id,
        action=action,
        actor=actor,
        details={"patchId": patch.patch_id, "status": patch.status, "version": patch.version, **details},
        writes=[_update_write(patch, _take_changes(patch)), *map(_insert_write, inserts)],
    )


class Change(NamedTuple):
    """A recorded patch change not yet written: its writes and its audit entry (`record_many`)."""

    writes: list[audit.Write]
    entry: audit.Entry


def prepare(*, patch: Patch, action: str, actor: Actor, details: dict, inserts: Sequence[SQLModel] = ()) -> Change:
    """What `record` writes for this change, for `record_many`: the version bump, the patch's changed columns and
    the change's new rows, and its audit entry."""
    patch.version += 1
    patch.updated_at = utcnow()
    details = {"patchId": patch.patch_id, "status": patch.status, "version": patch.version, **details}
    writes = [_update_write(patch, _take_changes(patch)), *map(_insert_write, inserts)]
    return Change(writes, audit.Entry(patch.id, action, actor, details))


async def record_many(*, session: AsyncSession, changes: Sequence[Change], before: Sequence[audit.Entry] = ()) -> None:
    """Write many patch changes (rows locked by the caller) and their audit entries, in order: writes of one shape
    go as one executemany, the entries (after the entries `before`, e.g. the SUBMITTED ones of new patches) as one
    `audit.append_many`."""
    batches: dict[object, list[dict]] = {}
    for change in changes:
        for write in change.writes:
            batches.setdefault(write.statement, []).append(write.params)
    connection = await session.connection()
    for statement, params in batches.items():
        await connection.execute(statement, params)
    await audit.append_many(session=session, entries=[*before, *(change.entry for change in changes)])


async def insert_many(*, session: AsyncSession, rows: Sequence[Patch]) -> set[str]:
    """INSERT new patches with distinct patchIds in one statement, skipping those whose patchId exists (ON CONFLICT DO
    NOTHING: concurrent duplicates create exactly one row); returns the patchIds inserted. Their columns then count as
    written, so a later `record` of one in the transaction writes only what changed. Callers pass them in patchId
    order, so two batches that overlap wait on each other in one order (no deadlock)."""
    if not rows:
        return set()
    statement = _insert_unless_exists(session.bind.dialect.name)
    values = [column_values(row) for row in rows]
    inserted = set((await (await session.connection()).execute(statement, values)).scalars())
    for row, row_values in zip(rows, values, strict=True):
        if row.patch_id in inserted:
            _mark_written(row, row_values)
    return inserted


def _mark_written(row: SQLModel, values: dict) -> None:
    """The inserted values count as written: a later `record` of this row in the transaction writes only what
    changed after the INSERT, as for a patch from `lock`."""
    for key in list(inspect(row).committed_state):  # the columns set since the row was built (all of them for model(...))
        if key in values:
            set_committed_value(row, key, values[key])


async def get_by_patch_ids(*, session: AsyncSession, upstream_ids: Sequence[str]) -> dict[str, Patch]:
    if not upstream_ids:
        return {}
    rows = (await session.exec(select(Patch).where(Patch.patch_id.in_(list(upstream_ids))))).all()
    return {row.patch_id: row for row in rows}


def _take_changes(patch: Patch) -> dict:
    """The columns changed on `patch` since it was loaded or last written, marked as written: the caller writes
    them, and the next write of this patch leaves them out."""
    state = inspect(patch)
    unchanged = state.unmodified
    changes = {key: getattr(patch, key) for key in state.mapper.column_attrs.keys() if key not in unchanged}
    for key, value in changes.items():
        set_committed_value(patch, key, value)
    return changes


def _update_write(patch: Patch, changes: dict) -> audit.Write:
    params = {f"patch_{key}": value for key, value in changes.items()}
    params["patch_key"] = patch.id
    return audit.Write(_update_statement(tuple(changes)), params)


def _insert_write(row: SQLModel) -> audit.Write:
    table = row.__table__
    return audit.Write(_insert_statement(table), {f"{table.name}_{name}": value for name, value in column_values(row).items()})


@functools.cache
def _insert_unless_exists(dialect: str) -> Insert:
    """INSERT … ON CONFLICT (patch_id) DO NOTHING RETURNING patch_id, built once: the row's values go in as
    parameters, so the statement is not rebuilt (30 columns coerced) and its compiled form is cached."""
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return dialect_insert(Patch).on_conflict_do_nothing(index_elements=["patch_id"]).returning(Patch.patch_id)


@functools.lru_cache(maxsize=256)  # one per shape of change: a handful in practice
def _update_statement(columns: tuple[str, ...]) -> Update:
    table = Patch.__table__
    return update(table).where(table.c.id == bindparam("patch_key")).values({name: bindparam(f"patch_{name}") for name in columns})


@functools.cache
def _insert_statement(table: Table) -> Insert:
    return insert(table).values({column.name: bindparam(f"{table.name}_{column.name}") for column in table.columns})


async def approvals_for(*, session: AsyncSession, patch_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Approval]]:
    rows = (
        await session.exec(select(Approval).where(Approval.patch_id.in_(list(patch_ids))).order_by(Approval.at, Approval.id))
    ).all()
    grouped: dict[uuid.UUID, list[Approval]] = {patch_id: [] for patch_id in patch_ids}
    for row in rows:
        grouped[row.patch_id].append(row)
    return grouped


async def approvers(*, session: AsyncSession, patch_id: uuid.UUID) -> list[str]:
    """Who has approved this patch so far (the decision path needs no Approval objects).

    A statement of its own, after `lock`: joined into the locking read, it would return the approvers of that
    read's snapshot, taken before the wait for the row lock, and miss the approval that released the lock
    (tests/db/test_concurrency.py::test_concurrent_distinct_approvers_on_critical)."""
    return list((await (await session.connection()).execute(_APPROVERS, {"patch_key": patch_id})).scalars())


def is_open(patch: Patch) -> bool:
    return patch.status in (PatchStatus.PENDING.value, PatchStatus.ESCALATED.value)
