"""Signed audit checkpoints: how far the hash chain reached at a moment, in a form kept outside the database.

The chain (db.services.audit) proves that no entry was altered in place, but not that none was cut from its
head, nor that a forger with the database in hand did not rewrite an entry and rehash everything after it:
the result is a valid, shorter or different chain. A checkpoint `{seq, hash, at, signature}` is the head's
position and hash, signed with HMAC-SHA256 under a key the database does not hold. The service writes one
per interval into `audit_checkpoints` and as a log line; a copy kept elsewhere (shipped logs) is what
verification compares the chain with: the chain must still reach each checkpoint's seq with its hash.

`signature` = lower-case hex HMAC-SHA256 of "{seq}.{hash}.{at}", `at` in the one form the service writes
(ISO 8601, UTC, microseconds, "+00:00"); an `at` given in another form of the same instant is put in that form
before the signature is checked.
"""

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import AuditCheckpoint, AuditEntry
from db.services import audit
from db.services.errors import BadUserInput

EVENT = "audit_checkpoint"
FIELD = "checkpoints"
MAX_CHECKPOINTS = 10_000  # per verification request: a week of one-minute checkpoints
LOOKUP_BATCH = 1_000
MAX_SEQ = 2**63 - 1  # audit_log.seq is a bigint
# Serializes "is a checkpoint due? write it" across replicas on one PostgreSQL database.
CHECKPOINT_LOCK_KEY = 0x48_49_54_43  # "HITC"
_HEX64 = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str  # exactly the text that was signed
    signature: str

    def line(self) -> str:
        """The log line: one JSON object carrying exactly these fields, pasteable into the GraphQL input."""
        return json.dumps({"event": EVENT, "seq": self.seq, "hash": self.hash, "at": self.at, "signature": self.signature},
                          separators=(",", ":"))


@dataclass(frozen=True)
class Claim:
    """A checkpoint as a client hands it in (GraphQL input or a line of a file), not yet trusted."""

    seq: object
    hash: object
    at: object  # datetime (GraphQL) or its ISO text (a file)
    signature: object
    event: object = None
    where: str = FIELD  # how to name it in an error: "checkpoints[3]", "line 7"


