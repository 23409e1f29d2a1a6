"""The pending queue: order, filters, and stable keyset paging while the queue changes."""

import random
from datetime import timedelta

import pytest
from sqlalchemy import text

from db.services import decisions, queue
from db.services.errors import BadUserInput
from db.services.queue import PatchFilter, PendingFilter
from db.types import utcnow
from tests.support.factories import LEAD, REVIEWER, submit

SEVERITIES = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
RANK = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}


async def _all_pending(db, first=7, flt=None):
    seen, after = [], None
    while True:
        async with db.read() as session:
            page = await queue.pending_page(session=session, first=first, after=after, flt=flt, now=utcnow())
        seen.extend(page.items)
        if not page.has_next_page:
            return seen
        after = page.end_cursor


async def test_order_is_priority_then_oldest_then_id(database):
    rng = random.Random(3)
    for _ in range(30):
        await submit(database, severity=rng.choice(SEVERITIES))
    escalated = await submit(database, severity="LOW")
    async with database.write() as session:
        await decisions.escalate(session=session, actor=REVIEWER, patch_id=str(escalated.id), reason="check")
    items = await _all_pending(database)
    assert len(items) == 31
    keys = [(RANK[p.priority], p.created_at, p.id) for p in items]
    assert keys == sorted(keys)
    assert items[0].priority == "CRITICAL" and escalated.id in {p.id for p in items}


async def test_same_timestamp_ties_break_by_id(database):
    patches = [await submit(database, severity="HIGH") for _ in range(5)]
    async with database.engine.begin() as connection:  # force identical timestamps
        await connection.execute(text("UPDATE patches SET created_at = (SELECT MIN(created_at) FROM patches)"))
    items = await _all_pending(database, first=2)
    assert [p.id for p in items] == sorted(p.id for p in patches)


async def test_paging_while_patches_change_never_repeats_or_skips(database):
    rng = random.Random(11)
    for _ in range(60):
        await submit(database, severity=rng.choice(SEVERITIES))
    seen, after, removed, added = [], None, set(), set()
    while True:
        async with database.read() as session:
            page = await queue.pending_page(session=session, first=6, after=after, now=utcnow())
        seen.extend(p.id for p in page.items)
        # Between pages: decide two pending patches (seen or not yet seen) and submit new ones.
        async with database.read() as session:
            current = (await queue.pending_page(session=session, first=500, now=utcnow())).items
        for victim in rng.sample(current, k=min(2, len(current))):
            async with database.write() as session:
                await decisions.approve(session=session, actor=LEAD, patch_id=str(victim.id))
            removed.add(victim.id)
        for _ in range(2):
            added.add((await submit(database, severity=rng.choice(SEVERITIES))).id)
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert len(seen) == len(set(seen)), "a patch was repeated"
    async with database.read() as session:
        still_pending = {p.id for p in (await queue.pending_page(session=session, first=500, now=utcnow())).items}
    stayed = still_pending - added
    assert stayed <= set(seen), "a patch that stayed pending was skipped"


async def test_filters(database):
    await submit(database, severity="CRITICAL", package_name="openssl", cve_id="CVE-2024-0001")
    await submit(database, severity="LOW", package_name="lodash")
    await submit(database, severity="MEDIUM", package_name="openssl")
    async with database.read() as session:
        now = utcnow()
        by_priority = await queue.pending_page(session=session, flt=PendingFilter(priority=["CRITICAL", "LOW"]), now=now)
        by_package = await queue.pending_page(session=session, flt=PendingFilter(package_name="openssl"), now=now)
        by_cve = await queue.pending_page(session=session, flt=PendingFilter(cve_id="cve-2024-0001"), now=now)
        breached = await queue.pending_page(session=session, flt=PendingFilter(sla_status="BREACHED"), now=now + timedelta(seconds=301))
        at_risk = await queue.pending_page(session=session, flt=PendingFilter(sla_status="AT_RISK"), now=now + timedelta(seconds=250))
        ok = await queue.pending_page(session=session, flt=PendingFilter(sla_status="OK"), now=now)
    assert {p.priority for p in by_priority.items} == {"CRITICAL", "LOW"} and by_priority.total_count == 2
    assert by_package.total_count == 2 and by_cve.total_count == 1
    assert [p.priority for p in breached.items] == ["CRITICAL"]
    assert [p.priority for p in at_risk.items] == ["CRITICAL"]
    assert ok.total_count == 3


async def test_patch_listing_newest_first_with_filters(database):
    first = await submit(database, severity="LOW")
    second = await submit(database, severity="HIGH")
    async with database.write() as session:
        await decisions.reject(session=session, actor=REVIEWER, patch_id=str(first.id), reason="no")
    async with database.read() as session:
        everything = await queue.patch_page(session=session, first=1)
        rest = await queue.patch_page(session=session, first=1, after=everything.end_cursor)
        rejected = await queue.patch_page(session=session, flt=PatchFilter(status=["REJECTED"], decided_by="rita"))
    assert [p.id for p in everything.items + rest.items] == [second.id, first.id]
    assert everything.has_next_page and not rest.has_next_page and everything.total_count == 2
    assert [p.id for p in rejected.items] == [first.id]


@pytest.mark.parametrize("first", [0, -1, 501, 10**9])
async def test_bad_page_sizes(database, first):
    async with database.read() as session:
        with pytest.raises(BadUserInput) as caught:
            await queue.pending_page(session=session, first=first, now=utcnow())
    assert caught.value.field == "first"


@pytest.mark.parametrize("cursor", ["garbage", "W10", "WyJ4Il0", "A" * 10_000, "eyJhIjoxfQ"])
async def test_bad_cursors(database, cursor):
    async with database.read() as session:
        with pytest.raises(BadUserInput):
            await queue.pending_page(session=session, after=cursor, now=utcnow())
