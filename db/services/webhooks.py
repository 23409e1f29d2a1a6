"""Webhook endpoints (ADMIN): create, update, delete, rotate the secret, redeliver; their delivery log.

An endpoint follows the audit log from the moment it is created (its cursor starts at the head). Every
change is audited (WEBHOOK_CHANGED, never with the secret) in the same transaction, which also wakes the
delivery workers of every replica through the event path.
"""

import base64
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import DeliveryStatus, PatchEventKind, Priority, SystemAction, WebhookFormat
from db.models import SYSTEM_DECISION_ID, WebhookDelivery, WebhookEndpoint
from db.services import audit, cursors
from db.services.actor import Actor
from db.services.errors import BadUserInput, NotFound
from db.services.paging import Page, fetch_page
from db.services.validation import page_size, text_field
from db.services.webhook_targets import AllowList, Resolver, validate_url
from db.types import utcnow

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_DESCRIPTION = 500
MAX_ENDPOINTS = 100


@dataclass(frozen=True)
class EndpointInput:
    url: str
    format: WebhookFormat = WebhookFormat.CLOUDEVENTS
    kinds: list[PatchEventKind] | None = None
    min_priority: Priority | None = None
    enabled: bool = True
    description: str | None = None


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for (Standard Webhooks)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def parse_endpoint_id(value: str, *, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadUserInput(f"{field} is not a valid id", field=field) from None


async def _checked(data: EndpointInput, allow: AllowList, resolver: Resolver) -> dict:
    return {
        "url": await validate_url(data.url, allow, resolver),
        "format": WebhookFormat(data.format).value,
        "kinds": None if data.kinds is None else sorted({PatchEventKind(kind).value for kind in data.kinds}),
        "min_priority": None if data.min_priority is None else Priority(data.min_priority).value,
        "enabled": bool(data.enabled),
        "description": text_field(data.description, field="description", max_length=MAX_DESCRIPTION, multiline=True),
    }


async def _audit(session: AsyncSession, actor: Actor, endpoint: WebhookEndpoint, change: str, **details: object) -> None:
    body = {"endpointId": str(endpoint.id), "change": change, "url": endpoint.url, **details}
    await audit.append(session=session, decision_id=SYSTEM_DECISION_ID, action=SystemAction.WEBHOOK_CHANGED.value, actor=actor, details=body)


async def get(*, session: AsyncSession, endpoint_id: str | uuid.UUID, for_update: bool = False) -> WebhookEndpoint:
    key = endpoint_id if isinstance(endpoint_id, uuid.UUID) else parse_endpoint_id(endpoint_id)
    row = await session.get(WebhookEndpoint, key, with_for_update=for_update or None)
    if row is None:
        raise NotFound("no webhook endpoint with this id")
    return row


async def endpoints(*, session: AsyncSession) -> list[WebhookEndpoint]:
    return list((await session.exec(select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id))).all())


