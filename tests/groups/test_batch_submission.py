"""submitPatches through the domain service, on SQLite and PostgreSQL: input order, idempotency, bad items."""

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from db.models import AuditEntry, Patch
from db.services import audit, batch_submission, groups
from db.services.errors import BadUserInput, Forbidden
from tests.support.factories import POLICY, REVIEWER, SERVICE, patch_data, submit
from tests.support.ml import trained_predictor


async def _submit_many(db, items, *, actor=SERVICE, model=None):
    async with db.write() as session:
        return await batch_submission.submit_many(session=session, actor=actor, items=items, policy=POLICY, model=model)


async def _counts(db) -> tuple[int, int]:
    async with db.read() as session:
        patches = (await session.exec(select(func.count()).select_from(Patch))).one()
        entries = (await session.exec(select(func.count()).select_from(AuditEntry))).one()
    return patches, entries


async def test_batch_in_input_order_and_idempotent(database):
    existing = await submit(database)
    items = [patch_data() for _ in range(5)]
    repeated = replace(items[1])
    batch = [items[0], items[1], patch_data(patch_id=existing.patch_id), items[2], repeated, items[3], items[4]]
    results = await _submit_many(database, batch)
    assert [row.patch_id for row, _ in results] == [item.patch_id for item in batch]
    assert [created for _, created in results] == [True, True, False, True, False, True, True]
    assert results[2][0].id == existing.id and results[4][0].id == results[1][0].id
    assert await _counts(database) == (6, 6)
    again = await _submit_many(database, batch)
    assert [created for _, created in again] == [False] * 7
    assert [row.id for row, _ in again] == [row.id for row, _ in results]
    assert await _counts(database) == (6, 6)
    async with database.read() as session:
        assert (await audit.verify_chain(session=session)).valid
        page = await groups.group_page(session=session, now=results[0][0].created_at)
    assert page.total_count == 6  # each factory patch has its own CVE


async def test_bad_item_names_its_index_and_writes_nothing(database):
    before = await _counts(database)
    items = [patch_data(), patch_data(), patch_data(cve_id="CVE-nope"), patch_data()]
    with pytest.raises(BadUserInput) as caught:
        await _submit_many(database, items)
    assert caught.value.extensions == {"field": "cveId", "index": 2}
    assert "inputs[2]" in caught.value.message
    with pytest.raises(BadUserInput) as caught:
        await _submit_many(database, [patch_data() for _ in range(batch_submission.MAX_BATCH + 1)])
    assert caught.value.field == "inputs"
    with pytest.raises(BadUserInput):
        await _submit_many(database, [])
    with pytest.raises(Forbidden):
        await _submit_many(database, [patch_data()], actor=REVIEWER)
    assert await _counts(database) == before


async def test_batch_predictions_equal_single_predictions(database):
    predictor = trained_predictor()
    items = [patch_data(severity=severity, affected_systems=[f"s{i}" for i in range(n)]) for n, severity in enumerate(["LOW", "HIGH", "CRITICAL"], 1)]
    results = await _submit_many(database, items, model=predictor)
    for row, created in results:
        single = predictor.predict(row)
        assert created and row.ml_prediction["source"] == "model"
        assert row.ml_prediction["confidence"] == pytest.approx(single["confidence"], abs=1e-6)
        assert [v["feature"] for v in row.ml_prediction["shapValues"][:5]] == [v["feature"] for v in single["shapValues"][:5]]


async def test_concurrent_overlapping_batches(pg_database):
    items = [patch_data() for _ in range(60)]

    async def send(chunk):
        return await _submit_many(pg_database, chunk)

    results = await asyncio.gather(send(items[:40]), send(items[20:]), send(items[::-1]))
    created = [row.patch_id for result in results for row, was_created in result if was_created]
    assert sorted(created) == sorted(item.patch_id for item in items)
    assert await _counts(pg_database) == (60, 60)


