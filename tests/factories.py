"""Actors and patch factories for tests: everything goes through the domain services."""

import itertools
from dataclasses import replace
from typing import Any

from db.engine import Database
from db.enums import Role
from db.models import Patch
from db.services import submission
from db.services.actor import Actor
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
