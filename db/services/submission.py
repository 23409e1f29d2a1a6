"""Patches entering the queue and the evidence recorded on them (wargaming, model prediction)."""

import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import PRIORITY_RANK, PatchEventKind, PatchStatus, Priority
from db.models import Patch, new_row, patch_group_key
from db.services import audit, auto_approval, patches, validation
from db.services.actor import Actor
from db.services.auto_approval import ActiveModel
from db.services.errors import BadUserInput
from db.services.policy import AT_RISK_FRACTION, Policy, required_approvals, sla_deadline
from db.types import utcnow

MAX_SHAP_VALUES = 500


@dataclass
class WargamingData:
    phase1_success: bool
    phase2_success: bool
    validation_passed: bool
    execution_time_ms: int
    error_message: str | None = None
    exploit_id: str | None = None

    def validated(self) -> dict:
        validation.int_range(self.execution_time_ms, field="executionTimeMs", low=0, high=validation.MAX_EXECUTION_MS)
        return {
            "phase1Success": bool(self.phase1_success),
            "phase2Success": bool(self.phase2_success),
            "validationPassed": bool(self.validation_passed),
            "executionTimeMs": self.execution_time_ms,
            "errorMessage": validation.text_field(self.error_message, field="errorMessage", max_length=4000, multiline=True),
            "exploitId": validation.text_field(self.exploit_id, field="exploitId", max_length=200),
        }


@dataclass
class PredictionData:
    model_version: str
    confidence: float
    prediction: bool
    execution_time_ms: float = 0.0
    shap_values: list[tuple[str, float]] = field(default_factory=list)

    def validated(self) -> dict:
        validation.text_field(self.model_version, field="modelVersion", max_length=64, required=True)
        if not (isinstance(self.confidence, (int, float)) and 0.0 <= self.confidence <= 1.0):
            raise BadUserInput("confidence must be between 0 and 1", field="confidence")
        if not math.isfinite(self.execution_time_ms) or self.execution_time_ms < 0:
            raise BadUserInput("executionTimeMs must be a non-negative number", field="executionTimeMs")
        if len(self.shap_values) > MAX_SHAP_VALUES:
            raise BadUserInput(f"shapValues has more than {MAX_SHAP_VALUES} items", field="shapValues")
        shap = []
        for name, value in self.shap_values:
            validation.text_field(name, field="shapValues", max_length=200, required=True)
            if not math.isfinite(value):
                raise BadUserInput("shapValues must be finite numbers", field="shapValues")
            shap.append({"feature": name, "value": float(value)})
        return {
            "modelVersion": self.model_version,
            "confidence": float(self.confidence),
            "prediction": bool(self.prediction),
            "shapValues": shap,
            "executionTimeMs": float(self.execution_time_ms),
            "source": "upstream",
        }


@dataclass
class SubmitPatchData:
    patch_id: str
    apv_id: str
    package_name: str
    current_version: str
    target_version: str
    cve_id: str | None = None
    severity: str | None = None
    cvss_score: float | None = None
    cvss_vector: str | None = None
    cwe_ids: list[str] = field(default_factory=list)
    affected_systems: list[str] = field(default_factory=list)
    patch_size_lines: int = 0
    diff: str | None = None
    priority: str | None = None
    ml_prediction: PredictionData | None = None
    wargaming: WargamingData | None = None


def new_ids(count: int) -> list[uuid.UUID]:
    """`count` random (version 4) UUIDs from one read of the system's random source. uuid4() reads it once per id,
    releasing the GIL each time: a worker thread building a batch then waits for the event loop's thread to hand
    the GIL back after every id (up to the 5 ms switch interval when the loop is busy)."""
    random = os.urandom(16 * count)
    return [uuid.UUID(bytes=random[16 * k:16 * (k + 1)], version=4) for k in range(count)]


def build(data: SubmitPatchData, *, actor: Actor, policy: Policy, id: uuid.UUID | None = None) -> Patch:  # noqa: A002
    limits = validation.LIMITS
    upstream_id = validation.text_field(data.patch_id, field="patchId", max_length=limits["identifier"], required=True).strip()
    package = validation.text_field(data.package_name, field="packageName", max_length=limits["package"], required=True).strip()
    current = validation.text_field(data.current_version, field="currentVersion", max_length=limits["version"], required=True).strip()
    target = validation.text_field(data.target_version, field="targetVersion", max_length=limits["version"], required=True).strip()
    scored = validation.severity_and_score(severity=data.severity, score=data.cvss_score, vector=data.cvss_vector)
    try:
        priority = Priority(data.priority) if data.priority is not None else Priority(scored.severity.value)
    except ValueError:
        raise BadUserInput(f"unknown priority {data.priority!r}", field="priority") from None
    now = utcnow()
    deadline = sla_deadline(policy, priority.value, now)
    cve = validation.cve_id(data.cve_id)
    return new_row(
        Patch,
        id=id or uuid.uuid4(),
        patch_id=upstream_id,
        apv_id=validation.text_field(data.apv_id, field="apvId", max_length=limits["identifier"], required=True).strip(),
        cve_id=cve,
        package_name=package,
        current_version=current,
        target_version=target,
        version_bump=validation.version_bump(current, target).value,
        severity=scored.severity.value,
        cvss_score=scored.score,
        cvss_vector=scored.vector,
        cwe_ids=validation.text_list(data.cwe_ids, field="cweIds", max_length=16, pattern=validation.CWE_PATTERN),
        affected_systems=validation.text_list(data.affected_systems, field="affectedSystems", max_length=limits["short_text"]),
        patch_size_lines=validation.int_range(
            data.patch_size_lines or 0, field="patchSizeLines", low=0, high=validation.MAX_PATCH_SIZE_LINES
        ),
        diff=validation.text_field(data.diff, field="diff", max_length=limits["diff"], multiline=True),
        priority=priority.value,
        priority_rank=PRIORITY_RANK[priority],
        status=PatchStatus.PENDING.value,
        ml_prediction=data.ml_prediction.validated() if data.ml_prediction else None,
        wargaming=data.wargaming.validated() if data.wargaming else None,
        submitted_by=actor.subject,
        created_at=now,
        updated_at=now,
        sla_deadline=deadline,
        sla_at_risk_at=(now + (deadline - now) * AT_RISK_FRACTION) if deadline else None,
        version=1,
        required_approvals=required_approvals(policy, scored.severity.value),
        group_key=patch_group_key(cve, package, target),
    )


