"""Webhook management over GraphQL for the tests, and an `api`-like server started with webhook settings."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.support.receivers import Receiver
from tests.support.server import ADMIN, Api, running, settings_for

ENDPOINT_FIELDS = "id url format kinds minPriority enabled failing description createdAt lastDeliveredSeq lagEvents"
CREATE = f"mutation($i: WebhookInput!) {{ createWebhook(input: $i) {{ secret endpoint {{ {ENDPOINT_FIELDS} }} }} }}"
UPDATE = f"mutation($id: ID!, $i: WebhookInput!) {{ updateWebhook(id: $id, input: $i) {{ {ENDPOINT_FIELDS} }} }}"
ENDPOINTS = f"{{ webhookEndpoints {{ {ENDPOINT_FIELDS} }} }}"
DELIVERIES = """query($id: ID!, $first: Int, $after: String, $status: DeliveryStatus) {
  webhookDeliveries(endpointId: $id, first: $first, after: $after, status: $status) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id eventSeq kind status attempts lastStatusCode lastError nextAttemptAt deliveredAt endpoint { id failing } } } } }"""
REDELIVER = "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id status attempts eventSeq endpoint { failing } } }"

# Fast retries for tests; receivers on 127.0.0.1 are allow-listed (so http:// too).
FAST = {
    "webhook_allowed_hosts": "127.0.0.1",
    "webhook_backoff_initial_seconds": 0.2,
    "webhook_backoff_max_seconds": 1.0,
    "webhook_poll_seconds": 1.0,
    "webhook_lease_seconds": 3.0,
    "webhook_timeout_seconds": 2.0,
}


@asynccontextmanager
async def webhook_api(database_url: str, **overrides: object) -> AsyncIterator[Api]:
    async with running(settings_for(database_url, **{**FAST, **overrides})) as api:
        yield api


async def create_webhook(api: Api, url: str, *, as_: str = ADMIN, **fields: object) -> tuple[dict, str]:
    body = await api.gql(CREATE, {"i": {"url": url, **fields}}, as_=as_)
    assert "errors" not in body, body
    payload = body["data"]["createWebhook"]
    return payload["endpoint"], payload["secret"]


async def deliveries(api: Api, endpoint_id: str, **variables: object) -> dict:
    body = await api.gql(DELIVERIES, {"id": endpoint_id, **variables}, as_=ADMIN)
    assert "errors" not in body, body
    return body["data"]["webhookDeliveries"]


async def logged(api: Api, endpoint_id: str, count: int, *, timeout: float = 10) -> dict:
    """The delivery log once it holds `count` deliveries (senders record progress in batches, a moment after sending)."""
    deadline = time.monotonic() + timeout
    while True:
        log = await deliveries(api, endpoint_id, first=500)
        if log["totalCount"] >= count or time.monotonic() > deadline:
            return log
        await asyncio.sleep(0.05)


async def endpoints(api: Api) -> list[dict]:
    body = await api.gql(ENDPOINTS, as_=ADMIN)
    assert "errors" not in body, body
    return body["data"]["webhookEndpoints"]


# For `hitl serve` processes (tests/webhooks/test_replicas.py, test_database_outage.py): short leases and backoff.
ENV = {
    "HITL_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "HITL_WEBHOOK_LEASE_SECONDS": "3",
    "HITL_WEBHOOK_BACKOFF_INITIAL_SECONDS": "0.2",
    "HITL_WEBHOOK_BACKOFF_MAX_SECONDS": "1",
    "HITL_WEBHOOK_POLL_SECONDS": "1",
    "HITL_AUDIT_CHECKPOINT_SECONDS": "0",
}


async def create(client: httpx.AsyncClient, base: str, url: str) -> str:
    response = await client.post(
        f"{base}/graphql",
        json={"query": "mutation($u: String!) { createWebhook(input: {url: $u}) { endpoint { id } } }", "variables": {"u": url}},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    return response.json()["data"]["createWebhook"]["endpoint"]["id"]


async def submitted_seqs(client: httpx.AsyncClient, base: str) -> list[int]:
    body = (
        await client.post(
            f"{base}/graphql",
            json={"query": '{ auditLog(first: 500, filter: {action: "SUBMITTED"}) { edges { node { seq } } } }'},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
    ).json()
    return [edge["node"]["seq"] for edge in body["data"]["auditLog"]["edges"]]


def first_arrivals(receiver: Receiver) -> list[int]:
    seen: dict[str, int] = {}
    for item in receiver.received:
        seen.setdefault(item.json["id"], item.json["data"]["seq"])
    return list(seen.values())
