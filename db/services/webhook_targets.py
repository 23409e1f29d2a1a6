"""Where a webhook may be sent (SSRF protection): `https://` only, and never to a loopback, private,
link-local, metadata or otherwise non-public address, unless the host name, the address or a CIDR holding
it is listed in HITL_WEBHOOK_ALLOWED_HOSTS (for a listed host `http://` is allowed too).

The check runs on the *resolved* addresses at every send (a name may resolve elsewhere later: DNS
rebinding), and the sender then connects to the address it checked, never resolving the name again.
At create/update time it runs as far as it can be told then (a name that does not resolve yet passes).
"""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from db.services.errors import BadUserInput
from db.services.validation import text_field

FIELD = "url"
MAX_URL_LENGTH = 2048
CREATE_RESOLVE_SECONDS = 2.0
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IpAddress]]]


class TargetRefused(ValueError):
    """The target may not be sent to; the message says why (no secret in it)."""


@dataclass(frozen=True)
class AllowList:
    names: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> "AllowList":
        names, networks = set(), []
        for entry in entries:
            entry = entry.strip().strip("[]")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(_normal_name(entry))
        return cls(frozenset(names), tuple(networks))

    def lists_host(self, host: str) -> bool:
        address = ip_literal(host)
        return _normal_name(host) in self.names if address is None else self.lists_address(address)

    def lists_address(self, address: IpAddress) -> bool:
        return any(address in network for network in self.networks if network.version == address.version)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # a name, or an address without brackets
    port: int
    path: str  # path and query, as given

    def url_for(self, address: IpAddress) -> str:
        """The URL with the checked address in place of the name (the Host header and TLS SNI keep the name)."""
        shown = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{shown}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return shown if self.port == default else f"{shown}:{self.port}"


def _normal_name(host: str) -> str:
    return host.lower().rstrip(".")


def ip_literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def forbidden_address(address: IpAddress) -> bool:
    """Loopback, private, link-local (169.254.169.254 and other metadata services), shared, reserved,
    unspecified and multicast addresses; an IPv4-mapped IPv6 address counts as its IPv4 address."""
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def parse_target(url: str, allow: AllowList) -> Target:
    """The URL's parts, or TargetRefused when its form alone rules it out."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("https", "http") or not host:
        raise TargetRefused("must be an https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("must not carry credentials (user:password@)")
    if scheme == "http" and not allow.lists_host(host):
        raise TargetRefused("must use https:// (http:// only for hosts listed in HITL_WEBHOOK_ALLOWED_HOSTS)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


def checked_address(target: Target, addresses: list[IpAddress], allow: AllowList) -> IpAddress:
    """The address to connect to: every address the name has must be allowed (an answer mixing a public
    and an internal address is refused), unless the name itself is listed."""
    if not addresses:
        raise TargetRefused(f"{target.host} has no address")
    if _normal_name(target.host) not in allow.names:
        for address in addresses:
            if forbidden_address(address) and not allow.lists_address(address):
                raise TargetRefused(f"{target.host} resolves to a non-public address ({address}) not listed in HITL_WEBHOOK_ALLOWED_HOSTS")
    return addresses[0]


async def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address of `host` (the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[IpAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address not in seen:
            seen.append(address)
    return seen


async def addresses_of(target: Target, resolver: Resolver) -> list[IpAddress]:
    address = ip_literal(target.host)
    return [address] if address is not None else await resolver(target.host, target.port)


async def check_for_send(url: str, allow: AllowList, resolver: Resolver) -> tuple[Target, IpAddress]:
    """At every send: the target and the checked address to connect to, or TargetRefused."""
    target = parse_target(url, allow)
    try:
        addresses = await addresses_of(target, resolver)
    except OSError as exc:
        raise TargetRefused(f"{target.host} does not resolve ({exc.strerror or exc})") from None
    return target, checked_address(target, addresses, allow)


async def validate_url(url: str | None, allow: AllowList, resolver: Resolver) -> str:
    """At create/update: BAD_USER_INPUT (field url) for anything that can be told to be refused now."""
    url = text_field(url, field=FIELD, max_length=MAX_URL_LENGTH, required=True).strip()
    try:
        target = parse_target(url, allow)
        try:
            addresses = await asyncio.wait_for(addresses_of(target, resolver), CREATE_RESOLVE_SECONDS)
        except (OSError, asyncio.TimeoutError):
            return url  # cannot be told now: checked again at every send
        checked_address(target, addresses, allow)
    except TargetRefused as exc:
        raise BadUserInput(f"url {exc}", field=FIELD) from None
    return url
