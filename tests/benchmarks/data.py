"""Bulk SYNTHETIC data for the benchmarks, loaded with asyncpg COPY (never through the API).

Rows are made from a pool of `ml.synthetic.generate_patches` templates (generating a million patches
one by one would take minutes), each copy with its own id, patch id ("SYNTH-BENCH-…"), timestamps and
SLA fields. Exactly one row in ten is open (PENDING or ESCALATED, in the generator's proportions); the
rest carry the template's final status. Open patches whose SLA deadline has passed are stored as
already flagged (`sla_breached_at` set), as the SLA watcher would have left them, so a server started on
this data does not spend the benchmark appending thousands of SLA_BREACHED events.

The audit log is not back-filled: no scenario reads history, and appends only look at the chain head.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from db.models import Patch
from ml.synthetic import generate_patches

OPEN = ("PENDING", "ESCALATED")
SLA_SECONDS = {"CRITICAL": 300, "HIGH": 600, "MEDIUM": 900, "LOW": 0}
COLUMNS = [column.name for column in Patch.__table__.columns]
JSON_COLUMNS = {"cwe_ids", "affected_systems", "ml_prediction", "wargaming"}
CHUNK = 20_000


def _template_rows(pool_size: int, seed: int, now: datetime) -> tuple[list[dict], list[dict]]:
    """(open templates, closed templates) as column dicts with JSON pre-serialized."""
    open_rows, closed_rows = [], []
    for patch in generate_patches(pool_size, seed=seed, now=now):
        row = {}
        for name in COLUMNS:
            value = getattr(patch, name)
            if name in JSON_COLUMNS:
                value = None if value is None else json.dumps(value)
            row[name] = value
        row["_age"] = (now - patch.created_at).total_seconds()
        (open_rows if patch.status in OPEN else closed_rows).append(row)
    return open_rows, closed_rows


def _records(start: int, count: int, open_rows: list[dict], closed_rows: list[dict], now: datetime, rng: random.Random):
    for i in range(start, start + count):
        is_open = i % 10 == 0
        template = (open_rows if is_open else closed_rows)[rng.randrange(len(open_rows if is_open else closed_rows))]
        row = dict(template)
        # Open patches arrived 20 minutes to six hours ago (every SLA deadline, at most 15 minutes, has
        # passed and is flagged), decided ones over the last 120 days.
        age = rng.uniform(1200, 6 * 3600) if is_open else rng.uniform(3600, 120 * 86400)
        created = now - timedelta(seconds=age)
        shift = created - (now - timedelta(seconds=template["_age"]))
        row["id"] = uuid.UUID(int=rng.getrandbits(128), version=4)
        row["patch_id"] = f"SYNTH-BENCH-{i:08d}"
        row["apv_id"] = f"APV-SYNTH-BENCH-{i:08d}"
        row["created_at"] = created
        for name in ("decided_at", "outcome_at", "updated_at"):
            if row[name] is not None:
                row[name] = min(row[name] + shift, now)
        sla = SLA_SECONDS[row["priority"]]
        row["sla_deadline"] = created + timedelta(seconds=sla) if sla else None
        row["sla_at_risk_at"] = created + timedelta(seconds=0.8 * sla) if sla else None
        if is_open:
            row["sla_breached_at"] = row["sla_deadline"] if row["sla_deadline"] is not None and row["sla_deadline"] < now else None
        else:
            decided = row["decided_at"]
            row["sla_breached_at"] = row["sla_deadline"] if row["sla_deadline"] and decided and decided > row["sla_deadline"] else None
        yield tuple(row[name] for name in COLUMNS)


async def load_patches(dsn: str, total: int, *, start: int = 0, pool_size: int = 20_000, seed: int = 11) -> dict:
    """Append `total` synthetic patches (one in ten open) with COPY; returns counts and timings."""
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    open_rows, closed_rows = _template_rows(pool_size, seed, now)
    generated = time.perf_counter()
    rng = random.Random(seed * 7919 + start)
    connection = await asyncpg.connect(dsn)
    try:
        for offset in range(start, start + total, CHUNK):
            count = min(CHUNK, start + total - offset)
            records = list(_records(offset, count, open_rows, closed_rows, now, rng))
            await connection.copy_records_to_table("patches", records=records, columns=COLUMNS)
        copied = time.perf_counter()
        await connection.execute("VACUUM (ANALYZE) patches")
        counts = dict(await connection.fetch("SELECT status, count(*) FROM patches GROUP BY status"))
    finally:
        await connection.close()
    return {
        "patches": sum(counts.values()),
        "open": sum(v for k, v in counts.items() if k in OPEN),
        "by_status": counts,
        "template_pool": pool_size,
        "generate_s": round(generated - started, 2),
        "copy_s": round(copied - generated, 2),
        "vacuum_analyze_s": round(time.perf_counter() - copied, 2),
    }
