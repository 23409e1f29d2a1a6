"""Opaque, stable keyset cursors: base64url of the sort key of the last row seen."""

import base64
import json
import uuid
from datetime import datetime, timezone

from db.services.errors import BadUserInput

MAX_CURSOR_LENGTH = 512
# Integer parts are database keys (BIGINT at most): anything outside that range is not a cursor we issued.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def encode(*key: object) -> str:
    parts = [str(part) if isinstance(part, uuid.UUID) else part.isoformat() if isinstance(part, datetime) else part for part in key]
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(cursor: str, *, kinds: tuple[type, ...], field: str = "after") -> tuple:
    """Decode a cursor whose parts have the given types (int, datetime, uuid.UUID, str)."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError("wrong shape")
        return tuple(_parse(kind, part) for kind, part in zip(kinds, raw, strict=True))
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError):
        raise BadUserInput(f"{field} is not a valid cursor", field=field) from None


def _parse(kind: type, part: object) -> object:
    if kind is int and isinstance(part, int) and not isinstance(part, bool):
        if not INT64_MIN <= part <= INT64_MAX:
            raise ValueError("out of range")
        return part
    if kind is datetime and isinstance(part, str):
        moment = datetime.fromisoformat(part)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment.astimezone(timezone.utc)  # OverflowError when it leaves the datetime range
    if kind is uuid.UUID and isinstance(part, str):
        return uuid.UUID(part)
    if kind is str and isinstance(part, str):
        return part
    raise ValueError("wrong type")
