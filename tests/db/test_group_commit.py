"""Group commit of submissions (db.group_commit with db.services.submission.write), on SQLite and PostgreSQL:
concurrent callers share transactions, each gets its own item's outcome, a failing item fails alone."""

import asyncio

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from db.engine import DATABASE_UNAVAILABLE, POOL_EXHAUSTED, Database, unavailable_reason
from db.group_commit import GroupCommit
from db.models import AuditEntry, Patch
from db.services import audit, submission
from tests.support.factories import POLICY, SERVICE, patch_data


class RecordingWrite:
    """submission.write, recording the size of every group it is given."""

    def __init__(self) -> None:
        self.groups: list[int] = []

    async def __call__(self, session, items):  # noqa: ANN001, ANN204
        self.groups.append(len(items))
        return await submission.write(session=session, items=items)


async def _prepared(**overrides) -> submission.Prepared:  # noqa: ANN003
    return await submission.prepare(actor=SERVICE, data=patch_data(**overrides), policy=POLICY)


async def _counts(db) -> tuple[int, int]:
    async with db.read() as session:
        return (
            (await session.exec(select(func.count()).select_from(Patch))).one(),
            (await session.exec(select(func.count()).select_from(AuditEntry))).one(),
        )


async def test_concurrent_submissions_share_transactions_and_each_gets_its_own_patch(database):
    write = RecordingWrite()
    commit = GroupCommit(database, write, max_items=8)
    items = [await _prepared() for _ in range(25)]
    twin = await _prepared(patch_id=items[3].row.patch_id)  # the same patch from another caller, in the same group
    results = await asyncio.gather(*(commit.submit(item) for item in [*items, twin]))
    assert write.groups == [8, 8, 8, 2]  # arrived together: written max_items at a time
    assert [row.patch_id for row, _ in results] == [item.row.patch_id for item in [*items, twin]]
    assert [created for _, created in results] == [True] * 25 + [False]
    assert results[25][0].id == results[3][0].id
    assert await _counts(database) == (25, 25)
    alone = await commit.submit(await _prepared())
    assert alone[1] and write.groups[-1] == 1  # nobody else waiting: written at once, alone
    async with database.read() as session:
        assert (await audit.verify_chain(session=session)).valid


async def test_items_arriving_during_a_write_form_the_next_group(database):
    write = RecordingWrite()
    commit = GroupCommit(database, write)
    first = asyncio.create_task(commit.submit(await _prepared()))
    await asyncio.sleep(0)  # the writer has taken the first item
    later = [await _prepared() for _ in range(5)]
    results = await asyncio.gather(first, *(commit.submit(item) for item in later))
    assert write.groups == [1, 5] and all(created for _, created in results)


async def test_a_failing_item_fails_alone_and_the_others_are_written(database):
    write = RecordingWrite()
    commit = GroupCommit(database, write)
    items = [await _prepared(), await _prepared(), await _prepared()]
    items[1].row.package_name = None  # past validation: the database refuses the row (NOT NULL)
    outcomes = await asyncio.gather(*(commit.submit(item) for item in items), return_exceptions=True)
    assert write.groups == [3, 1, 1, 1]  # the group failed: each item written again on its own
    assert isinstance(outcomes[1], IntegrityError)
    assert outcomes[0][1] and outcomes[2][1]
    assert await _counts(database) == (2, 2)


async def test_an_unavailable_database_fails_the_group_at_once():
    down = Database.from_url("postgresql+asyncpg://postgres@127.0.0.1:9/hitl_nowhere", pool_timeout=2)  # nothing listens
    attempts: list[object] = []
    event.listen(down.engine.sync_engine, "do_connect", lambda *_args: attempts.append(1))
    try:
        write = RecordingWrite()
        commit = GroupCommit(down, write)
        items = [await _prepared() for _ in range(4)]
        outcomes = await asyncio.gather(*(commit.submit(item) for item in items), return_exceptions=True)
    finally:
        await down.dispose()
    assert all(unavailable_reason(outcome) == DATABASE_UNAVAILABLE for outcome in outcomes), outcomes
    assert len(attempts) == 1 and write.groups == [4]  # one attempt for the group: not retried item by item


async def test_a_caller_that_gives_up_leaves_its_item_and_the_others_written(database):
    commit = GroupCommit(database, RecordingWrite())
    items = [await _prepared() for _ in range(4)]
    tasks = [asyncio.create_task(commit.submit(item)) for item in items]
    await asyncio.sleep(0)
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert all(outcome[1] for k, outcome in enumerate(done) if k != 1)
    await commit.wait_idle()
    assert await _counts(database) == (4, 4)  # idempotent on patchId: a retry of the cancelled caller finds its patch
    again = await commit.submit(items[1])
    assert not again[1] and again[0].patch_id == items[1].row.patch_id


async def test_a_call_that_waited_past_the_pools_bound_fails_as_if_no_connection_came(database):
    release = asyncio.Event()

    async def slow_write(session, items):  # noqa: ANN001, ANN202
        await release.wait()
        return await submission.write(session=session, items=items)

    commit = GroupCommit(database, slow_write, max_wait=0.2)
    first = asyncio.create_task(commit.submit(await _prepared()))
    await asyncio.sleep(0)
    late = asyncio.create_task(commit.submit(await _prepared()))
    await asyncio.sleep(0.3)
    release.set()
    assert (await first)[1]
    with pytest.raises(Exception) as waited:
        await late
    assert unavailable_reason(waited.value) == POOL_EXHAUSTED
    assert await _counts(database) == (1, 1)


@pytest.mark.postgres_only
async def test_two_replicas_submitting_the_same_patches_create_each_once(pg_database_url):
    replicas = [Database.from_url(pg_database_url) for _ in range(2)]
    try:
        commits = [GroupCommit(db, RecordingWrite()) for db in replicas]
        items = [await _prepared() for _ in range(30)]
        copies = [[await _prepared(patch_id=item.row.patch_id) for item in items] for _ in commits]
        results = await asyncio.gather(*(
            commit.submit(item) for k, (commit, own) in enumerate(zip(commits, copies, strict=True)) for item in (reversed(own) if k else own)
        ))
        assert sum(created for _, created in results) == 30
        assert await _counts(replicas[0]) == (30, 30)
    finally:
        for db in replicas:
            await db.dispose()
