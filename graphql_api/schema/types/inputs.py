"""GraphQL inputs and their conversion to the services' data classes."""

from datetime import datetime

import strawberry

from db.services import audit_checkpoints, audit_log, queue, submission
from graphql_api.schema.types.enums import PatchEventKind, PatchStatus, Priority, Severity, SlaStatus


@strawberry.input
class FeatureContributionInput:
    feature: str
    value: float


@strawberry.input
class MlPredictionInput:
    model_version: str
    confidence: float
    prediction: bool
    shap_values: list[FeatureContributionInput] = strawberry.field(default_factory=list)
    execution_time_ms: float = 0.0

    def to_data(self) -> submission.PredictionData:
        return submission.PredictionData(
            model_version=self.model_version,
            confidence=self.confidence,
            prediction=self.prediction,
            execution_time_ms=self.execution_time_ms,
            shap_values=[(item.feature, item.value) for item in self.shap_values],
        )


@strawberry.input
class WargamingInput:
    phase1_success: bool
    phase2_success: bool
    validation_passed: bool
    execution_time_ms: int
    error_message: str | None = None
    exploit_id: str | None = None

    def to_data(self) -> submission.WargamingData:
        return submission.WargamingData(
            phase1_success=self.phase1_success,
            phase2_success=self.phase2_success,
            validation_passed=self.validation_passed,
            execution_time_ms=self.execution_time_ms,
            error_message=self.error_message,
            exploit_id=self.exploit_id,
        )


@strawberry.input
class SubmitPatchInput:
    patch_id: str
    apv_id: str
    package_name: str
    current_version: str
    target_version: str
    cve_id: str | None = None
    severity: Severity | None = None
    cvss_score: float | None = None
    cvss_vector: str | None = None
    cwe_ids: list[str] | None = None
    affected_systems: list[str] | None = None
    patch_size_lines: int | None = None
    diff: str | None = None
    priority: Priority | None = None
    ml_prediction: MlPredictionInput | None = None
    wargaming: WargamingInput | None = None

    def to_data(self) -> submission.SubmitPatchData:
        return submission.SubmitPatchData(
            patch_id=self.patch_id,
            apv_id=self.apv_id,
            package_name=self.package_name,
            current_version=self.current_version,
            target_version=self.target_version,
            cve_id=self.cve_id,
            severity=self.severity.value if self.severity else None,
            cvss_score=self.cvss_score,
            cvss_vector=self.cvss_vector,
            cwe_ids=list(self.cwe_ids or []),
            affected_systems=list(self.affected_systems or []),
            patch_size_lines=self.patch_size_lines or 0,
            diff=self.diff,
            priority=self.priority.value if self.priority else None,
            ml_prediction=self.ml_prediction.to_data() if self.ml_prediction else None,
            wargaming=self.wargaming.to_data() if self.wargaming else None,
        )


@strawberry.input
class PendingFilter:
    priority: list[Priority] | None = None
    severity: list[Severity] | None = None
    package_name: str | None = None
    cve_id: str | None = None
    sla_status: SlaStatus | None = None

    def to_filter(self) -> queue.PendingFilter:
        return queue.PendingFilter(
            priority=[p.value for p in self.priority or []],
            severity=[s.value for s in self.severity or []],
            package_name=self.package_name,
            cve_id=self.cve_id,
            sla_status=self.sla_status.value if self.sla_status else None,
        )


@strawberry.input
class PatchFilter:
    status: list[PatchStatus] | None = None
    severity: list[Severity] | None = None
    decided_by: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def to_filter(self) -> queue.PatchFilter:
        return queue.PatchFilter(
            status=[s.value for s in self.status or []],
            severity=[s.value for s in self.severity or []],
            decided_by=self.decided_by,
            created_after=self.created_after,
            created_before=self.created_before,
        )


@strawberry.input
class AuditFilter:
    decision_id: strawberry.ID | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def to_filter(self) -> audit_log.AuditFilter:
        return audit_log.AuditFilter(decision_id=self.decision_id, actor=self.actor, action=self.action, since=self.since, until=self.until)


@strawberry.input(description="A signed audit checkpoint, as the service wrote it in its log line (the line pastes as it is).")
class AuditCheckpointInput:
    seq: int
    hash: str
    at: datetime
    signature: str
    event: str | None = strawberry.field(default=None, description='The log line\'s own "audit_checkpoint" (optional).')

    def to_claim(self, index: int) -> audit_checkpoints.Claim:
        return audit_checkpoints.Claim(self.seq, self.hash, self.at, self.signature, self.event, f"checkpoints[{index}]")


@strawberry.input
class PatchEventFilter:
    kinds: list[PatchEventKind] | None = None
    decision_id: strawberry.ID | None = None
