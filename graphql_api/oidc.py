"""The identity provider's side of single sign-on (API.md, "Single sign-on"): OpenID Connect discovery, and
what tells an access token from an ID token. graphql_api.auth verifies the tokens."""

import json
import urllib.request
from collections.abc import Mapping

DISCOVERY_PATH = "/.well-known/openid-configuration"
# Claims OpenID Connect Core defines for ID tokens only; Keycloak also marks its ID tokens with typ "ID".
ID_TOKEN_CLAIMS = ("nonce", "at_hash", "c_hash")


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + DISCOVERY_PATH


def discover(issuer: str, *, timeout: float = 5) -> dict:
    """The issuer's discovery document. Its `issuer` must be exactly the configured one (OIDC Discovery 4.3),
    and it must name a `jwks_uri`."""
    with urllib.request.urlopen(discovery_url(issuer), timeout=timeout) as response:  # noqa: S310 - operator-configured URL
        document = json.load(response)
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise ValueError(f"the discovery document of {issuer} names another issuer ({document.get('issuer') if isinstance(document, dict) else None!r})")
    if not isinstance(document.get("jwks_uri"), str) or not document["jwks_uri"].startswith(("https://", "http://")):
        raise ValueError(f"the discovery document of {issuer} has no jwks_uri")
    return document


def is_id_token(header: Mapping, claims: Mapping) -> bool:
    """True for an ID token: only access tokens are bearers. RFC 9068 access tokens say so in their header;
    the access tokens of other IdPs (Keycloak, Okta, Entra) carry their scopes (`scope` or `scp`) and none of the
    ID-token-only claims. (With HITL_JWT_AUDIENCE set, ID tokens already fail the audience: theirs is the client.)"""
    if str(header.get("typ", "")).lower() in ("at+jwt", "application/at+jwt"):
        return False
    if claims.get("typ") == "ID" or any(name in claims for name in ID_TOKEN_CLAIMS):
        return True
    return "scope" not in claims and "scp" not in claims
