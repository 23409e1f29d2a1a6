"""Connections (cursor pages) and the other result types of API.md."""

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from db.services.analytics import Summary
from graphql_api.types.enums import PatchEventKind
from graphql_api.types.patch import AuditEntry, Patch


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class PatchEdge:
    cursor: str
    node: Patch


@strawberry.type
class PatchConnection:
    edges: list[PatchEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class AuditEntryEdge:
    cursor: str
    node: AuditEntry


@strawberry.type
class AuditEntryConnection:
    edges: list[AuditEntryEdge]
    page_info: PageInfo
    total_count: int


# The domain summary is exactly the API type: one field list, exposed as is.
AnalyticsSummary = strawberry.type(Summary, name="AnalyticsSummary")


@strawberry.type
class AuditChainReport:
    valid: bool
    entries_checked: int
    first_broken_seq: int | None


@strawberry.type
class MlModel:
    version: str
    trained_at: datetime
    training_samples: int
    threshold: float
    metrics: JSON
    feature_names: list[str]
    auto_approval_enabled: bool
    auto_approval_disabled_reason: str | None


@strawberry.type
class Viewer:
    subject: str
    roles: list[str]


@strawberry.type
class AutoApprovalState:
    paused: bool
    reason: str | None
    changed_by: str | None
    changed_at: datetime | None
    threshold: float
    policy: JSON
    auto_approval_enabled: bool
    auto_approval_disabled_reason: str | None


@strawberry.type
class PatchEvent:
    cursor: str
    seq: int
    kind: PatchEventKind
    actor: str
    at: datetime
    patch: Patch


@strawberry.type
class PendingQueue:
    total_count: int
    items: list[Patch]
    as_of_seq: int


@strawberry.type
class SubmitPatchPayload:
    patch: Patch
    created: bool
