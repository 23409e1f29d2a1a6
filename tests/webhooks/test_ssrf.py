"""SSRF at send time: the target is checked on its resolved address at every attempt and the connection goes to
the address that was checked (no second resolution to rebind); redirects are never followed."""

import ipaddress

import httpx

from db.services.webhook_targets import AllowList
from graphql_api.webhooks import sender
from tests.support.receivers import Receiver
from tests.support.waiting import eventually
from tests.support.server import submit
from tests.support.webhooks import create_webhook, deliveries, webhook_api


def resolving_to(*addresses: str):  # noqa: ANN202
    """A resolver whose answers are given (as a rebinding DNS server would give them), counting its calls."""
    calls = []

    async def resolve(host: str, port: int) -> list:
        calls.append(host)
        return [ipaddress.ip_address(address) for address in addresses]

    resolve.calls = calls
    return resolve


async def post(url: str, allow: AllowList, resolver) -> sender.Attempt:  # noqa: ANN001
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as http:
        return await sender.post(http, url, b"{}", {}, allow=allow, resolver=resolver, timeout=2, max_body=1024)


async def test_a_name_that_resolves_to_loopback_at_send_time_is_refused_without_connecting() -> None:
    async with Receiver() as receiver:
        rebinding = resolving_to("127.0.0.1")
        attempt = await post(f"https://hooks.example.test:{receiver.port}/hook", AllowList(), rebinding)
        assert not attempt.ok and attempt.error.startswith("refused target:") and "127.0.0.1" in attempt.error
        assert rebinding.calls == ["hooks.example.test"] and receiver.received == []
        # A mixed answer (one public, one internal address) is refused too.
        attempt = await post(f"https://hooks.example.test:{receiver.port}/hook", AllowList(), resolving_to("1.1.1.1", "10.1.2.3"))
        assert not attempt.ok and "10.1.2.3" in attempt.error
        for url in ("https://127.0.0.1/x", "https://[::1]/x", "https://169.254.169.254/x", "https://10.0.0.1/x", f"http://1.1.1.1:{receiver.port}/x"):
            attempt = await post(url, AllowList(), resolving_to("1.1.1.1"))
            assert not attempt.ok and attempt.error.startswith("refused target:"), (url, attempt)
        assert receiver.received == []


async def test_the_connection_goes_to_the_checked_address_with_the_name_in_host() -> None:
    async with Receiver() as receiver:
        allow = AllowList.parse(["hooks.example.test"])
        resolver = resolving_to("127.0.0.1")
        attempt = await post(f"http://hooks.example.test:{receiver.port}/hook?x=1", allow, resolver)
        assert attempt.ok and attempt.status_code == 200
        [received] = receiver.received
        assert received.headers["host"] == f"hooks.example.test:{receiver.port}" and resolver.calls == ["hooks.example.test"]


async def test_a_redirect_to_loopback_is_not_followed(database_url: str) -> None:
    async with Receiver() as target:
        async with Receiver(redirect_to=f"http://localhost:{target.port}/hook") as redirecting:
            async with webhook_api(database_url) as api:
                endpoint, _ = await create_webhook(api, redirecting.url)
                await submit(api, 1)
                await eventually(lambda: len(redirecting.received) >= 2, timeout=10, what="two attempts")
                [head] = [edge["node"] for edge in (await deliveries(api, endpoint["id"]))["edges"]]
                assert head["status"] == "RETRYING" and head["lastStatusCode"] == 302 and head["lastError"] == "redirect not followed"
        assert target.received == []
