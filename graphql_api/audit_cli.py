"""What `hitl audit verify` and `hitl audit checkpoints` do: one read transaction against the configured database."""

import asyncio
import json
import sys
from pathlib import Path

from db.engine import Database
from db.services import audit_checkpoints
from db.services.audit import ChainReport
from db.services.errors import BadUserInput
from graphql_api.config import Settings

EXIT_VALID, EXIT_BROKEN, EXIT_BAD_INPUT = 0, 1, 2


def verify(settings: Settings, checkpoints_file: Path | None) -> int:
    try:
        claims = audit_checkpoints.parse_lines(checkpoints_file.read_text(encoding="utf-8")) if checkpoints_file else []
    except OSError as exc:
        print(f"error: cannot read {checkpoints_file}: {exc.strerror}", file=sys.stderr)  # noqa: T201
        return EXIT_BAD_INPUT
    except BadUserInput as exc:
        print(f"error: {checkpoints_file}: {exc.message}", file=sys.stderr)  # noqa: T201
        return EXIT_BAD_INPUT

    async def run() -> ChainReport:
        db = Database.from_url(settings.effective_database_url, pool_min=1, pool_max=1)
        try:
            async with db.read() as session:
                return await audit_checkpoints.verify(session=session, claims=claims, key=settings.audit_checkpoint_key_bytes)
        finally:
            await db.dispose()

    try:
        report = asyncio.run(run())
    except BadUserInput as exc:
        print(f"error: {exc.message}", file=sys.stderr)  # noqa: T201
        return EXIT_BAD_INPUT
    print(json.dumps({  # noqa: T201 - the command's output
        "valid": report.valid, "entriesChecked": report.entries_checked, "firstBrokenSeq": report.first_broken_seq,
        "truncated": report.truncated, "checkpoints": len(claims),
    }))
    return EXIT_VALID if report.valid else EXIT_BROKEN


def export(settings: Settings, limit: int) -> str:
    async def run() -> list[audit_checkpoints.Checkpoint]:
        db = Database.from_url(settings.effective_database_url, pool_min=1, pool_max=1)
        try:
            async with db.read() as session:
                return await audit_checkpoints.latest(session=session, limit=limit)
        finally:
            await db.dispose()

    return "".join(checkpoint.line() + "\n" for checkpoint in asyncio.run(run()))
