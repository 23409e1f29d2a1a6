"""Endpoint management over GraphQL: ADMIN only, URLs checked (SSRF) at create and update, secrets shown once,
every change audited without the secret."""

import pytest

from tests.support.server import ADMIN, LEAD, REVIEWER, SERVICE, VIEWER
from tests.support.webhooks import CREATE, DELIVERIES, ENDPOINTS, UPDATE, create_webhook, endpoints, webhook_api

PUBLIC = "https://1.1.1.1/hook"  # an address literal: no DNS needed; created disabled, so nothing is sent
REFUSED = [
    "https://127.0.0.1/hook",
    "https://10.0.0.1/hook",
    "https://[::1]/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://localhost/hook",  # a name that resolves to loopback
    "https://[::ffff:127.0.0.1]/hook",  # loopback as an IPv4-mapped IPv6 address
    "http://1.1.1.1/hook",  # http:// for a host that is not listed
]
MALFORMED = ["ftp://1.1.1.1/x", "not a url", "https://user:pw@1.1.1.1/hook", "https:///nohost", "", "https://1.1.1.1:99999/"]


async def test_only_admin_manages_webhooks(database_url: str) -> None:
    async with webhook_api(database_url, webhook_allowed_hosts="") as api:
        endpoint, _ = await create_webhook(api, PUBLIC, enabled=False)
        for bearer in (VIEWER, REVIEWER, LEAD, SERVICE):
            for query, variables in (
                (ENDPOINTS, None),
                (DELIVERIES, {"id": endpoint["id"]}),
                (CREATE, {"i": {"url": PUBLIC}}),
                (UPDATE, {"id": endpoint["id"], "i": {"url": PUBLIC}}),
                ("mutation($id: ID!) { deleteWebhook(id: $id) }", {"id": endpoint["id"]}),
                ("mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }", {"id": endpoint["id"]}),
            ):
                body = await api.gql(query, variables, as_=bearer)
                assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN", (query, body)
        assert [item["id"] for item in await endpoints(api)] == [endpoint["id"]]


@pytest.mark.parametrize("url", REFUSED + MALFORMED)
async def test_a_refused_url_is_bad_user_input_on_create_and_update(database_url: str, url: str) -> None:
    async with webhook_api(database_url, webhook_allowed_hosts="") as api:
        body = await api.gql(CREATE, {"i": {"url": url}}, as_=ADMIN)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert body["errors"][0]["extensions"]["field"] == "url"
        assert await endpoints(api) == []
        endpoint, _ = await create_webhook(api, PUBLIC, enabled=False)
        body = await api.gql(UPDATE, {"id": endpoint["id"], "i": {"url": url}}, as_=ADMIN)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and body["errors"][0]["extensions"]["field"] == "url"
        assert (await endpoints(api))[0]["url"] == PUBLIC


async def test_listed_hosts_and_networks_are_allowed_http_too(database_url: str) -> None:
    async with webhook_api(database_url, webhook_allowed_hosts="127.0.0.1, 10.0.0.0/8, ::1, 169.254.169.254, localhost") as api:
        for url in [*REFUSED[:-2], "http://127.0.0.1:8080/hook", "http://localhost/hook"]:
            await create_webhook(api, url, enabled=False)
        body = await api.gql(CREATE, {"i": {"url": "http://1.1.1.1/hook"}}, as_=ADMIN)
        assert body["errors"][0]["extensions"]["field"] == "url"


async def test_secret_shown_once_rotated_and_never_audited(database_url: str) -> None:
    async with webhook_api(database_url) as api:
        endpoint, secret = await create_webhook(api, PUBLIC, enabled=False, kinds=["SLA_BREACHED", "REJECTED"], minPriority="HIGH", format="SLACK")
        assert endpoint["kinds"] == ["REJECTED", "SLA_BREACHED"] and endpoint["minPriority"] == "HIGH" and endpoint["format"] == "SLACK"
        assert secret.startswith("whsec_") and len(secret) >= len("whsec_") + 32
        body = await api.gql("mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { id } } }", {"id": endpoint["id"]}, as_=ADMIN)
        rotated = body["data"]["rotateWebhookSecret"]["secret"]
        assert rotated.startswith("whsec_") and rotated != secret
        updated = (await api.gql(UPDATE, {"id": endpoint["id"], "i": {"url": "https://1.0.0.1/x", "enabled": False}}, as_=ADMIN))["data"]["updateWebhook"]
        assert updated["url"] == "https://1.0.0.1/x" and updated["kinds"] is None and updated["format"] == "CLOUDEVENTS"
        audit = await api.gql('{ auditLog(first: 50, filter: {action: "WEBHOOK_CHANGED"}) { edges { node { actor details } } } }', as_=ADMIN)
        changes = [edge["node"] for edge in audit["data"]["auditLog"]["edges"]]
        assert [change["details"]["change"] for change in changes] == ["created", "secret_rotated", "updated"]
        assert {change["actor"] for change in changes} == {"adam"}
        assert secret not in str(audit) and rotated not in str(audit)
        assert (await api.gql("mutation($id: ID!) { deleteWebhook(id: $id) }", {"id": endpoint["id"]}, as_=ADMIN))["data"]["deleteWebhook"]
        assert await endpoints(api) == []
        gone = await api.gql("mutation($id: ID!) { deleteWebhook(id: $id) }", {"id": endpoint["id"]}, as_=ADMIN)
        assert gone["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        bad = await api.gql(DELIVERIES, {"id": "nope"}, as_=ADMIN)
        assert bad["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "endpointId"} | {
            key: value for key, value in bad["errors"][0]["extensions"].items() if key not in ("code", "field")
        }
