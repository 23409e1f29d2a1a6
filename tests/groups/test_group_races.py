"""Group decisions racing each other and single decisions on a real PostgreSQL server: each member decided once."""

import asyncio
from collections import Counter

from sqlmodel import select

from db.enums import Role
from db.models import AuditEntry
from db.services import audit, decisions, group_decisions
from db.services.actor import Actor
from db.services.errors import Conflict
from tests.support.factories import submit

FIX = {"cve_id": "CVE-2021-44228", "package_name": "log4j-core", "current_version": "2.14.1", "target_version": "2.17.1"}
FINAL = {"APPROVED", "REJECTED"}
REVIEWERS = [Actor(f"reviewer-{i}", frozenset({Role.REVIEWER})) for i in range(8)]


async def _final_decisions(db) -> Counter:
    async with db.read() as session:
        rows = (await session.exec(select(AuditEntry.decision_id, AuditEntry.action))).all()
        assert (await audit.verify_chain(session=session)).valid
    return Counter(decision_id for decision_id, action in rows if action in FINAL)


async def test_concurrent_group_decisions_decide_each_member_once(pg_database):
    members = [await submit(pg_database, **FIX) for _ in range(30)]
    key = members[0].group_key

    async def decide(i: int):
        async with pg_database.write() as session:
            decision = group_decisions.GroupDecision.APPROVE if i % 2 else group_decisions.GroupDecision.REJECT
            return await group_decisions.decide_group(session=session, actor=REVIEWERS[i], key=key, decision=decision, reason="race")

    outcomes = await asyncio.gather(*(decide(i) for i in range(6)))
    applied = [row.id for outcome in outcomes for row in outcome.applied]
    assert sorted(applied) == sorted(member.id for member in members)  # every member once, by one of the six
    assert sorted(len(outcome.applied) for outcome in outcomes) == [0] * 5 + [30]
    counts = await _final_decisions(pg_database)
    assert all(counts[member.id] == 1 for member in members)


async def test_group_decision_racing_single_decisions(pg_database):
    members = [await submit(pg_database, **FIX) for _ in range(40)]
    key = members[0].group_key

    async def group():
        async with pg_database.write() as session:
            return await group_decisions.decide_group(session=session, actor=REVIEWERS[0], key=key, decision=group_decisions.GroupDecision.APPROVE)

    async def single(i: int, member):
        async with pg_database.write() as session:
            return await decisions.reject(session=session, actor=REVIEWERS[1 + i % 7], patch_id=str(member.id), reason="single")

    results = await asyncio.gather(group(), *(single(i, member) for i, member in enumerate(members[::2])), return_exceptions=True)
    outcome, singles = results[0], results[1:]
    assert not isinstance(outcome, BaseException), outcome
    assert all(isinstance(result, Conflict) or result.status == "REJECTED" for result in singles), singles
    won_singly = {result.id for result in singles if not isinstance(result, BaseException)}
    assert won_singly.isdisjoint(row.id for row in outcome.applied)
    assert won_singly | {row.id for row in outcome.applied} == {member.id for member in members}
    counts = await _final_decisions(pg_database)
    assert all(counts[member.id] == 1 for member in members)


async def test_expected_members_race_one_wins(pg_database):
    members = [await submit(pg_database, **FIX) for _ in range(10)]
    expected = [str(member.id) for member in members]

    async def decide(actor):
        async with pg_database.write() as session:
            return await group_decisions.decide_group(
                session=session, actor=actor, key=members[0].group_key, decision=group_decisions.GroupDecision.APPROVE,
                expected_member_ids=expected,
            )

    results = await asyncio.gather(*(decide(actor) for actor in REVIEWERS[:4]), return_exceptions=True)
    assert sum(not isinstance(result, BaseException) for result in results) == 1
    assert all(isinstance(result, Conflict) for result in results if isinstance(result, BaseException))
    counts = await _final_decisions(pg_database)
    assert all(counts[member.id] == 1 for member in members)
