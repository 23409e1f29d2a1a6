"""The append-only, hash-chained audit log. Each row is also the event with cursor `seq`."""

import functools
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ARRAY, BigInteger, Executable, Select, Text, Uuid, bindparam, func, text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import GENESIS_HASH, AuditEntry
from db.services.actor import Actor
from db.types import utcnow

# Serializes "read chain head, insert" across every process on one PostgreSQL database.
AUDIT_LOCK_KEY = 0x48_49_54_4C  # "HITL"
EVENT_CHANNEL = "hitl_events"
VERIFY_BATCH = 2000


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    body = {
        "seq": entry.seq,
        "decisionId": str(entry.decision_id),
        "action": entry.action,
        "actor": entry.actor,
        "at": _iso(entry.at),
        "details": entry.details,
        "ipAddress": entry.ip_address,
        "userAgent": entry.user_agent,
    }
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


async def lock_chain(*, session: AsyncSession) -> None:
    """Hold the chain head until the caller's transaction ends (PostgreSQL; SQLite writes are serialized).

    Lock order: a patch row, then this lock, then the service_state row. A change that locks
    service_state itself takes this lock first (see auto_approval.set_paused), or it deadlocks with
    an auto-approval that appended its evidence and then reads the pause under a share lock."""
    if session.bind.dialect.name == "postgresql":
        await session.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=AUDIT_LOCK_KEY))


def hash_pieces(
    *, decision_id: uuid.UUID, action: str, actor: str, details_json: str, ip_address: str | None, user_agent: str | None
) -> tuple[str, str, str]:
    """The canonical JSON that entry_hash hashes, in three pieces around the values of `at` and `seq`
    (top-level keys in sorted order: action, actor, at, decisionId, details, ipAddress, seq, userAgent).
    `details_json`: canonical_json(details), which the caller stores as well."""
    before_at = '{"action":' + canonical_json(action) + ',"actor":' + canonical_json(actor) + ',"at":"'
    before_seq = (
        '","decisionId":' + canonical_json(str(decision_id)) + ',"details":' + details_json
        + ',"ipAddress":' + canonical_json(ip_address) + ',"seq":'
    )
    return before_at, before_seq, ',"userAgent":' + canonical_json(user_agent) + "}"


class Write(NamedTuple):
    """An INSERT or UPDATE of the change an audit entry records. The statement is built once per shape, with
    bound parameters named apart from every other write's, so SQLAlchemy compiles it once."""

    statement: Executable
    params: dict[str, object]


_APPEND_PARAMS = (
    ("lock_key", BigInteger()), ("genesis", Text()), ("channel", Text()), ("decision_id", Uuid()), ("action", Text()),
    ("actor", Text()), ("details", Text()), ("ip_address", Text()), ("user_agent", Text()),
    ("before_at", Text()), ("before_seq", Text()), ("after_seq", Text()),
)


async def execute(*, session: AsyncSession, write: Write) -> None:
    """Run one write on the session's connection: Core, past the ORM's autoflush and result processing."""
    await (await session.connection()).execute(write.statement, write.params)


@functools.lru_cache(maxsize=256)  # one per shape of change: a handful in practice
def _append_statement(writes: tuple[Executable, ...]) -> Select:
    appended = func.hitl_audit_append(*(bindparam(name, type_=type_) for name, type_ in _APPEND_PARAMS)).table_valued("new_seq")
    return select(appended.c.new_seq).add_cte(*(write.cte(f"write_{k}") for k, write in enumerate(writes)))


async def append(
    *, session: AsyncSession, decision_id: uuid.UUID, action: str, actor: Actor, details: dict, writes: Sequence[Write] = ()
) -> int:
    """Append one entry in the caller's transaction and return its seq; seq order equals commit order.

    `writes` are the change this entry records. Rows the change wrote otherwise (ORM objects) are flushed, and
    the row locks the writes need are held, before this call: lock order is rows, then the chain.

    PostgreSQL: one statement. The writes ride as CTEs on one call of hitl_audit_append (migration 0003), which
    takes the chain lock, reads the head, hashes, inserts and notifies, so no client round trip happens while
    every other append waits on the lock. SQLite: the writes, then the entry (write transactions are
    serialized by Database.write, so the head cannot move underneath)."""
    if session.bind.dialect.name == "postgresql":
        details_json = canonical_json(details)
        before_at, before_seq, after_seq = hash_pieces(
            decision_id=decision_id, action=action, actor=actor.subject, details_json=details_json,
            ip_address=actor.ip_address, user_agent=actor.user_agent,
        )
        params = {
            "lock_key": AUDIT_LOCK_KEY, "genesis": GENESIS_HASH, "channel": EVENT_CHANNEL, "decision_id": decision_id,
            "action": action, "actor": actor.subject, "details": details_json, "ip_address": actor.ip_address,
            "user_agent": actor.user_agent, "before_at": before_at, "before_seq": before_seq, "after_seq": after_seq,
        }
        for write in writes:
            params.update(write.params)
        statement = _append_statement(tuple(write.statement for write in writes))
        return (await (await session.connection()).execute(statement, params)).scalar_one()
    for write in writes:
        await execute(session=session, write=write)
    head = (await session.exec(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1))).first()
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    entry = AuditEntry(
        seq=seq,
        decision_id=decision_id,
        action=action,
        actor=actor.subject,
        at=utcnow(),
        details=json.loads(canonical_json(details)),
        ip_address=actor.ip_address,
        user_agent=actor.user_agent,
        prev_hash=prev_hash,
        hash="",
    )
    entry.hash = entry_hash(prev_hash, entry)
    session.add(entry)
    await session.flush()
    return seq


