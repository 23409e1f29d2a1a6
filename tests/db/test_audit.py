"""The hash chain: verifies after many operations, pinpoints tampering, refuses UPDATE/DELETE."""

import random

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from db.enums import Role
from db.services import audit, auto_approval, comments, decisions, submission
from db.services.actor import Actor
from db.services.errors import DomainError
from db.services import audit_log
from tests.factories import ADMIN, LEAD, POLICY, SERVICE, passing_wargaming, patch_data, submit


async def _mixed_operations(db, count: int) -> None:
    rng = random.Random(7)
    reviewers = [Actor(f"rev-{i}", frozenset({Role.REVIEWER})) for i in range(5)]
    open_ids: list[str] = []
    done = 0
    while done < count:
        choice = rng.random()
        try:
            async with db.write() as session:
                if choice < 0.3 or not open_ids:
                    patch, _ = await submission.submit(
                        session=session, actor=SERVICE, data=patch_data(), policy=POLICY
                    )
                    open_ids.append(str(patch.id))
                elif choice < 0.45:
                    await submission.record_wargaming(
                        session=session, actor=SERVICE, patch_id=rng.choice(open_ids), data=passing_wargaming(), policy=POLICY
                    )
                elif choice < 0.65:
                    await comments.add(session=session, actor=rng.choice(reviewers), patch_id=rng.choice(open_ids), body="looks fine")
                elif choice < 0.8:
                    target = open_ids.pop(rng.randrange(len(open_ids)))
                    await decisions.approve(session=session, actor=rng.choice(reviewers), patch_id=target)
                elif choice < 0.9:
                    target = open_ids.pop(rng.randrange(len(open_ids)))
                    await decisions.reject(session=session, actor=LEAD, patch_id=target, reason="no")
                elif choice < 0.97:
                    await decisions.escalate(session=session, actor=LEAD, patch_id=rng.choice(open_ids), reason="look")
                else:
                    await auto_approval.set_paused(session=session, actor=ADMIN, paused=rng.random() < 0.5, reason="drill")
            done += 1
        except DomainError:
            pass  # an expected refusal (e.g. escalating an escalated patch) writes nothing


@pytest.mark.slow
async def test_chain_verifies_after_1000_operations_and_pinpoints_tampering(database):
    await _mixed_operations(database, 1000)
    async with database.read() as session:
        report = await audit.verify_chain(session=session)
        head = await audit.head_seq(session=session)
    assert report.valid and report.entries_checked == head >= 1000

    victim = 437
    async with database.engine.begin() as connection:
        if database.is_sqlite:
            await connection.execute(text("DROP TRIGGER audit_log_no_update"))
        else:
            await connection.execute(text("SET LOCAL session_replication_role = replica"))  # a superuser bypassing the trigger
        await connection.execute(text("UPDATE audit_log SET details = CAST(:d AS JSON) WHERE seq = :s").bindparams(d='{"forged": true}', s=victim))
    async with database.read() as session:
        report = await audit.verify_chain(session=session)
    assert not report.valid and report.first_broken_seq == victim and report.entries_checked == victim


async def test_deleting_a_row_is_detected(database):
    for _ in range(5):
        await submit(database)
    async with database.engine.begin() as connection:
        if database.is_sqlite:
            await connection.execute(text("DROP TRIGGER audit_log_no_delete"))
        else:
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    async with database.read() as session:
        report = await audit.verify_chain(session=session)
    assert not report.valid and report.first_broken_seq == 4


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log", "TRUNCATE audit_log"])
async def test_database_refuses_to_change_the_audit_log(database, statement):
    await submit(database)
    if database.is_sqlite and statement.startswith("TRUNCATE"):
        statement = "DELETE FROM audit_log WHERE 1"  # SQLite has no TRUNCATE; its DELETE trigger covers it
    with pytest.raises(DBAPIError, match="append-only"):
        async with database.engine.begin() as connection:
            await connection.execute(text(statement))
    async with database.read() as session:
        assert (await audit.verify_chain(session=session)).entries_checked == 1


async def test_entry_records_who_where_and_what(database):
    patch = await submit(database)
    async with database.read() as session:
        entry = (await audit_log.trails(session=session, decision_ids=[patch.id]))[patch.id][0]
    assert (entry.actor, entry.ip_address, entry.user_agent, entry.action) == ("service:upstream", "10.0.0.1", "wargaming-crisol/1.0", "SUBMITTED")
    assert entry.details["patchId"] == patch.patch_id and entry.prev_hash == "0" * 64 and len(entry.hash) == 64
