"""Webhook management (ADMIN): queries and mutations, merged into Query and Mutation. Thin: authorize, call one
db.services.webhooks function in one transaction, map."""

import strawberry

from db.services import audit, webhook_targets, webhooks
from db.services.webhook_targets import AllowList
from graphql_api.schema.context import Context
from graphql_api.schema.permissions import CanAdminister
from graphql_api.schema.types.webhooks import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookDeliveryConnection,
    WebhookEndpoint,
    WebhookInput,
    WebhookSecretPayload,
)

Info = strawberry.Info[Context, None]
ADMIN = [CanAdminister]


def _allow(info: Info) -> AllowList:
    return AllowList.parse(info.context.services.settings.webhook_allowed_hosts)


@strawberry.type
class WebhookQueries:
    @strawberry.field(permission_classes=ADMIN)
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        async with info.context.db.read() as session:
            rows = await webhooks.endpoints(session=session)
            head = await audit.head_seq(session=session)
        return [WebhookEndpoint.from_model(row, head) for row in rows]

    @strawberry.field(permission_classes=ADMIN)
    async def webhook_deliveries(
        self, info: Info, endpoint_id: strawberry.ID, first: int | None = 50, after: str | None = None, status: DeliveryStatus | None = None
    ) -> WebhookDeliveryConnection:
        async with info.context.db.read() as session:
            endpoint, page = await webhooks.deliveries(session=session, endpoint_id=endpoint_id, first=first, after=after, status=status)
            head = await audit.head_seq(session=session)
        return WebhookDeliveryConnection.from_page(page, WebhookEndpoint.from_model(endpoint, head))


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(permission_classes=ADMIN)
    async def create_webhook(self, info: Info, input: WebhookInput) -> WebhookSecretPayload:  # noqa: A002
        async with info.context.db.write() as session:
            row, secret = await webhooks.create(
                session=session, actor=info.context.actor(), data=input.to_data(), allow=_allow(info), resolver=webhook_targets.resolve
            )
            head = await audit.head_seq(session=session)
        return WebhookSecretPayload(endpoint=WebhookEndpoint.from_model(row, head), secret=secret)

    @strawberry.mutation(permission_classes=ADMIN)
    async def update_webhook(self, info: Info, id: strawberry.ID, input: WebhookInput) -> WebhookEndpoint:  # noqa: A002
        async with info.context.db.write() as session:
            row = await webhooks.update(
                session=session, actor=info.context.actor(), endpoint_id=id, data=input.to_data(), allow=_allow(info),
                resolver=webhook_targets.resolve,
            )
            head = await audit.head_seq(session=session)
        return WebhookEndpoint.from_model(row, head)

    @strawberry.mutation(permission_classes=ADMIN)
    async def delete_webhook(self, info: Info, id: strawberry.ID) -> bool:  # noqa: A002
        async with info.context.db.write() as session:
            return await webhooks.delete(session=session, actor=info.context.actor(), endpoint_id=id)

    @strawberry.mutation(permission_classes=ADMIN)
    async def rotate_webhook_secret(self, info: Info, id: strawberry.ID) -> WebhookSecretPayload:  # noqa: A002
        async with info.context.db.write() as session:
            row, secret = await webhooks.rotate_secret(session=session, actor=info.context.actor(), endpoint_id=id)
            head = await audit.head_seq(session=session)
        return WebhookSecretPayload(endpoint=WebhookEndpoint.from_model(row, head), secret=secret)

    @strawberry.mutation(permission_classes=ADMIN)
    async def redeliver_webhook(self, info: Info, delivery_id: strawberry.ID) -> WebhookDelivery:
        async with info.context.db.write() as session:
            row, endpoint = await webhooks.redeliver(session=session, actor=info.context.actor(), delivery_id=delivery_id)
            head = await audit.head_seq(session=session)
        return WebhookDelivery.from_model(row, WebhookEndpoint.from_model(endpoint, head))
