"""The hash chain: verifies after many operations, pinpoints tampering, refuses UPDATE/DELETE."""

import hashlib
import json
import uuid
from datetime import timezone

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from db.enums import Role
from db.services import audit
from db.services.actor import Actor
from db.services import audit_log
from db.models import GENESIS_HASH, AuditEntry
from tests.support.waiting import eventually
from tests.support.factories import mixed_operations, submit



@pytest.mark.slow
async def test_chain_verifies_after_1000_operations_and_pinpoints_tampering(database):
    await mixed_operations(database, 1000)
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


_TEXT = st.one_of(st.none(), st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40))
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    action=st.text(max_size=30), actor=st.text(min_size=1, max_size=40), details=st.dictionaries(st.text(max_size=12), _JSON, max_size=5),
    ip_address=_TEXT, user_agent=_TEXT, seq=st.integers(min_value=1, max_value=2**62),
    at=st.datetimes(timezones=st.just(timezone.utc)), decision_id=st.uuids(),
)
def test_the_pieces_sent_to_the_database_join_to_the_canonical_json_of_the_entry(action, actor, details, ip_address, user_agent, seq, at, decision_id):
    """PostgreSQL hashes before_at + at + before_seq + seq + after_seq (hitl_audit_append): that text must be the
    canonical JSON entry_hash hashes, or every chain written on PostgreSQL would fail verification."""
    entry = AuditEntry(
        seq=seq, decision_id=decision_id, action=action, actor=actor, at=at, details=details,
        ip_address=ip_address, user_agent=user_agent, prev_hash=GENESIS_HASH, hash="",
    )
    before_at, before_seq, after_seq = audit.hash_pieces(
        decision_id=decision_id, action=action, actor=actor, details_json=audit.canonical_json(details), ip_address=ip_address,
        user_agent=user_agent,
    )
    joined = before_at + at.isoformat(timespec="microseconds") + before_seq + str(seq) + after_seq
    assert hashlib.sha256((GENESIS_HASH + joined).encode()).hexdigest() == audit.entry_hash(GENESIS_HASH, entry)


@pytest.mark.postgres_only
async def test_server_side_appends_verify_keep_seq_and_time_in_step_and_notify_at_commit(pg_database):
    """hitl_audit_append: hashes PostgreSQL computed verify in Python (quotes, backslashes, non-ASCII, control
    characters, nested details), `at` never goes back as seq grows, and the notification leaves only on commit."""
    odd = Actor('o\'brien "the" \\ reviewer ✓', frozenset({Role.REVIEWER}), ip_address="::1", user_agent="agent/1.0 (\t\u00e9\u4e2d)")
    details = {"note": "line\nbreak \u2028 \U0001f600 \\ \"q\"", "nested": {"list": [1, 2.5, None, True, "x"]}, "n": -3}
    listener = await asyncpg.connect(pg_database.engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
    heard: list[str] = []
    await listener.add_listener(audit.EVENT_CHANNEL, lambda *args: heard.append(args[-1]))
    try:
        seqs = []
        for _ in range(20):
            async with pg_database.write() as session:
                seqs.append(await audit.append(session=session, decision_id=uuid.uuid4(), action="COMMENTED", actor=odd, details=details))
        with pytest.raises(RuntimeError):
            async with pg_database.write() as session:
                await audit.append(session=session, decision_id=uuid.uuid4(), action="COMMENTED", actor=odd, details=details)
                raise RuntimeError("rolled back")
        async with pg_database.write() as session:  # notifications leave in commit order: this one's arrival is the end
            seqs.append(await audit.append(session=session, decision_id=uuid.uuid4(), action="COMMENTED", actor=odd, details=details))
        await eventually(lambda: len(heard) >= len(seqs), what="the notifications of every committed append")
    finally:
        await listener.close()
    async with pg_database.read() as session:
        report = await audit.verify_chain(session=session)
        rows = (await audit_log.after_seq(session=session, seq=0, limit=100))
    assert report.valid and report.entries_checked == 21 and seqs == list(range(1, 22))
    assert [row.at for row in rows] == sorted(row.at for row in rows)
    assert rows[0].actor == odd.subject and rows[0].details == details and rows[0].user_agent == odd.user_agent
    assert [json.loads(payload)["seq"] for payload in heard] == seqs
    assert json.loads(heard[0]) == {"seq": 1, "decisionId": str(rows[0].decision_id), "action": "COMMENTED"}
