"""Signed audit checkpoints (db.services.audit_checkpoints), on both backends: one per interval, and a chain
that no longer reaches a checkpoint (rows cut from its head, or rewritten and rehashed) is caught; a checkpoint
the key did not sign is refused."""

import json
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from db.models import AuditCheckpoint, AuditEntry
from db.services import audit, audit_checkpoints
from db.services.audit_checkpoints import Claim
from db.services.errors import BadUserInput
from db.types import utcnow
from tests.support.factories import submit

KEY = secrets.token_bytes(32)
EVERY = timedelta(seconds=54)


async def _write(database, now=None) -> audit_checkpoints.Checkpoint | None:
    async with database.write() as session:
        return await audit_checkpoints.write_due(session=session, key=KEY, now=now or utcnow(), every=EVERY)


async def _verify(database, *checkpoints: audit_checkpoints.Checkpoint, key: bytes = KEY) -> audit.ChainReport:
    claims = [Claim(**json.loads(checkpoint.line())) for checkpoint in checkpoints]
    async with database.read() as session:
        return await audit_checkpoints.verify(session=session, claims=claims, key=key)


async def _as_superuser(database, *statements: str, params: dict | None = None) -> None:
    """Past the append-only triggers, as someone holding the database itself would."""
    async with database.engine.begin() as connection:
        if database.is_sqlite:
            await connection.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            await connection.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        else:
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            await connection.execute(text(statement), params or {})


async def _rewrite_and_rehash(database, victim: int) -> None:
    """A consistent forgery: one entry's actor changed, and every hash from it to the head recomputed."""
    async with database.read() as session:
        entries = (await session.exec(select(AuditEntry).where(AuditEntry.seq >= victim - 1).order_by(AuditEntry.seq))).all()
    prev = entries[0].hash if entries[0].seq < victim else entries[0].prev_hash
    changes = []
    for entry in entries:
        if entry.seq < victim:
            continue
        if entry.seq == victim:
            entry.actor = "mallory"
        entry.prev_hash, entry.hash = prev, audit.entry_hash(prev, entry)
        prev = entry.hash
        changes.append({"s": entry.seq, "a": entry.actor, "p": entry.prev_hash, "h": entry.hash})
    for change in changes:
        await _as_superuser(database, "UPDATE audit_log SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s", params=change)


async def test_one_checkpoint_of_the_head_per_interval(database):
    assert await _write(database) is None, "nothing to pin in an empty log"
    for _ in range(3):
        await submit(database)
    first = await _write(database)
    async with database.read() as session:
        head = (await session.exec(select(AuditEntry).order_by(AuditEntry.seq.desc()))).first()
    assert (first.seq, first.hash) == (head.seq, head.hash) == (3, head.hash)
    assert first.signature == audit_checkpoints.signature_of(KEY, first.seq, first.hash, first.at)
    line = json.loads(first.line())
    assert line == {"event": "audit_checkpoint", "seq": 3, "hash": head.hash, "at": first.at, "signature": first.signature}

    assert await _write(database) is None, "one was written less than an interval ago (by any replica)"
    await submit(database)
    later = await _write(database, utcnow() + EVERY)
    assert later.seq == 4
    async with database.read() as session:
        stored = (await session.exec(select(AuditCheckpoint).order_by(AuditCheckpoint.id))).all()
        exported = await audit_checkpoints.latest(session=session)
    assert [(row.seq, row.signature) for row in stored] == [(3, first.signature), (4, later.signature)]
    assert exported == [first, later], "stored checkpoints export as the same lines"
    assert (await _verify(database, first, later)) == audit.ChainReport(valid=True, entries_checked=4, first_broken_seq=None)


async def test_rows_cut_from_the_head_are_reported_truncated_with_the_first_missing_seq(database):
    for _ in range(6):
        await submit(database)
    checkpoint = await _write(database)
    await _as_superuser(database, "DELETE FROM audit_log WHERE seq > 4")
    async with database.read() as session:
        alone = await audit.verify_chain(session=session)
    assert alone.valid, "the shorter chain is valid in itself: only the checkpoint shows the cut"
    report = await _verify(database, checkpoint)
    assert report == audit.ChainReport(valid=False, entries_checked=4, first_broken_seq=5, truncated=True)


