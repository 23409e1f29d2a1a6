"""Cursor pages (connections) of API.md."""

import strawberry

from graphql_api.schema.types.patch import AuditEntry, Patch


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
