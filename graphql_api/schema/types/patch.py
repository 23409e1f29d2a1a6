"""The Patch type and the evidence attached to it."""

from datetime import datetime
from typing import TYPE_CHECKING

import strawberry
from strawberry.scalars import JSON

from db import enums
from db import models
from db.services.policy import sla_status
from graphql_api.schema.types.enums import PatchStatus, Priority, Severity, SlaStatus, VersionBump

if TYPE_CHECKING:
    from graphql_api.schema.context import Context


@strawberry.type
class FeatureContribution:
    feature: str
    value: float


@strawberry.type
class MlPrediction:
    model_version: str
    confidence: float
    prediction: bool
    shap_values: list[FeatureContribution]
    execution_time_ms: float

    @classmethod
    def from_dict(cls, data: dict) -> "MlPrediction":
        return cls(
            model_version=data["modelVersion"],
            confidence=data["confidence"],
            prediction=data["prediction"],
            shap_values=[FeatureContribution(feature=item["feature"], value=item["value"]) for item in data.get("shapValues", [])],
            execution_time_ms=data.get("executionTimeMs", 0.0),
        )


@strawberry.type
class WargamingResult:
    phase1_success: bool
    phase2_success: bool
    validation_passed: bool
    execution_time_ms: int
    error_message: str | None
    exploit_id: str | None

    @classmethod
    def from_dict(cls, data: dict) -> "WargamingResult":
        return cls(
            phase1_success=data["phase1Success"],
            phase2_success=data["phase2Success"],
            validation_passed=data["validationPassed"],
            execution_time_ms=data["executionTimeMs"],
            error_message=data.get("errorMessage"),
            exploit_id=data.get("exploitId"),
        )


@strawberry.type
class Approval:
    approver: str
    at: datetime
    comment: str | None

    @classmethod
    def from_model(cls, row: models.Approval) -> "Approval":
        return cls(approver=row.approver, at=row.at, comment=row.comment)


@strawberry.type
class Comment:
    id: strawberry.ID
    author: str
    body: str
    parent_id: strawberry.ID | None
    created_at: datetime

    @classmethod
    def from_model(cls, row: models.Comment) -> "Comment":
        return cls(
            id=strawberry.ID(str(row.id)),
            author=row.author,
            body=row.body,
            parent_id=strawberry.ID(str(row.parent_id)) if row.parent_id else None,
            created_at=row.created_at,
        )


@strawberry.type
class AuditEntry:
    seq: int
    decision_id: strawberry.ID
    action: str
    actor: str
    at: datetime
    details: JSON
    ip_address: str | None
    user_agent: str | None
    hash: str
    prev_hash: str

    @classmethod
    def from_model(cls, row: models.AuditEntry) -> "AuditEntry":
        return cls(
            seq=row.seq,
            decision_id=strawberry.ID(str(row.decision_id)),
            action=row.action,
            actor=row.actor,
            at=row.at,
            details=row.details,
            ip_address=row.ip_address,
            user_agent=row.user_agent,
            hash=row.hash,
            prev_hash=row.prev_hash,
        )


# Mapped when asked for: a page or a batch's answer rarely selects the evidence (the explanation is a list of objects).
def _ml_prediction(root: "Patch") -> MlPrediction | None:
    return MlPrediction.from_dict(root.row.ml_prediction) if root.row.ml_prediction else None


def _wargaming(root: "Patch") -> WargamingResult | None:
    return WargamingResult.from_dict(root.row.wargaming) if root.row.wargaming else None


@strawberry.type
class Patch:
    id: strawberry.ID
    patch_id: str
    apv_id: str
    cve_id: str | None
    package_name: str
    current_version: str
    target_version: str
    version_bump: VersionBump
    severity: Severity
    cvss_score: float | None
    cvss_vector: str | None
    cwe_ids: list[str]
    affected_systems: list[str]
    patch_size_lines: int
    diff: str | None
    priority: Priority
    status: PatchStatus
    ml_prediction: MlPrediction | None = strawberry.field(resolver=_ml_prediction)
    wargaming: WargamingResult | None = strawberry.field(resolver=_wargaming)
    ml_wargaming_agreement: bool | None
    auto_approval_eligible: bool
    requires_escalation: bool
    decided_by: str | None
    decided_at: datetime | None
    deployment_outcome: bool | None
    reason: str | None
    comment: str | None
    created_at: datetime
    updated_at: datetime
    age_seconds: int
    sla_deadline: datetime | None
    sla_status: SlaStatus
    version: int
    required_approvals: int
    row: strawberry.Private[models.Patch]

    @strawberry.field
    async def approvals(self, info: strawberry.Info["Context", None]) -> list[Approval]:
        return [Approval.from_model(row) for row in await info.context.loaders.approvals.load(self.row.id)]

    @strawberry.field
    async def comments(self, info: strawberry.Info["Context", None]) -> list[Comment]:
        return [Comment.from_model(row) for row in await info.context.loaders.comments.load(self.row.id)]

    @strawberry.field
    async def audit_trail(self, info: strawberry.Info["Context", None]) -> list[AuditEntry]:
        return [AuditEntry.from_model(row) for row in await info.context.loaders.audit_trails.load(self.row.id)]

    @classmethod
    def from_model(cls, row: models.Patch, now: datetime) -> "Patch":
        values = _column_values(row)
        return cls(
            **{name: values[name] for name in _AS_STORED},
            id=strawberry.ID(str(values["id"])),
            version_bump=_VERSION_BUMPS[values["version_bump"]],
            severity=_SEVERITIES[values["severity"]],
            priority=_PRIORITIES[values["priority"]],
            status=_STATUSES[values["status"]],
            cwe_ids=list(values["cwe_ids"]),
            affected_systems=list(values["affected_systems"]),
            age_seconds=max(int((now - values["created_at"]).total_seconds()), 0),
            sla_status=sla_status(row, now),
            row=row,
        )


# Every page, batch answer and live page maps its rows here: read the loaded values from the instance's dict (a
# dict lookup, against ~0.7 µs through the ORM's attribute descriptor) and the enums from tables.
_PATCH_COLUMNS = frozenset(column.key for column in models.Patch.__mapper__.column_attrs)
_AS_STORED = (  # the fields that are the column's value as it is
    "patch_id", "apv_id", "cve_id", "package_name", "current_version", "target_version", "cvss_score", "cvss_vector",
    "patch_size_lines", "diff", "ml_wargaming_agreement", "auto_approval_eligible", "requires_escalation", "decided_by",
    "decided_at", "deployment_outcome", "reason", "comment", "created_at", "updated_at", "sla_deadline", "version",
    "required_approvals",
)
_VERSION_BUMPS = {member.value: member for member in enums.VersionBump}
_SEVERITIES = {member.value: member for member in enums.Severity}
_PRIORITIES = {member.value: member for member in enums.Priority}
_STATUSES = {member.value: member for member in enums.PatchStatus}


def _column_values(row: models.Patch) -> dict:
    """The row's column values: its instance dict when every column is loaded, else read through the ORM (which
    loads what was expired)."""
    values = row.__dict__
    if _PATCH_COLUMNS <= values.keys():
        return values
    return {name: getattr(row, name) for name in _PATCH_COLUMNS}