class Entry(NamedTuple):
    """One audit entry of `append_many`."""

    decision_id: uuid.UUID
    action: str
    actor: Actor
    details: dict


_APPEND_MANY = text(
    "SELECT new_seq FROM hitl_audit_append_many(:lock_key, :genesis, :channel, :decision_ids, :actions, :actors, :details, "
    ":ip_addresses, :user_agents, :before_ats, :before_seqs, :after_seqs)"
).bindparams(
    bindparam("lock_key", type_=BigInteger()), bindparam("decision_ids", type_=ARRAY(Uuid())),
    *(bindparam(name, type_=ARRAY(Text())) for name in (
        "actions", "actors", "details", "ip_addresses", "user_agents", "before_ats", "before_seqs", "after_seqs",
    )),
)


async def append_many(*, session: AsyncSession, entries: Sequence[Entry]) -> list[int]:
    """Append `entries` in order in the caller's transaction, exactly as one `append` each would, and return their
    seqs. The changes they record are written before (lock order: rows, then the chain). PostgreSQL: one call of
    hitl_audit_append_many (migration 0006): one lock, one head read and one notification for all of them."""
    if not entries:
        return []
    if session.bind.dialect.name != "postgresql":
        return [
            await append(session=session, decision_id=entry.decision_id, action=entry.action, actor=entry.actor, details=entry.details)
            for entry in entries
        ]
    columns: dict[str, list] = {name: [] for name in (
        "decision_ids", "actions", "actors", "details", "ip_addresses", "user_agents", "before_ats", "before_seqs", "after_seqs",
    )}
    for entry in entries:
        actor, details_json = entry.actor, canonical_json(entry.details)
        pieces = hash_pieces(
            decision_id=entry.decision_id, action=entry.action, actor=actor.subject, details_json=details_json,
            ip_address=actor.ip_address, user_agent=actor.user_agent,
        )
        values = (entry.decision_id, entry.action, actor.subject, details_json, actor.ip_address, actor.user_agent, *pieces)
        for column, value in zip(columns.values(), values, strict=True):
            column.append(value)
    params = {"lock_key": AUDIT_LOCK_KEY, "genesis": GENESIS_HASH, "channel": EVENT_CHANNEL, **columns}
    return list((await (await session.connection()).execute(_APPEND_MANY, params)).scalars())


@dataclass(frozen=True)
class ChainReport:
    valid: bool
    entries_checked: int
    first_broken_seq: int | None
    truncated: bool = False  # the chain no longer reaches a signed checkpoint (db.services.audit_checkpoints)


async def verify_chain(*, session: AsyncSession) -> ChainReport:
    """Recompute every hash; report the first entry whose content, link or position is wrong."""
    expected_prev, expected_seq, checked, last_seq = GENESIS_HASH, 1, 0, 0
    while True:
        batch = (
            await session.exec(select(AuditEntry).where(AuditEntry.seq > last_seq).order_by(AuditEntry.seq).limit(VERIFY_BATCH))
        ).all()
        if not batch:
            return ChainReport(valid=True, entries_checked=checked, first_broken_seq=None)
        for entry in batch:
            checked += 1
            if entry.seq != expected_seq or entry.prev_hash != expected_prev or entry.hash != entry_hash(entry.prev_hash, entry):
                return ChainReport(valid=False, entries_checked=checked, first_broken_seq=entry.seq)
            expected_prev, expected_seq = entry.hash, entry.seq + 1
        last_seq = batch[-1].seq
        session.expunge_all()


async def head_seq(*, session: AsyncSession) -> int:
    return (await session.exec(select(func.coalesce(func.max(AuditEntry.seq), 0)))).one()