def submitted_entry(patch: Patch, actor: Actor) -> audit.Entry:
    """The SUBMITTED audit entry of a new patch."""
    details = {
        "patchId": patch.patch_id,
        "status": patch.status,
        "version": patch.version,
        "packageName": patch.package_name,
        "fromVersion": patch.current_version,
        "toVersion": patch.target_version,
        "severity": patch.severity,
        "priority": patch.priority,
        "cveId": patch.cve_id,
    }
    return audit.Entry(patch.id, PatchEventKind.SUBMITTED.value, actor, details)


@dataclass
class Prepared:
    """A submission ready to be written: its row built from valid input, explained by the model, its flags derived."""

    row: Patch
    actor: Actor
    threshold: float | None  # the auto-approval threshold in force when its flags were derived


async def prepare(*, actor: Actor, data: SubmitPatchData, policy: Policy, model: ActiveModel | None = None) -> Prepared:
    """Everything a submission needs before the database: the caller's right, the input's validity, the model's
    explanation (off the event loop, batched with concurrent calls) and the flags that follow from the evidence."""
    actor.require("submit", "submitting a patch")
    patch = build(data, actor=actor, policy=policy)
    if patch.ml_prediction is None and model is not None:
        patch.ml_prediction = {**(await model.explain(patch)), "source": "model"}
    return Prepared(patch, actor, auto_approval.derive_flags(patch=patch, policy=policy, model=model))


async def write(*, session: AsyncSession, items: Sequence[Prepared]) -> list[tuple[Patch, bool]]:
    """Queue prepared submissions in the caller's transaction; (patch, created) per item, in order. Idempotent on
    patchId: an item whose patchId exists, or repeats an earlier item's, returns the stored (or earlier) patch with
    created false.

    Whatever the number of items: one INSERT (ON CONFLICT DO NOTHING, in patchId order, so that concurrent writes
    of overlapping patchIds wait on each other in one order and create each patch exactly once), one read of the
    patches that existed, and one audit append of the SUBMITTED entries with the auto-approvals that apply."""
    firsts: dict[str, Prepared] = {}
    for item in items:
        firsts.setdefault(item.row.patch_id, item)
    candidates = sorted(firsts.values(), key=lambda item: item.row.patch_id)
    inserted = await patches.insert_many(session=session, rows=[item.row for item in candidates])
    stored = await patches.get_by_patch_ids(session=session, upstream_ids=[key for key in firsts if key not in inserted])
    new = [item for item in candidates if item.row.patch_id in inserted]
    submitted = [submitted_entry(item.row, item.actor) for item in new]  # before an auto-approval changes the rows
    # From here to commit every append of every replica waits on the chain lock: a few round trips, not one per patch.
    approvals = await auto_approval.approvals_if_allowed(
        session=session, rows=[item.row for item in new], thresholds={item.row.patch_id: item.threshold for item in new}
    )
    await patches.record_many(session=session, changes=approvals, before=submitted)
    return [
        (firsts[key].row, item is firsts[key]) if (key := item.row.patch_id) in inserted else (stored[key], False)
        for item in items
    ]


async def submit(
    *, session: AsyncSession, actor: Actor, data: SubmitPatchData, policy: Policy, model: ActiveModel | None = None
) -> tuple[Patch, bool]:
    """Queue one patch in the caller's transaction; idempotent on patchId. Returns (patch, created)."""
    return (await write(session=session, items=[await prepare(actor=actor, data=data, policy=policy, model=model)]))[0]


async def record_wargaming(
    *, session: AsyncSession, actor: Actor, patch_id: str, data: WargamingData, policy: Policy, model: ActiveModel | None = None
) -> Patch:
    actor.require("record_evidence", "recording a wargaming result")
    result = data.validated()
    patch = await patches.lock(session=session, patch_id=patch_id)
    patches.require_open(patch, "record a wargaming result")
    previous = patch.wargaming
    patch.wargaming = result
    # The flags the new evidence changes are written with it, in the one UPDATE of the change.
    threshold = auto_approval.derive_flags(patch=patch, policy=policy, model=model)
    await patches.record(
        session=session,
        patch=patch,
        action=PatchEventKind.WARGAMING_RECORDED.value,
        actor=actor,
        details={"wargaming": result, "replaced": previous},
    )
    await auto_approval.approve_if_allowed(session=session, patch=patch, threshold=threshold)
    return patch