def format_at(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def signature_of(key: bytes, seq: int, hash_: str, at: str) -> str:
    return hmac.new(key, f"{seq}.{hash_}.{at}".encode(), hashlib.sha256).hexdigest()


def sign(*, key: bytes, seq: int, hash_: str, moment: datetime) -> Checkpoint:
    at = format_at(moment)
    return Checkpoint(seq=seq, hash=hash_, at=at, signature=signature_of(key, seq, hash_, at))


def parse_lines(text_: str) -> list[Claim]:
    """The claims of a file of one JSON checkpoint per line (blank lines skipped; keys other than the
    checkpoint's, e.g. added by a log shipper, ignored)."""
    claims = []
    for number, line in enumerate(text_.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            raise BadUserInput(f"line {number} is not JSON", field=FIELD) from None
        if not isinstance(value, dict):
            raise BadUserInput(f"line {number} is not a JSON object", field=FIELD)
        claims.append(Claim(value.get("seq"), value.get("hash"), value.get("at"), value.get("signature"), value.get("event"), f"line {number}"))
    return claims


def trusted(claims: Sequence[Claim], key: bytes | None) -> list[Checkpoint]:
    """The claims as checkpoints once each is well-formed and its signature verifies; else BAD_USER_INPUT
    (field `checkpoints`) naming the first that does not."""
    if len(claims) > MAX_CHECKPOINTS:
        raise BadUserInput(f"at most {MAX_CHECKPOINTS} checkpoints per verification", field=FIELD)
    if claims and key is None:
        raise BadUserInput("checkpoints cannot be verified: the service has no HITL_AUDIT_CHECKPOINT_KEY", field=FIELD)
    return [_trusted(claim, key) for claim in claims]


def _trusted(claim: Claim, key: bytes) -> Checkpoint:
    def bad(why: str) -> BadUserInput:
        return BadUserInput(f"{claim.where}: {why}", field=FIELD)

    if claim.event not in (None, EVENT):
        raise bad(f'event must be "{EVENT}"')
    if isinstance(claim.seq, bool) or not isinstance(claim.seq, int) or not 1 <= claim.seq <= MAX_SEQ:
        raise bad("seq must be a positive integer (a bigint)")
    for name, value in (("hash", claim.hash), ("signature", claim.signature)):
        if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX64:
            raise bad(f"{name} must be 64 lower-case hex digits")
    moment = claim.at
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            raise bad("at is not an ISO 8601 date and time") from None
    if not isinstance(moment, datetime):
        raise bad("at is required")
    if moment.utcoffset() is None:
        raise bad("at needs a UTC offset (as the service writes it)")
    at = format_at(moment)
    if not hmac.compare_digest(signature_of(key, claim.seq, claim.hash, at), claim.signature):
        raise bad("the signature does not verify (not written by this service, altered, or signed with another key)")
    return Checkpoint(seq=claim.seq, hash=claim.hash, at=at, signature=claim.signature)


async def write_due(*, session: AsyncSession, key: bytes, now: datetime, every: timedelta) -> Checkpoint | None:
    """Sign and store the chain's head, unless any replica stored a checkpoint less than `every` ago or the log
    is empty. In the caller's transaction; the caller writes the log line after the commit."""
    if session.bind.dialect.name == "postgresql":
        await session.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=CHECKPOINT_LOCK_KEY))
    latest = (await session.exec(select(AuditCheckpoint.at).order_by(AuditCheckpoint.id.desc()).limit(1))).first()
    if latest is not None and now - latest < every:
        return None
    head = (await session.exec(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1))).first()
    if head is None:
        return None
    checkpoint = sign(key=key, seq=head[0], hash_=head[1], moment=now)
    session.add(AuditCheckpoint(seq=checkpoint.seq, hash=checkpoint.hash, at=now, signature=checkpoint.signature))
    await session.flush()
    return checkpoint


async def verify(*, session: AsyncSession, claims: Sequence[Claim] = (), key: bytes | None = None) -> audit.ChainReport:
    """The chain's own verification, and whether it still reaches every checkpoint's seq with its hash.

    A checkpoint it does not reach makes the report `truncated` (and invalid), with `first_broken_seq` the first
    seq missing (rows cut from the head) or the checkpoint's own seq when the row there has another hash
    (rewritten and rehashed at or before it), whichever comes first with the chain's own break."""
    checkpoints = trusted(claims, key)
    report = await audit.verify_chain(session=session)
    if not checkpoints:
        return report
    head = await audit.head_seq(session=session)
    wanted = {checkpoint.seq: checkpoint.hash for checkpoint in checkpoints}
    found: dict[int, str] = {}
    seqs = sorted(wanted)
    for start in range(0, len(seqs), LOOKUP_BATCH):
        batch = seqs[start : start + LOOKUP_BATCH]
        rows = await session.exec(select(AuditEntry.seq, AuditEntry.hash).where(AuditEntry.seq.in_(batch)))
        found.update((row[0], row[1]) for row in rows)
    broken = [
        head + 1 if seq > head else seq
        for seq, hash_ in wanted.items()
        if found.get(seq) != hash_
    ]
    if not broken:
        return report
    first = min(broken if report.first_broken_seq is None else [*broken, report.first_broken_seq])
    return audit.ChainReport(valid=False, entries_checked=report.entries_checked, first_broken_seq=first, truncated=True)


async def latest(*, session: AsyncSession, limit: int = 100) -> list[Checkpoint]:
    """The most recent stored checkpoints, oldest first (for export: `hitl audit checkpoints`)."""
    rows = (await session.exec(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(limit))).all()
    return [Checkpoint(seq=row.seq, hash=row.hash, at=format_at(row.at), signature=row.signature) for row in reversed(rows)]