async def test_batch_auto_approval_and_the_pause(database):
    from db.services import auto_approval
    from tests.support.factories import ADMIN, confident_prediction, passing_wargaming

    eligible = [patch_data(ml_prediction=confident_prediction(), wargaming=passing_wargaming()) for _ in range(3)]
    queued = patch_data()
    results = await _submit_many(database, [eligible[0], queued, *eligible[1:]])
    assert [row.status for row, _ in results] == ["AUTO_APPROVED", "PENDING", "AUTO_APPROVED", "AUTO_APPROVED"]
    async with database.read() as session:
        entries = (await session.exec(select(AuditEntry).order_by(AuditEntry.seq))).all()
        assert [entry.action for entry in entries] == ["SUBMITTED"] * 4 + ["AUTO_APPROVED"] * 3
        # Each SUBMITTED entry records the patch as it was submitted, before its auto-approval.
        assert {(entry.details["status"], entry.details["version"]) for entry in entries[:4]} == {("PENDING", 1)}
        assert (await audit.verify_chain(session=session)).valid
        stored = {row.patch_id: row for row in (await session.exec(select(Patch))).all()}
    assert stored[eligible[0].patch_id].version == 2 and stored[eligible[0].patch_id].decided_by == "system:auto-approval"
    async with database.write() as session:
        await auto_approval.set_paused(session=session, actor=ADMIN, paused=True, reason="incident")
    paused = await _submit_many(database, [patch_data(ml_prediction=confident_prediction(), wargaming=passing_wargaming())])
    assert paused[0][0].status == "PENDING"


def test_the_ids_of_a_batch_are_distinct_random_uuids():
    from db.services.submission import new_ids

    ids = new_ids(500)
    assert len(set(ids)) == 500
    assert all(id_.version == 4 and id_.variant == "specified in RFC 4122" for id_ in ids)
    assert set(ids).isdisjoint(new_ids(500))


async def _chain_lock_waiters(db) -> int:
    async with db.read() as session:
        statement = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                         "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        return (await session.exec(statement)).one()[0]


async def _until_chain_lock_waiters(db, count: int) -> None:
    for _ in range(200):
        if await _chain_lock_waiters(db) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {count} waiting on the audit chain lock")


@pytest.mark.postgres_only
async def test_a_batch_reads_the_pause_after_the_chain_lock_as_a_pause_writes_it(pg_database):
    """A pause queued on the audit chain's lock ahead of an auto-approving batch: the batch sees it (its patch stays
    PENDING) and neither deadlocks. Reading the pause row (a share lock) before taking the chain lock, the batch
    would hold the row the pause waits to update while waiting for the chain the pause holds: PostgreSQL then
    aborts one of them as a deadlock."""
    from db.services import auto_approval
    from tests.support.factories import ADMIN, confident_prediction, passing_wargaming

    async def pause():
        async with pg_database.write() as session:
            return await auto_approval.set_paused(session=session, actor=ADMIN, paused=True, reason="incident")

    item = patch_data(ml_prediction=confident_prediction(), wargaming=passing_wargaming())
    async with pg_database.write() as session:
        await audit.lock_chain(session=session)  # another transaction's append, still open
        pausing = asyncio.create_task(pause())
        await _until_chain_lock_waiters(pg_database, 1)
        batch = asyncio.create_task(_submit_many(pg_database, [item]))
        await _until_chain_lock_waiters(pg_database, 2)
    state = await asyncio.wait_for(pausing, timeout=10)
    results = await asyncio.wait_for(batch, timeout=10)
    assert state.paused and results[0][0].status == "PENDING"
    async with pg_database.read() as session:
        actions = (await session.exec(select(AuditEntry.action).order_by(AuditEntry.seq))).all()
        assert actions == ["AUTO_APPROVAL_PAUSED", "SUBMITTED"]
        assert (await audit.verify_chain(session=session)).valid
