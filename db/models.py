"""SQLModel tables. Timestamps are aware UTC; JSON columns hold the nested evidence of a patch."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from db.types import UtcDateTime, utcnow

# Audit entries that concern the whole service (e.g. the auto-approval pause) carry this decision id.
SYSTEM_DECISION_ID = uuid.UUID(int=0)
GENESIS_HASH = "0" * 64

OPEN_STATUS_SQL = "status IN ('PENDING', 'ESCALATED')"


def column_values(row: SQLModel) -> dict[str, Any]:
    """Every column of a table row, for a Core INSERT of it."""
    return {column.name: getattr(row, column.name) for column in row.__table__.columns}


def _ts(**kw: Any) -> Any:
    return Field(sa_type=UtcDateTime(), **kw)


class Patch(SQLModel, table=True):
    __tablename__ = "patches"
    __table_args__ = (
        # The pending queue: only open patches, already in queue order (no sort of the whole table).
        Index(
            "ix_patches_pending_queue",
            "priority_rank",
            "created_at",
            "id",
            postgresql_where=text(OPEN_STATUS_SQL),
            sqlite_where=text(OPEN_STATUS_SQL),
        ),
        Index("ix_patches_created", "created_at", "id"),
        Index("ix_patches_status", "status"),
        Index(
            "ix_patches_sla_watch",
            "sla_deadline",
            postgresql_where=text(f"{OPEN_STATUS_SQL} AND sla_breached_at IS NULL"),
            sqlite_where=text(f"{OPEN_STATUS_SQL} AND sla_breached_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patch_id: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    apv_id: str = Field(max_length=200)
    cve_id: str | None = Field(default=None, max_length=64)
    package_name: str = Field(max_length=214)
    current_version: str = Field(max_length=100)
    target_version: str = Field(max_length=100)
    version_bump: str = Field(max_length=16)
    severity: str = Field(max_length=16)
    cvss_score: float | None = None
    cvss_vector: str | None = Field(default=None, max_length=512)
    cwe_ids: list[str] = Field(default_factory=list, sa_type=JSON)
    affected_systems: list[str] = Field(default_factory=list, sa_type=JSON)
    patch_size_lines: int = 0
    diff: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    priority: str = Field(max_length=16)
    priority_rank: int
    status: str = Field(max_length=16)
    # {"modelVersion", "confidence", "prediction", "shapValues": [{"feature", "value"}], "executionTimeMs", "source"}
    ml_prediction: dict | None = Field(default=None, sa_type=JSON)
    # {"phase1Success", "phase2Success", "validationPassed", "executionTimeMs", "errorMessage", "exploitId"}
    wargaming: dict | None = Field(default=None, sa_type=JSON)
    ml_wargaming_agreement: bool | None = None  # derived: null until both a prediction and a wargaming result exist
    auto_approval_eligible: bool = False
    requires_escalation: bool = False
    submitted_by: str = Field(max_length=200)
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = _ts(default=None)
    deployment_outcome: bool | None = None
    outcome_details: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    outcome_at: datetime | None = _ts(default=None)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)
    sla_deadline: datetime | None = _ts(default=None)
    sla_at_risk_at: datetime | None = _ts(default=None)
    sla_breached_at: datetime | None = _ts(default=None)
    version: int = 1
    required_approvals: int = 1


class Approval(SQLModel, table=True):
    __tablename__ = "approvals"
    # The database itself refuses the same person approving one patch twice.
    __table_args__ = (UniqueConstraint("patch_id", "approver", name="uq_approvals_patch_approver"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patch_id: uuid.UUID = Field(sa_column=Column(ForeignKey("patches.id", ondelete="RESTRICT"), nullable=False, index=True))
    approver: str = Field(max_length=200)
    at: datetime = _ts(default_factory=utcnow)
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Comment(SQLModel, table=True):
    __tablename__ = "comments"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patch_id: uuid.UUID = Field(sa_column=Column(ForeignKey("patches.id", ondelete="RESTRICT"), nullable=False, index=True))
    parent_id: uuid.UUID | None = Field(default=None, sa_column=Column(ForeignKey("comments.id"), nullable=True))
    author: str = Field(max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts(default_factory=utcnow)


class AuditEntry(SQLModel, table=True):
    """Append-only and hash-chained; `seq` is also the event cursor."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_decision_seq", "decision_id", "seq"),)

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    decision_id: uuid.UUID = Field(index=False)
    action: str = Field(max_length=64)
    actor: str = Field(max_length=200)
    at: datetime = _ts(default_factory=utcnow)
    details: dict = Field(default_factory=dict, sa_type=JSON)
    ip_address: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=512)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class MlModel(SQLModel, table=True):
    __tablename__ = "ml_models"
    __table_args__ = (
        # At most one active model.
        Index("uq_ml_models_active", "active", unique=True, postgresql_where=text("active"), sqlite_where=text("active")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    version: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    trained_at: datetime = _ts(default_factory=utcnow)
    training_samples: int
    # None when auto-approval is off for this model (the reason is in metrics["autoApproval"]).
    threshold: float | None = None
    metrics: dict = Field(default_factory=dict, sa_type=JSON)
    feature_names: list[str] = Field(default_factory=list, sa_type=JSON)
    artifact: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # xgboost UBJSON, never pickle
    active: bool = False
    created_by: str = Field(max_length=200)


class ServiceState(SQLModel, table=True):
    """Small keyed documents that every replica reads from the database (e.g. the auto-approval pause)."""

    __tablename__ = "service_state"

    key: str = Field(primary_key=True, max_length=64)
    value: dict = Field(default_factory=dict, sa_type=JSON)
    updated_at: datetime = _ts(default_factory=utcnow)
    updated_by: str | None = Field(default=None, max_length=200)


class PatchStatusDelta(SQLModel, table=True):
    """Running patch counts per status, kept by database triggers on `patches` (migration 0002).

    Writers only append (+1/-1 per status change, no row is shared, so no lock is contended);
    `status_counts.compact` folds the rows into one per status now and then. The queue's total is
    a sum over a handful of rows instead of a count over every open patch.
    """

    __tablename__ = "patch_status_deltas"

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True))
    status: str = Field(max_length=16)
    delta: int = Field(sa_column=Column(BigInteger, nullable=False))