async def test_a_rewritten_and_rehashed_row_is_caught_by_a_checkpoint_after_it(database):
    for _ in range(3):
        await submit(database)
    before = await _write(database)
    for _ in range(4):
        await submit(database)
    after = await _write(database, utcnow() + EVERY)
    assert (before.seq, after.seq) == (3, 7)
    await _rewrite_and_rehash(database, victim=5)
    async with database.read() as session:
        alone = await audit.verify_chain(session=session)
    assert alone.valid and alone.entries_checked == 7, "a consistent forgery passes the chain's own check"
    assert (await _verify(database, before)).valid, "the checkpoint before the forgery still matches"
    report = await _verify(database, before, after)
    assert report == audit.ChainReport(valid=False, entries_checked=7, first_broken_seq=7, truncated=True)


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        (lambda line: {**line, "signature": "0" * 64}, "signature does not verify"),
        (lambda line: {**line, "seq": line["seq"] + 1}, "signature does not verify"),
        (lambda line: {**line, "hash": "f" * 64}, "signature does not verify"),
        (lambda line: {**line, "at": "2020-01-01T00:00:00.000000+00:00"}, "signature does not verify"),
        (lambda line: {**line, "hash": "F" * 64}, "hash must be 64 lower-case hex"),
        (lambda line: {**line, "seq": 0}, "seq must be a positive integer"),
        (lambda line: {**line, "event": "login"}, 'event must be "audit_checkpoint"'),
        (lambda line: {**line, "at": "yesterday"}, "at is not an ISO 8601"),
        (lambda line: {**line, "at": "2020-01-01T00:00:00"}, "at needs a UTC offset"),
        (lambda line: {**line, "seq": 2**63}, "seq must be a positive integer"),
        (lambda line: {**line, "seq": True}, "seq must be a positive integer"),
    ],
    ids=["zero-signature", "moved-seq", "other-hash", "other-time", "upper-case", "seq-0", "other-event", "bad-time", "naive-time",
         "seq-past-bigint", "seq-bool"],
)
async def test_a_forged_or_malformed_checkpoint_is_refused(database, forge, message):
    await submit(database)
    line = json.loads((await _write(database)).line())
    with pytest.raises(BadUserInput, match=message) as refused:
        async with database.read() as session:
            await audit_checkpoints.verify(session=session, claims=[Claim(**forge(line), where="checkpoints[0]")], key=KEY)
    assert refused.value.field == "checkpoints"


async def test_a_checkpoint_signed_with_another_key_is_refused(database):
    await submit(database)
    checkpoint = await _write(database)
    with pytest.raises(BadUserInput, match="signature does not verify"):
        await _verify(database, checkpoint, key=secrets.token_bytes(32))
    with pytest.raises(BadUserInput, match="has no HITL_AUDIT_CHECKPOINT_KEY"):
        async with database.read() as session:
            await audit_checkpoints.verify(session=session, claims=[Claim(**json.loads(checkpoint.line()))], key=None)


def test_the_same_instant_in_another_form_verifies_and_lines_parse():
    moment = utcnow()
    checkpoint = audit_checkpoints.sign(key=KEY, seq=9, hash_="a" * 64, moment=moment)
    zulu = Claim(9, "a" * 64, checkpoint.at.replace("+00:00", "Z"), checkpoint.signature)
    assert audit_checkpoints.trusted([zulu, Claim(9, "a" * 64, moment, checkpoint.signature)], KEY) == [checkpoint, checkpoint]
    shipped = json.dumps({"kubernetes": {"pod": "hitl-1"}, **json.loads(checkpoint.line())})
    (claim,) = audit_checkpoints.parse_lines(f"\n{shipped}\n\n")
    assert audit_checkpoints.trusted([claim], KEY) == [checkpoint]
    with pytest.raises(BadUserInput, match="line 2 is not JSON"):
        audit_checkpoints.parse_lines(checkpoint.line() + "\n{oops\n")
    with pytest.raises(BadUserInput, match="at most 10000"):
        audit_checkpoints.trusted([zulu] * 10_001, KEY)


async def test_the_application_cannot_change_stored_checkpoints(database):
    await submit(database)
    await _write(database)
    for statement in ("UPDATE audit_checkpoints SET seq = 99", "DELETE FROM audit_checkpoints"):
        with pytest.raises(Exception, match="append-only"):
            async with database.write() as session:
                await session.exec(text(statement))
