"""What subscriptions emit: audit events and live pages of the pending queue."""

from datetime import datetime

import strawberry

from graphql_api.schema.types.enums import PatchEventKind
from graphql_api.schema.types.patch import Patch


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
