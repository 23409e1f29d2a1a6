"""Credentials → Actor. JWTs via joserfc (the JOSE implementation authlib 1.9 delegates to and recommends).

HS256 with the configured secret, or RS256/ES256 against a JWKS: a file, a URL, or the one an OpenID provider's
discovery names (HITL_OIDC_ISSUER, graphql_api.oidc). `exp` is required, with a clock-skew leeway. HS256 and
JWKS-file/URL tokens: `iss`/`aud` are checked when configured and roles are role names in `roles`. The IdP's
tokens: `iss` must be the issuer, `aud` must contain HITL_JWT_AUDIENCE (or, without it, the client id), ID
tokens are refused, and roles come from HITL_ROLES_CLAIM through HITL_ROLE_MAP. HTTP, REST and WebSocket all
call `verify_token`.
`X-API-Key` is the SERVICE key.
"""

import base64
import hmac
import json
import logging
import re
import threading
import time
import urllib.request
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey
from joserfc.jwt import JWTClaimsRegistry

from db.enums import Role
from db.services.actor import Actor
from db.services.errors import Unauthenticated
from graphql_api import oidc, request_limits
from graphql_api.config import Settings
from graphql_api.token_roles import mapped_roles, parse_roles

__all__ = ["Authenticator", "Credential", "mint_token", "parse_roles", "parse_ttl"]

log = logging.getLogger("hitl.auth")

API_KEY_SUBJECT = "service:internal"
# Subjects the service writes itself (auto-approval, SLA watcher, retraining, demo data): no token may claim them.
RESERVED_SUBJECT_PREFIXES = ("system:", "synthetic:")
ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]
JWKS_CACHE_SECONDS = 300
JWKS_RETRY_SECONDS = 30
DISCOVERY_CACHE_SECONDS = 3600  # the discovery document is read again at this age, or when its JWKS cannot be fetched
MAX_TOKEN_LENGTH = 8192
_TTL = re.compile(r"^(\d+)([smhd]?)$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(value: str) -> int:
    match = _TTL.match(value.strip().lower())
    if not match:
        raise ValueError(f"invalid TTL {value!r}: use e.g. 3600, 30m, 1h, 7d")
    return int(match.group(1)) * _TTL_UNITS[match.group(2)]


def mint_token(*, secret: str, subject: str, roles: list[str], ttl_seconds: int, issuer: str | None = None, audience: str | None = None) -> str:
    now = int(time.time())
    claims = {"sub": subject, "roles": sorted(role.value for role in parse_roles(roles)), "iat": now, "exp": now + ttl_seconds}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, OctKey.import_key(secret))


