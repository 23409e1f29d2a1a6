"""SQLModel tables. Timestamps are aware UTC; JSON columns hold the nested evidence of a patch."""

import copy
import functools
import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import configure_mappers
from sqlmodel import Field, SQLModel

from db.types import UtcDateTime, utcnow

# Audit entries that concern the whole service (e.g. the auto-approval pause) carry this decision id.
SYSTEM_DECISION_ID = uuid.UUID(int=0)
GENESIS_HASH = "0" * 64
M = TypeVar("M", bound=SQLModel)

OPEN_STATUS_SQL = "status IN ('PENDING', 'ESCALATED')"
OPEN_GROUP_MEMBER_SQL = f"{OPEN_STATUS_SQL} AND group_key IS NOT NULL"
WEBHOOK_OPEN_SQL = "status IN ('PENDING', 'RETRYING')"


def patch_group_key(cve_id: str | None, package_name: str, target_version: str) -> str:
    """The opaque, stable key of a patch group (one fix, many services). None of the three values may hold a
    line break (validation), so the joined text names exactly one triple; migration 0006 computes the same in SQL."""
    joined = f"{cve_id or ''}\n{package_name}\n{target_version}"
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def column_values(row: SQLModel) -> dict[str, Any]:
    """Every column of a table row, for a Core INSERT of it (read from the instance's dict where it is loaded)."""
    loaded = row.__dict__
    return {name: loaded[name] if name in loaded else getattr(row, name) for name in _column_names(type(row))}


@functools.cache
def _column_names(model: type[SQLModel]) -> tuple[str, ...]:
    return tuple(column.name for column in model.__table__.columns)


@functools.cache
def _column_defaults(model: type[SQLModel]) -> dict[str, Callable[[], Any] | None]:
    """Each column's default as a factory; None for a column without one (a value is required)."""
    configure_mappers()  # what the first model(...) would do: new_row builds past __init__
    fields = model.model_fields
    found: dict[str, Callable[[], Any] | None] = {}
    for name in _column_names(model):
        field = fields[name]
        if field.default_factory is not None:
            found[name] = field.default_factory
        elif field.is_required():
            found[name] = None
        else:
            found[name] = functools.partial(copy.copy, field.default)
    return found


def new_row(model: type[M], **values: Any) -> M:
    """A new row built the way the ORM builds a loaded one: every column in the instance's dict (its default where
    not given), without the attribute events of `model(**values)` (~40 for a patch, ~150 µs, most of building
    one). It has no pending changes, so it suits a row INSERTed through Core (db.services.patches.insert_many):
    a later change to it is a change from the inserted values."""
    defaults = _column_defaults(model)
    if unknown := values.keys() - defaults.keys():
        raise TypeError(f"{model.__name__} has no column {', '.join(sorted(unknown))}")
    row = model._sa_class_manager.new_instance()
    loaded = row.__dict__
    for name, default in defaults.items():
        if name in values:
            loaded[name] = values[name]
        elif default is None:
            raise TypeError(f"{model.__name__}.{name} is required")
        else:
            loaded[name] = default()
    return row


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
        # Patch groups: one group's members in queue order, and its counts (db.services.groups).
        Index("ix_patches_group", "group_key", "priority_rank", "created_at", "id"),
        # The groups page: each group's most urgent open member and the number of groups, from the index alone.
        Index(
            "ix_patches_open_group",
            "group_key",
            "priority_rank",
            "created_at",
            "id",
            postgresql_where=text(OPEN_GROUP_MEMBER_SQL),
            sqlite_where=text(OPEN_GROUP_MEMBER_SQL),
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
    # patch_group_key(cve_id, package_name, target_version), set at submission (migration 0006 back-fills).
    group_key: str | None = Field(default=None, max_length=32)


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
    # The training rows' distribution per feature (ml.drift.profile), what recent submissions are compared with.
    feature_profile: dict | None = Field(default=None, sa_type=JSON)


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


class AuditCheckpoint(SQLModel, table=True):
    """A signed head of the audit log (db.services.audit_checkpoints): append-only like the log itself, and
    also written as a log line so that a copy outside the database remembers how far the chain reached."""

    __tablename__ = "audit_checkpoints"

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(max_length=64)
    at: datetime = _ts(default_factory=utcnow)
    signature: str = Field(max_length=64)


class WebhookEndpoint(SQLModel, table=True):
    """A notification target (db.services.webhooks). `cursor_seq` is how far in the audit log it has been served
    (every event up to it delivered, skipped as not matching, or given up); `lease_*` says which replica sends
    for it until when (db.services.webhook_delivery)."""

    __tablename__ = "webhook_endpoints"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    format: str = Field(max_length=16)
    kinds: list[str] | None = Field(default=None, sa_type=JSON)  # None: every kind
    min_priority: str | None = Field(default=None, max_length=16)
    enabled: bool = True
    failing: bool = False
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    secret: str = Field(max_length=128)  # "whsec_" + base64; the signing key, shown to people only once
    created_by: str = Field(max_length=200)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)
    cursor_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_delivered_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = _ts(default=None)


class WebhookDelivery(SQLModel, table=True):
    """One event sent (or being sent) to one endpoint: its log line."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_seq", name="uq_webhook_deliveries_endpoint_seq"),
        # What a sender still has to send (db.services.webhook_delivery.open_deliveries), off the whole log.
        Index(
            "ix_webhook_deliveries_open",
            "endpoint_id",
            "event_seq",
            postgresql_where=text(WEBHOOK_OPEN_SQL),
            sqlite_where=text(WEBHOOK_OPEN_SQL),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    endpoint_id: uuid.UUID = Field(sa_column=Column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False))
    event_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(max_length=64)
    status: str = Field(max_length=16)
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    first_attempt_at: datetime | None = _ts(default=None)
    next_attempt_at: datetime | None = _ts(default=None)
    delivered_at: datetime | None = _ts(default=None)


class AutoApprovalOutcome(SQLModel, table=True):
    """A reported deployment outcome of an auto-approved patch, with the model that vouched for it: the
    rows the auto-approval guard's window is read from (db.services.guard). `id` orders them in commit order
    (they are written under the audit chain's lock); a resume starts the window after the newest id."""

    __tablename__ = "auto_approval_outcomes"
    __table_args__ = (Index("ix_auto_approval_outcomes_model", "model_version", "id"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True))
    patch_id: uuid.UUID = Field(sa_column=Column(ForeignKey("patches.id", ondelete="RESTRICT"), nullable=False, unique=True))
    model_version: str = Field(max_length=64)
    success: bool
    at: datetime = _ts(default_factory=utcnow)
