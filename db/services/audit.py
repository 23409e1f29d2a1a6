"""The append-only, hash-chained audit log. Each row is also the event with cursor `seq`."""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, text
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


async def append(*, session: AsyncSession, decision_id: uuid.UUID, action: str, actor: Actor, details: dict) -> AuditEntry:
    """Append one entry in the caller's transaction; seq order equals commit order."""
    dialect = session.bind.dialect.name
    await lock_chain(session=session)
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
    if dialect == "postgresql":
        # Delivered at commit, never for a rolled-back change; the payload stays far below 8,000 bytes.
        payload = canonical_json({"seq": seq, "decisionId": str(decision_id), "action": action})
        await session.exec(text("SELECT pg_notify(:channel, :payload)").bindparams(channel=EVENT_CHANNEL, payload=payload))
    return entry


@dataclass(frozen=True)
class ChainReport:
    valid: bool
    entries_checked: int
    first_broken_seq: int | None


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
