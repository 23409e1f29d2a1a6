"""The webhook types of API.md "Webhooks"."""

from datetime import datetime

import strawberry

from db import enums
from db import models
from db.services import webhooks
from db.services.paging import Page
from graphql_api.schema.types.connections import PageInfo
from graphql_api.schema.types.enums import PatchEventKind, Priority

WebhookFormat = strawberry.enum(enums.WebhookFormat, name="WebhookFormat")
DeliveryStatus = strawberry.enum(enums.DeliveryStatus, name="DeliveryStatus")


@strawberry.input
class WebhookInput:
    url: str
    format: WebhookFormat | None = WebhookFormat.CLOUDEVENTS
    kinds: list[PatchEventKind] | None = None
    min_priority: Priority | None = None
    enabled: bool | None = True
    description: str | None = None

    def to_data(self) -> webhooks.EndpointInput:
        return webhooks.EndpointInput(
            url=self.url, format=self.format or enums.WebhookFormat.CLOUDEVENTS, kinds=self.kinds, min_priority=self.min_priority,
            enabled=self.enabled is not False, description=self.description,
        )


@strawberry.type
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    format: WebhookFormat
    kinds: list[PatchEventKind] | None
    min_priority: Priority | None
    enabled: bool
    failing: bool
    description: str | None
    created_at: datetime
    last_delivered_seq: int | None
    lag_events: int

    @classmethod
    def from_model(cls, row: models.WebhookEndpoint, head_seq: int) -> "WebhookEndpoint":
        return cls(
            id=strawberry.ID(str(row.id)),
            url=row.url,
            format=enums.WebhookFormat(row.format),
            kinds=None if row.kinds is None else [enums.PatchEventKind(kind) for kind in row.kinds],
            min_priority=None if row.min_priority is None else enums.Priority(row.min_priority),
            enabled=row.enabled,
            failing=row.failing,
            description=row.description,
            created_at=row.created_at,
            last_delivered_seq=row.last_delivered_seq,
            lag_events=max(head_seq - row.cursor_seq, 0),
        )


@strawberry.type
class WebhookSecretPayload:
    endpoint: WebhookEndpoint
    secret: str = strawberry.field(description="The signing secret (whsec_…): shown only here, once.")


@strawberry.type
class WebhookDelivery:
    id: strawberry.ID
    endpoint: WebhookEndpoint
    event_seq: int
    kind: PatchEventKind
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def from_model(cls, row: models.WebhookDelivery, endpoint: WebhookEndpoint) -> "WebhookDelivery":
        return cls(
            id=strawberry.ID(str(row.id)),
            endpoint=endpoint,
            event_seq=row.event_seq,
            kind=enums.PatchEventKind(row.kind),
            status=enums.DeliveryStatus(row.status),
            attempts=row.attempts,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            next_attempt_at=row.next_attempt_at if row.status in (enums.DeliveryStatus.PENDING.value, enums.DeliveryStatus.RETRYING.value) else None,
            delivered_at=row.delivered_at,
        )


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDelivery


@strawberry.type
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def from_page(cls, page: Page, endpoint: WebhookEndpoint) -> "WebhookDeliveryConnection":
        edges = [
            WebhookDeliveryEdge(cursor=cursor, node=WebhookDelivery.from_model(row, endpoint))
            for row, cursor in zip(page.items, page.cursors, strict=True)
        ]
        return cls(edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor), total_count=page.total_count)
