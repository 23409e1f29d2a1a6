"""Actors and patch factories for tests: everything goes through the domain services."""

import itertools
import random
from dataclasses import replace
from typing import Any

from db.engine import Database
from db.enums import Role
from db.models import Patch
from db.services import auto_approval, comments, decisions, submission
from db.services.actor import Actor
from db.services.errors import DomainError
from db.services.policy import Policy
from db.services.submission import PredictionData, SubmitPatchData, WargamingData

SERVICE = Actor("service:upstream", frozenset({Role.SERVICE}), "10.0.0.1", "wargaming-crisol/1.0")
VIEWER = Actor("vera", frozenset({Role.VIEWER}))
REVIEWER = Actor("rita", frozenset({Role.REVIEWER}), "192.0.2.10", "pytest")
REVIEWER2 = Actor("rob", frozenset({Role.REVIEWER}))
LEAD = Actor("lena", frozenset({Role.LEAD}))
ADMIN = Actor("adam", frozenset({Role.ADMIN}))
POLICY = Policy()

_numbers = itertools.count(1)


def patch_data(**overrides: Any) -> SubmitPatchData:
    n = next(_numbers)
    data = SubmitPatchData(
        patch_id=f"PATCH-{n:06d}",
        apv_id=f"APV-{n:06d}",
        cve_id=f"CVE-2024-{10000 + n}",
        package_name="requests",
        current_version="2.31.0",
        target_version="2.32.0",
        severity="HIGH",
        cwe_ids=["CWE-79"],
        affected_systems=["billing"],
        patch_size_lines=12,
    )
    return replace(data, **overrides)


def passing_wargaming() -> WargamingData:
    return WargamingData(phase1_success=True, phase2_success=True, validation_passed=True, execution_time_ms=4200, exploit_id="EXP-1")


def confident_prediction(confidence: float = 0.99, prediction: bool = True) -> PredictionData:
    return PredictionData(model_version="upstream-1", confidence=confidence, prediction=prediction, execution_time_ms=1.5)


async def submit(db: Database, *, actor: Actor = SERVICE, policy: Policy = POLICY, model: Any = None, **overrides: Any) -> Patch:
    async with db.write() as session:
        patch, _ = await submission.submit(session=session, actor=actor, data=patch_data(**overrides), policy=policy, model=model)
        return patch


async def mixed_operations(db: Database, count: int) -> None:
    """`count` random changes of every kind (seeded), refusals included: a realistic audit history."""
    rng = random.Random(7)
    reviewers = [Actor(f"rev-{i}", frozenset({Role.REVIEWER})) for i in range(5)]
    open_ids: list[str] = []
    done = 0
    while done < count:
        choice = rng.random()
        try:
            async with db.write() as session:
                if choice < 0.3 or not open_ids:
                    patch, _ = await submission.submit(
                        session=session, actor=SERVICE, data=patch_data(), policy=POLICY
                    )
                    open_ids.append(str(patch.id))
                elif choice < 0.45:
                    await submission.record_wargaming(
                        session=session, actor=SERVICE, patch_id=rng.choice(open_ids), data=passing_wargaming(), policy=POLICY
                    )
                elif choice < 0.65:
                    await comments.add(session=session, actor=rng.choice(reviewers), patch_id=rng.choice(open_ids), body="looks fine")
                elif choice < 0.8:
                    target = open_ids.pop(rng.randrange(len(open_ids)))
                    await decisions.approve(session=session, actor=rng.choice(reviewers), patch_id=target)
                elif choice < 0.9:
                    target = open_ids.pop(rng.randrange(len(open_ids)))
                    await decisions.reject(session=session, actor=LEAD, patch_id=target, reason="no")
                elif choice < 0.97:
                    await decisions.escalate(session=session, actor=LEAD, patch_id=rng.choice(open_ids), reason="look")
                else:
                    await auto_approval.set_paused(session=session, actor=ADMIN, paused=rng.random() < 0.5, reason="drill")
            done += 1
        except DomainError:
            pass  # an expected refusal (e.g. escalating an escalated patch) writes nothing
