"""The auto-approval guard's scenarios: a model trained on SYNTHETIC history, then a stream of new patches
(ml.synthetic, with or without a regime shift) whose ground truth is the deployment outcome reported."""

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

from db.engine import Database
from db.models import MlModel, Patch
from db.services import auto_approval, decisions, guard, submission
from db.services.policy import Policy
from db.services.submission import SubmitPatchData, WargamingData
from ml.predictor import Predictor
from ml.synthetic import RegimeShift, generate_patches, generate_submissions
from ml.train import TrainedModel, train_model
from tests.support.factories import SERVICE

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
HISTORY_SEED, HISTORY_SIZE = 7, 3000
SHIFT = RegimeShift()


@lru_cache(maxsize=1)
def trained() -> TrainedModel:
    """The model of every scenario (trained once per test process: ~3 s)."""
    return train_model(generate_patches(HISTORY_SIZE, seed=HISTORY_SEED, now=NOW), seed=42, version="xgb-guard-scenario", nthread=1)


def model_row(version: str | None = None) -> MlModel:
    """The scenario's model as a registry row (training profile included), not yet stored."""
    model = trained()
    return MlModel(version=version or model.version, training_samples=model.training_samples, threshold=model.threshold,
                   metrics=dict(model.metrics), feature_names=model.feature_names, artifact=model.artifact,
                   feature_profile=model.feature_profile, created_by="adam")


def predictor(model: TrainedModel | None = None) -> Predictor:
    model = model or trained()
    return Predictor.from_artifact(model.artifact, version=model.version, feature_names=model.feature_names, threshold=model.threshold)


@lru_cache(maxsize=16)
def stream(n: int, *, seed: int, shift: RegimeShift | None = None) -> list[tuple[Patch, bool]]:
    """Generated once per process: a replay sets every field it judges, and a submission reads only the evidence."""
    return generate_submissions(n, seed=seed, now=NOW, shift=shift)


def submission_data(patch: Patch) -> SubmitPatchData:
    """A generated patch's evidence as upstream submits it (no prediction: the service predicts)."""
    w = patch.wargaming
    return SubmitPatchData(
        patch_id=patch.patch_id, apv_id=patch.apv_id, cve_id=patch.cve_id, package_name=patch.package_name,
        current_version=patch.current_version, target_version=patch.target_version, severity=patch.severity,
        cvss_score=patch.cvss_score, cvss_vector=patch.cvss_vector, cwe_ids=list(patch.cwe_ids),
        affected_systems=list(patch.affected_systems), patch_size_lines=patch.patch_size_lines, diff=patch.diff,
        wargaming=WargamingData(
            phase1_success=w["phase1Success"], phase2_success=w["phase2Success"], validation_passed=w["validationPassed"],
            execution_time_ms=w["executionTimeMs"], error_message=w["errorMessage"], exploit_id=w["exploitId"],
        ) if w else None,
    )


async def submit_and_report(db: Database, items: list[tuple[Patch, bool]], model: Predictor, *, until_paused: bool = True,
                            policy: Policy = Policy()) -> tuple[int, int, bool]:
    """Submit each patch through the domain service (the service predicts) and report each auto-approved one's true
    outcome: (auto-approved, of which failed, paused at the end)."""
    approved = failed = 0
    for patch, works in items:
        async with db.write() as session:
            row, _ = await submission.submit(session=session, actor=SERVICE, data=submission_data(patch), policy=policy, model=model)
        if row.status != "AUTO_APPROVED":
            continue
        approved += 1
        failed += not works
        async with db.write() as session:
            await decisions.record_outcome(session=session, actor=SERVICE, patch_id=str(row.id), success=works, policy=policy)
            if until_paused and (await auto_approval.pause_state(session=session)).paused:
                return approved, failed, True
    async with db.read() as session:
        return approved, failed, (await auto_approval.pause_state(session=session)).paused


@dataclass
class Replay:
    submitted: int = 0
    auto_approved: int = 0
    failures: int = 0  # auto-approved patches that did not work, up to the trip
    tripped_at_outcome: int | None = None  # the outcome (1-based) that tripped the guard
    reason: str | None = None


def replay(model: Predictor, items: list[tuple[Patch, bool]], policy: Policy, *, max_outcomes: int | None = None) -> Replay:
    """The service's own rules without a database: the policy decides what is auto-approved (derive_flags), each
    auto-approved patch's outcome is reported at once, and guard.trip_reason judges the window after each one."""
    probabilities = model.probabilities([patch for patch, _ in items])
    window: deque[bool] = deque(maxlen=policy.guard_window)
    result = Replay()
    for (patch, works), p in zip(items, probabilities, strict=True):
        result.submitted += 1
        patch.status = "PENDING"  # as submitted: the generated history's own verdict is not the service's
        patch.ml_prediction = {"modelVersion": model.version, "confidence": p if p >= 0.5 else 1 - p, "prediction": bool(p >= 0.5)}
        auto_approval.derive_flags(patch=patch, policy=policy, model=model)
        if not patch.auto_approval_eligible:
            continue
        result.auto_approved += 1
        result.failures += not works
        window.append(works)
        reason = guard.trip_reason(guard.Window(model.version, len(window), window.count(False)), policy)
        if reason is not None:
            result.tripped_at_outcome, result.reason = result.auto_approved, reason
            return result
        if max_outcomes is not None and result.auto_approved >= max_outcomes:
            break
    return result


def measure(*, unshifted_seeds: range = range(100, 120), shifted_seeds: range = range(11, 21), outcomes: int = 2000) -> None:
    """The README's figures: `python -m tests.support.guard` (about ten minutes on 2 shared cores). A replay sets every
    field it judges, so each setting replays the same generated streams."""
    model = predictor()
    unshifted = [stream(12_000, seed=s) for s in unshifted_seeds]
    shifted_streams = [stream(3000, seed=s, shift=SHIFT) for s in shifted_seeds]
    settings = [(f"HITL_GUARD_MAX_FAILURES={n}", Policy(guard_max_failures=n)) for n in (3, 4, 5, 6)]
    for name, policy in [*settings, ("bound alone", Policy(guard_max_failures=10**9))]:
        quiet = [replay(model, items, policy, max_outcomes=outcomes) for items in unshifted]
        shifted = [replay(model, items, policy) for items in shifted_streams]
        print(f"{name}: unshifted seeds {unshifted_seeds.start}-{unshifted_seeds.stop - 1}: false trips "
              f"{sum(r.tripped_at_outcome is not None for r in quiet)} of {len(quiet)} runs "
              f"({sum(r.auto_approved for r in quiet)} outcomes, {sum(r.failures for r in quiet)} failed); "
              f"shifted seeds {shifted_seeds.start}-{shifted_seeds.stop - 1}: bad patches before the trip "
              f"{[r.failures for r in shifted]}, trip at outcome {[r.tripped_at_outcome for r in shifted]}", flush=True)


if __name__ == "__main__":
    measure()
