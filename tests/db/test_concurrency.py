"""Races on a real PostgreSQL server: separate sessions, real row locks."""

import asyncio

from sqlmodel import func, select

from db.enums import Role
from db.models import AuditEntry, Patch
from db.services import audit, decisions, submission
from db.services.actor import Actor
from db.services.errors import Conflict
from tests.support.factories import POLICY, SERVICE, patch_data, submit

FINAL_ACTIONS = {"APPROVED", "REJECTED"}


async def test_twenty_concurrent_decisions_one_wins(pg_database):
    patch = await submit(pg_database)
    reviewers = [Actor(f"reviewer-{i}", frozenset({Role.REVIEWER})) for i in range(20)]

    async def decide(i: int):
        async with pg_database.write() as session:
            if i % 2:
                return await decisions.reject(session=session, actor=reviewers[i], patch_id=str(patch.id), reason="race")
            return await decisions.approve(session=session, actor=reviewers[i], patch_id=str(patch.id))

    results = await asyncio.gather(*(decide(i) for i in range(20)), return_exceptions=True)
    successes = [r for r in results if not isinstance(r, Exception)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(successes) == 1 and len(conflicts) == 19, results
    final = successes[0]
    assert all(c.extensions == {"currentStatus": final.status, "currentVersion": 2} for c in conflicts)
    async with pg_database.read() as session:
        actions = (await session.exec(select(AuditEntry.action).where(AuditEntry.decision_id == patch.id))).all()
        assert sorted(actions) == sorted(["SUBMITTED", final.status])
        assert (await audit.verify_chain(session=session)).valid


async def test_concurrent_distinct_approvers_on_critical(pg_database):
    patch = await submit(pg_database, severity="CRITICAL", target_version="2.31.1")
    reviewers = [Actor(f"reviewer-{i}", frozenset({Role.REVIEWER})) for i in range(6)]

    async def approve(actor):
        async with pg_database.write() as session:
            return await decisions.approve(session=session, actor=actor, patch_id=str(patch.id))

    results = await asyncio.gather(*(approve(a) for a in reviewers), return_exceptions=True)
    ok = [r for r in results if not isinstance(r, Exception)]
    assert len(ok) == 2 and all(isinstance(r, Conflict) for r in results if r not in ok)
    assert sorted(r.status for r in ok) == ["APPROVED", "PENDING"]


async def test_ten_concurrent_submits_of_one_patch_id(pg_database):
    data = patch_data()

    async def submit_once():
        async with pg_database.write() as session:
            return await submission.submit(session=session, actor=SERVICE, data=data, policy=POLICY)

    results = await asyncio.gather(*(submit_once() for _ in range(10)))
    assert sorted(created for _, created in results) == [False] * 9 + [True]
    assert len({patch.id for patch, _ in results}) == 1
    async with pg_database.read() as session:
        assert (await session.exec(select(func.count()).select_from(Patch).where(Patch.patch_id == data.patch_id))).one() == 1
        assert (await session.exec(select(func.count()).select_from(AuditEntry))).one() == 1


async def test_concurrent_appends_keep_a_linear_chain(pg_database):
    async def submit_many(n):
        for _ in range(n):
            await submit(pg_database)

    await asyncio.gather(*(submit_many(10) for _ in range(8)))
    async with pg_database.read() as session:
        report = await audit.verify_chain(session=session)
    assert report.valid and report.entries_checked == 80