@dataclass(frozen=True)
class Credential:
    actor: Actor
    expires_at: float | None  # epoch seconds; None for the API key


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._secret = OctKey.import_key(settings.jwt_secret.get_secret_value()) if settings.jwt_secret else None
        self._api_key = settings.internal_api_key.get_secret_value().encode() if settings.internal_api_key else None
        self._jwks: KeySet | None = None
        self._jwks_loaded_at = 0.0
        self._discovery: dict | None = None
        self._discovery_loaded_at = float("-inf")
        self._jwks_retry_at = float("-inf")
        self._kid_refresh_at = float("-inf")
        self._lock = threading.Lock()
        claims = {"exp": {"essential": True}, "sub": {"essential": True}}
        if settings.jwt_issuer:
            claims["iss"] = {"essential": True, "value": settings.jwt_issuer}
        if settings.jwt_audience:
            claims["aud"] = {"essential": True, "value": settings.jwt_audience}
        self._registry = JWTClaimsRegistry(leeway=settings.jwt_leeway_seconds, **claims)
        self._oidc_registry = None
        if settings.oidc_issuer:
            # The API's audience when the IdP issues tokens for it (HITL_JWT_AUDIENCE), else the console's client id.
            self._oidc_registry = JWTClaimsRegistry(
                leeway=settings.jwt_leeway_seconds,
                exp={"essential": True},
                sub={"essential": True},
                iss={"essential": True, "value": settings.oidc_issuer},
                aud={"essential": True, "value": settings.jwt_audience or settings.oidc_client_id},
            )
        self._jwks_reloading = False
        if self._jwks_configured:
            self._reload_jwks()  # at startup, so the first tokens find the keys (later reloads run in a thread)

    @property
    def _jwks_configured(self) -> bool:
        return bool(self._settings.jwks_file or self._settings.jwks_url or self._settings.oidc_issuer)

    def _keyset(self) -> KeySet | None:
        """The cached JWKS. Never does I/O: this runs on the event loop, per request. When the set is stale
        (JWKS_CACHE_SECONDS) a background thread reloads it while the current keys keep serving."""
        if not self._jwks_configured:
            return None
        with self._lock:
            now = time.monotonic()
            due = self._jwks is None or now - self._jwks_loaded_at > JWKS_CACHE_SECONDS
            if due and now >= self._jwks_retry_at and not self._jwks_reloading:
                self._jwks_reloading = True
                threading.Thread(target=self._reload_jwks, name="hitl-jwks-reload", daemon=True).start()
            return self._jwks

    def _refresh_on_unknown_kid(self, token: str, keyset: KeySet) -> None:
        """A key id we do not know may be the IdP's new key (rotation): reload soon, at most every
        JWKS_RETRY_SECONDS, without blocking this request."""
        try:
            header = request_limits.decode_json(base64.urlsafe_b64decode(token.split(".", 1)[0] + "=="))
        except ValueError:  # not base64, not JSON, or nested too deeply
            return
        kid = header.get("kid") if isinstance(header, dict) else None
        if not kid or any(key.kid == kid for key in keyset.keys):
            return
        with self._lock:
            if time.monotonic() >= self._kid_refresh_at:
                self._jwks_loaded_at = float("-inf")  # stale: the next request starts a background reload
                self._kid_refresh_at = time.monotonic() + JWKS_RETRY_SECONDS

    def _reload_jwks(self) -> None:
        """Load the JWKS (file, URL, or the issuer's from discovery). On failure keep the last good set, log, and
        let the next try wait JWKS_RETRY_SECONDS: an unreachable IdP neither costs a fetch per request nor breaks
        HS256 tokens."""
        settings = self._settings
        keyset = None
        try:
            if settings.jwks_file:
                with open(settings.jwks_file, encoding="utf-8") as handle:
                    document = json.load(handle)
            else:
                with urllib.request.urlopen(self._jwks_uri(), timeout=5) as response:  # noqa: S310 - operator-configured URL
                    document = json.load(response)
            keyset = KeySet.import_key_set(document)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, keep serving with what we have
            log.warning(
                "could not load the JWKS (%s: %s); %s",
                type(exc).__name__,
                exc,
                "keeping the previous keys" if self._jwks is not None else "only HS256 tokens can be verified",
            )
        finally:
            with self._lock:
                if keyset is not None:
                    self._jwks, self._jwks_loaded_at = keyset, time.monotonic()
                else:
                    self._jwks_retry_at = time.monotonic() + JWKS_RETRY_SECONDS
                    self._discovery_loaded_at = float("-inf")  # the IdP may have moved its keys: discover again
                self._jwks_reloading = False

    def _jwks_uri(self) -> str:
        """HITL_JWKS_URL, or the `jwks_uri` of the issuer's discovery document (read again when stale)."""
        issuer = self._settings.oidc_issuer
        if not issuer:
            return self._settings.jwks_url
        if self._discovery is None or time.monotonic() - self._discovery_loaded_at > DISCOVERY_CACHE_SECONDS:
            self._discovery, self._discovery_loaded_at = oidc.discover(issuer), time.monotonic()
        return self._discovery["jwks_uri"]

    def verify_token(self, token: str) -> Credential:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("invalid token")
        try:
            decoded, asymmetric = self._decode(token)
            if asymmetric and self._oidc_registry is not None:
                self._oidc_registry.validate(decoded.claims)
                if oidc.is_id_token(decoded.header, decoded.claims):
                    raise Unauthenticated("invalid token: an ID token is not a bearer token (send the access token)")
            else:
                self._registry.validate(decoded.claims)
        except (JoseError, ValueError, KeyError, OSError) as exc:
            raise Unauthenticated(f"invalid token: {type(exc).__name__}") from None
        claims = decoded.claims
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > 200:
            raise Unauthenticated("invalid token: bad subject")
        if subject.startswith(RESERVED_SUBJECT_PREFIXES) or subject == API_KEY_SUBJECT:
            raise Unauthenticated("invalid token: the subject is reserved for the service itself")
        if asymmetric:
            roles = mapped_roles(claims, self._settings.roles_claim, self._settings.role_map)
        else:
            roles = parse_roles(claims.get("roles", []))
        return Credential(Actor(subject=subject, roles=roles), float(claims["exp"]))

    def _decode(self, token: str):  # noqa: ANN202
        """The decoded token, and whether it was verified with the JWKS (an IdP's key) rather than the secret."""
        keyset = self._keyset()
        if keyset is not None:
            try:
                return jwt.decode(token, keyset, algorithms=ASYMMETRIC_ALGORITHMS), True
            except JoseError:
                self._refresh_on_unknown_kid(token, keyset)
                if self._secret is None:
                    raise
        if self._secret is None:
            raise ValueError("no verification key configured")
        return jwt.decode(token, self._secret, algorithms=["HS256"]), False

    def verify_api_key(self, key: str) -> Credential:
        if self._api_key is None or not hmac.compare_digest(key.encode(), self._api_key):
            raise Unauthenticated("invalid API key")
        return Credential(Actor(subject=API_KEY_SUBJECT, roles=frozenset({Role.SERVICE})), None)

    def from_headers(self, authorization: str | None, api_key: str | None) -> Credential:
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("Authorization must be 'Bearer <token>'")
            return self.verify_token(token.strip())
        if api_key:
            return self.verify_api_key(api_key)
        raise Unauthenticated("missing credentials: send 'Authorization: Bearer <token>' or 'X-API-Key'")

    def from_connection_params(self, params: object) -> Credential:
        """WebSocket connection_init payload: {"Authorization": "Bearer ..."} or {"token": "..."}."""
        if not isinstance(params, dict):
            raise Unauthenticated("missing credentials in connection_init")
        authorization = params.get("Authorization") or params.get("authorization")
        token = params.get("token")
        if isinstance(authorization, str):
            return self.from_headers(authorization, None)
        if isinstance(token, str):
            return self.verify_token(token)
        api_key = params.get("X-API-Key") or params.get("x-api-key")
        if isinstance(api_key, str):
            return self.verify_api_key(api_key)
        raise Unauthenticated("missing credentials in connection_init")