async def create(*, session: AsyncSession, actor: Actor, data: EndpointInput, allow: AllowList, resolver: Resolver) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its secret (shown only now)."""
    actor.require("administer", "managing webhooks")
    values = await _checked(data, allow, resolver)
    if (await session.exec(select(func.count()).select_from(WebhookEndpoint))).one() >= MAX_ENDPOINTS:
        raise BadUserInput(f"at most {MAX_ENDPOINTS} webhook endpoints", field="url")
    # The lock makes the head the last event committed before this endpoint exists: it gets every later one.
    await audit.lock_chain(session=session)
    secret = new_secret()
    row = WebhookEndpoint(**values, secret=secret, created_by=actor.subject, cursor_seq=await audit.head_seq(session=session))
    session.add(row)
    await session.flush()
    await _audit(session, actor, row, "created")
    return row, secret


async def update(
    *, session: AsyncSession, actor: Actor, endpoint_id: str, data: EndpointInput, allow: AllowList, resolver: Resolver
) -> WebhookEndpoint:
    """Replaces the settings. Enabling a failing endpoint gives up its FAILED event and goes on with the next."""
    actor.require("administer", "managing webhooks")
    values = await _checked(data, allow, resolver)
    row = await get(session=session, endpoint_id=endpoint_id, for_update=True)
    for name, value in values.items():
        setattr(row, name, value)
    if row.enabled and row.failing:
        head = await _head(session, row)
        if head is not None and head.status == DeliveryStatus.FAILED.value:
            row.cursor_seq = head.event_seq
        row.failing = False
    row.updated_at = utcnow()
    session.add(row)
    await session.flush()
    await _audit(session, actor, row, "updated", enabled=row.enabled)
    return row


async def delete(*, session: AsyncSession, actor: Actor, endpoint_id: str) -> bool:
    actor.require("administer", "managing webhooks")
    row = await get(session=session, endpoint_id=endpoint_id, for_update=True)
    await _audit(session, actor, row, "deleted")
    await session.delete(row)  # its deliveries go with it (ON DELETE CASCADE)
    await session.flush()
    return True


async def rotate_secret(*, session: AsyncSession, actor: Actor, endpoint_id: str) -> tuple[WebhookEndpoint, str]:
    actor.require("administer", "managing webhooks")
    row = await get(session=session, endpoint_id=endpoint_id, for_update=True)
    secret = new_secret()
    row.secret, row.updated_at = secret, utcnow()
    session.add(row)
    await session.flush()
    await _audit(session, actor, row, "secret_rotated")
    return row, secret


async def _head(session: AsyncSession, endpoint: WebhookEndpoint) -> WebhookDelivery | None:
    """The delivery at the head of the endpoint's stream (the first event after its cursor), if it was tried."""
    statement = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.event_seq > endpoint.cursor_seq)
        .order_by(WebhookDelivery.event_seq)
        .limit(1)
    )
    return (await session.exec(statement)).first()


async def redeliver(*, session: AsyncSession, actor: Actor, delivery_id: str) -> tuple[WebhookDelivery, WebhookEndpoint]:
    """Send one delivery again, now, with a fresh retry window. The head of a failing endpoint's stream is retried
    in place (the endpoint stops failing, later events follow it); an earlier one is sent once more out of turn."""
    actor.require("administer", "managing webhooks")
    key = parse_endpoint_id(delivery_id, field="deliveryId")
    delivery = await session.get(WebhookDelivery, key, with_for_update=True)
    if delivery is None:
        raise NotFound("no webhook delivery with this id")
    endpoint = await get(session=session, endpoint_id=delivery.endpoint_id, for_update=True)
    now = utcnow()
    is_head = delivery.event_seq > endpoint.cursor_seq
    delivery.status = (DeliveryStatus.RETRYING if is_head else DeliveryStatus.PENDING).value
    delivery.first_attempt_at, delivery.next_attempt_at = now, now
    session.add(delivery)
    if is_head and endpoint.failing:
        endpoint.failing = False
        session.add(endpoint)
    await session.flush()
    await _audit(session, actor, endpoint, "redelivered", eventSeq=delivery.event_seq)
    return delivery, endpoint


def _delivery_cursor(row: WebhookDelivery) -> str:
    return cursors.encode(row.event_seq)


async def deliveries(
    *, session: AsyncSession, endpoint_id: str, first: int | None = 50, after: str | None = None, status: DeliveryStatus | None = None
) -> tuple[WebhookEndpoint, Page[WebhookDelivery]]:
    """An endpoint's delivery log, newest event first."""
    endpoint = await get(session=session, endpoint_id=parse_endpoint_id(endpoint_id, field="endpointId"))
    limit = page_size(first)
    filters = [WebhookDelivery.endpoint_id == endpoint.id]
    if status is not None:
        filters.append(WebhookDelivery.status == DeliveryStatus(status).value)
    seek = [WebhookDelivery.event_seq < cursors.decode(after, kinds=(int,))[0]] if after is not None else []
    page = await fetch_page(
        session=session, model=WebhookDelivery, filters=filters, seek=seek, order_by=(WebhookDelivery.event_seq.desc(),),
        limit=limit, cursor_of=_delivery_cursor,
    )
    return endpoint, page
