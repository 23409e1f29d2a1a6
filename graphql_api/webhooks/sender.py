"""One HTTP attempt: the target checked on its resolved address (db.services.webhook_targets), the connection made
to that very address (the Host header and TLS SNI carry the name, so the certificate is checked against it), no
redirect followed, the whole attempt bounded by the timeout, and at most `max_body` bytes of the answer read."""

import asyncio
from dataclasses import dataclass

import httpx

from db.services.webhook_targets import AllowList, Resolver, TargetRefused, check_for_send

USER_AGENT = "hitl-patch-service-webhooks/1"
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status_code: int | None = None
    error: str | None = None


def client() -> httpx.AsyncClient:
    """One per endpoint: a slow endpoint's connections never hold up another's. Never follows redirects and
    never reads proxy settings from the environment (the egress policy is the operator's)."""
    return httpx.AsyncClient(
        follow_redirects=False, trust_env=False, timeout=None, limits=httpx.Limits(max_connections=2, max_keepalive_connections=1)
    )


async def post(
    http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], *, allow: AllowList, resolver: Resolver, timeout: float, max_body: int
) -> Attempt:
    try:
        async with asyncio.timeout(timeout):
            target, address = await check_for_send(url, allow, resolver)
            sent = {**headers, "host": target.host_header, "user-agent": USER_AGENT}
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            request = http.build_request("POST", target.url_for(address), content=body, headers=sent, extensions=extensions)
            response = await http.send(request, stream=True)
            try:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= max_body:
                        break
            finally:
                await response.aclose()
    except TargetRefused as exc:
        return Attempt(ok=False, error=f"refused target: {exc}"[:MAX_ERROR_CHARS])
    except TimeoutError:
        return Attempt(ok=False, error=f"timed out after {timeout:g} s")
    except httpx.HTTPError as exc:
        return Attempt(ok=False, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS] if str(exc) else type(exc).__name__)
    except OSError as exc:
        return Attempt(ok=False, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
    code = response.status_code
    if 200 <= code < 300:
        return Attempt(ok=True, status_code=code)
    if response.is_redirect:
        return Attempt(ok=False, status_code=code, error="redirect not followed")
    return Attempt(ok=False, status_code=code, error=f"HTTP {code}")
