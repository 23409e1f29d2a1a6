"""Domain enumerations (their names are the GraphQL enum values of API.md)."""

from enum import Enum


class PatchStatus(str, Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    AUTO_APPROVED = "AUTO_APPROVED"
    ESCALATED = "ESCALATED"
    CANCELLED = "CANCELLED"


OPEN_STATUSES = (PatchStatus.PENDING, PatchStatus.ESCALATED)
FINAL_STATUSES = (PatchStatus.APPROVED, PatchStatus.REJECTED, PatchStatus.AUTO_APPROVED, PatchStatus.CANCELLED)
FINAL_STATUS_VALUES = frozenset(status.value for status in FINAL_STATUSES)  # as stored in patches.status
APPROVED_STATUSES = (PatchStatus.APPROVED, PatchStatus.AUTO_APPROVED)


class Priority(str, Enum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


# Queue order: CRITICAL first. Stored on the row so the pending index serves the order directly.
PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 3}


class Severity(str, Enum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class SlaStatus(str, Enum):
    OK = "OK"
    AT_RISK = "AT_RISK"
    BREACHED = "BREACHED"


class VersionBump(str, Enum):
    MAJOR = "MAJOR"
    MINOR = "MINOR"
    PATCH = "PATCH"
    OTHER = "OTHER"


class PatchEventKind(str, Enum):
    SUBMITTED = "SUBMITTED"
    WARGAMING_RECORDED = "WARGAMING_RECORDED"
    AUTO_APPROVED = "AUTO_APPROVED"
    APPROVAL_RECORDED = "APPROVAL_RECORDED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    ESCALATED = "ESCALATED"
    CANCELLED = "CANCELLED"
    COMMENTED = "COMMENTED"
    SLA_BREACHED = "SLA_BREACHED"
    OUTCOME_RECORDED = "OUTCOME_RECORDED"


class SystemAction(str, Enum):
    """Audited changes that concern the service rather than one patch."""

    AUTO_APPROVAL_PAUSED = "AUTO_APPROVAL_PAUSED"
    AUTO_APPROVAL_RESUMED = "AUTO_APPROVAL_RESUMED"
    MODEL_ACTIVATED = "MODEL_ACTIVATED"
    WEBHOOK_CHANGED = "WEBHOOK_CHANGED"  # details.change: created, updated, deleted, secret_rotated, redelivered


class WebhookFormat(str, Enum):
    CLOUDEVENTS = "CLOUDEVENTS"
    SLACK = "SLACK"


class DeliveryStatus(str, Enum):
    PENDING = "PENDING"
    RETRYING = "RETRYING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class Role(str, Enum):
    VIEWER = "VIEWER"
    REVIEWER = "REVIEWER"
    LEAD = "LEAD"
    ADMIN = "ADMIN"
    SERVICE = "SERVICE"
