"""Authentication attacks over real HTTP and WebSocket: every forged, stale or misdirected credential is
UNAUTHENTICATED on every surface (GraphQL query and mutation, the /hitl REST aliases, connection_init on both
WebSocket subprotocols), a valid credential with too low a role is FORBIDDEN, and neither writes anything
(patch count, audit log length, the seeded patch and the kill switch are compared before and after).

The server is configured the strict way: HS256 secret + a JWKS with an RSA key (so algorithm confusion has a
public key to abuse) + issuer and audience. One server per backend serves a whole table (module scope).
Backends: authentication reads nothing from the database (graphql_api.auth verifies tokens in memory), so the
backend only matters for "nothing written"; the big attack table (each credential on 9 surfaces) runs on
PostgreSQL, the production backend, and the role table and the valid-credential checks on both. Token
expiry on an open WebSocket runs on SQLite only.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from shutil import copyfile

import httpx
import pytest
import pytest_asyncio
import websockets
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from tests.support.server import API_KEY, SECRET, settings_for, start_server
from tests.support.databases import fresh_database
from tests.support.wsclient import LEGACY_WS, TRANSPORT_WS, connect

pytestmark = [pytest.mark.hardening, pytest.mark.asyncio(loop_scope="module")]

ISSUER = "https://idp.example"
AUDIENCE = "hitl"
RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)
ATTACKER_RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)  # the known kid, another key


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(sub: str = "mallory", roles: list | None = None, **extra: object) -> dict:
    now = int(time.time())
    body = {"sub": sub, "roles": roles if roles is not None else ["admin"], "iat": now, "exp": now + 3600, "iss": ISSUER, "aud": AUDIENCE}
    body.update(extra)
    return {key: value for key, value in body.items() if value is not None}


def hs256(body: dict, secret: str = SECRET, header: dict | None = None) -> str:
    return jwt.encode({"alg": "HS256", "typ": "JWT", **(header or {})}, body, OctKey.import_key(secret))


def rs256(body: dict, key: RSAKey = RSA, header: dict | None = None) -> str:
    return jwt.encode({"alg": "RS256", "typ": "JWT", "kid": key.kid, **(header or {})}, body, key, algorithms=["RS256"])


def hmac_signed(body: dict, key_bytes: bytes, header: dict | None = None) -> str:
    """HS256 computed by hand, with any bytes as the secret (joserfc refuses to use public keys as HMAC keys)."""
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', **(header or {})})}.{b64(body)}"
    return f"{signing_input}.{b64(hmac.new(key_bytes, signing_input.encode(), hashlib.sha256).digest())}"


def unsigned(body: dict, alg: str) -> str:
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(body)}."


def replace_payload(token: str, body: dict) -> str:
    header, _payload, signature = token.split(".")
    return f"{header}.{b64(body)}.{signature}"


def flip_last(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


VALID_ADMIN = hs256(claims(sub="adam", roles=["admin"]))
VALID_VIEWER = hs256(claims(sub="vera", roles=["viewer"]))
PUBLIC_PEM = RSA.as_pem(private=False)
PUBLIC_JWK = json.dumps(RSA.as_dict(private=False)).encode()


@dataclass(frozen=True)
class Credential:
    """How a credential is presented: an Authorization header value, or an X-API-Key."""

    authorization: str | None = None
    api_key: str | None = None

    def headers(self) -> dict:
        sent = {}
        if self.authorization is not None:
            sent["Authorization"] = self.authorization
        if self.api_key is not None:
            sent["X-API-Key"] = self.api_key
        return sent

    def init_payload(self) -> dict:
        payload = {}
        if self.authorization is not None:
            payload["Authorization"] = self.authorization
        if self.api_key is not None:
            payload["X-API-Key"] = self.api_key
        return payload


def bearer(token: str) -> Credential:
    return Credential(authorization=f"Bearer {token}")


now = int(time.time())
ATTACKS: dict[str, Credential] = {
    "no credential": Credential(),
    "bearer without a token": Credential(authorization="Bearer"),
    "malformed: not a JWT": bearer("not-a-jwt"),
    "malformed: three garbage segments": bearer("%%%.@@@.!!!"),
    "malformed: header and payload only": bearer(".".join(VALID_ADMIN.split(".")[:2])),
    "malformed: JSON array as header": bearer(f"{b64(b'[1,2]')}.{b64(claims())}.{VALID_ADMIN.split('.')[2]}"),
    # joserfc refuses a header over 512 bytes; the unknown-kid check must not recurse into it (RecursionError: 500).
    "malformed: header nested 2,900 deep": bearer(f"{b64(b'[' * 2900 + b']' * 2900)}.{b64(claims())}.{VALID_ADMIN.split('.')[2]}"),
    "malformed: 4 segments": bearer(VALID_ADMIN + ".AAAA"),
    "wrong signature: another secret": bearer(hs256(claims(), secret="s" * 48)),
    "wrong signature: one character changed": bearer(flip_last(VALID_ADMIN)),
    "wrong signature: empty": bearer(VALID_ADMIN.rsplit(".", 1)[0] + "."),
    "wrong signature: RS256 by another key with the known kid": bearer(rs256(claims(), ATTACKER_RSA)),
    "wrong signature: RS256 with an embedded attacker jwk": bearer(
        rs256(claims(), ATTACKER_RSA, header={"kid": "evil", "jwk": ATTACKER_RSA.as_dict(private=False)})
    ),
    "alg none": bearer(unsigned(claims(), "none")),
    "alg None": bearer(unsigned(claims(), "None")),
    "alg NONE, valid signature kept": bearer(unsigned(claims(), "NONE") + VALID_ADMIN.rsplit(".", 1)[1]),
    "algorithm confusion: HS256 keyed with the public key PEM": bearer(hmac_signed(claims(), PUBLIC_PEM)),
    "algorithm confusion: HS256 keyed with the public JWK": bearer(hmac_signed(claims(), PUBLIC_JWK)),
    "algorithm confusion: HS256 with the RSA kid": bearer(hmac_signed(claims(), PUBLIC_PEM, header={"kid": "rsa-1"})),
    "expired": bearer(hs256(claims(exp=now - 120, iat=now - 3720))),
    "expired (RS256)": bearer(rs256(claims(exp=now - 120, iat=now - 3720))),
    "no exp": bearer(hs256(claims(exp=None))),
    "not yet valid: nbf in the future": bearer(hs256(claims(nbf=now + 3600))),
    "not yet valid: iat in the future": bearer(hs256(claims(iat=now + 3600))),
    "wrong iss": bearer(hs256(claims(iss="https://evil.example"))),
    "no iss": bearer(hs256(claims(iss=None))),
    "wrong aud": bearer(hs256(claims(aud="other-service"))),
    "wrong aud (RS256)": bearer(rs256(claims(aud=["other-service"]))),
    "no aud": bearer(hs256(claims(aud=None))),
    "tampered roles: viewer edited to admin, signature kept": bearer(replace_payload(VALID_VIEWER, claims(sub="vera", roles=["admin"]))),
    "tampered roles (RS256)": bearer(replace_payload(rs256(claims(roles=["viewer"])), claims(roles=["admin"]))),
    "tampered sub, signature kept": bearer(replace_payload(VALID_ADMIN, claims(sub="someone-else", roles=["admin"]))),
    "reserved subject": bearer(hs256(claims(sub="system:auto-approval"))),
    "API key: last character wrong": Credential(api_key=flip_last(API_KEY)),
    "API key: first character wrong": Credential(api_key=("A" if API_KEY[0] != "A" else "B") + API_KEY[1:]),
    "API key: one character short": Credential(api_key=API_KEY[:-1]),
    "API key: one character more": Credential(api_key=API_KEY + "x"),
    "API key: as a bearer token": bearer(API_KEY),
    "valid token, wrong scheme": Credential(authorization=f"Basic {VALID_ADMIN}"),
}


# --- the server ---------------------------------------------------------------------------------------


@dataclass
class Target:
    base: str
    client: httpx.AsyncClient
    seeded: dict  # a PENDING patch
    escalation: dict  # a PENDING patch that requires escalation (LEAD/ADMIN only)

    async def gql(self, query: str, variables: dict | None = None, headers: dict | None = None) -> dict:
        response = await self.client.post(f"{self.base}/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {})
        assert response.status_code == 200, response.text
        return response.json()

    async def state(self) -> dict:
        """Everything an accepted mutation would change."""
        body = await self.gql(
            """query($a: ID!, $b: ID!) { patches(first: 1) { totalCount } auditLog(first: 1) { totalCount }
                 autoApprovalState { paused } mlModel { version }
                 a: patch(id: $a) { status version comments { id } } b: patch(id: $b) { status version } }""",
            {"a": self.seeded["id"], "b": self.escalation["id"]},
            headers={"Authorization": f"Bearer {VALID_ADMIN}"},
        )
        assert "errors" not in body, body
        return body["data"]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def target(request, tmp_path_factory) -> AsyncIterator[Target]:
    directory = tmp_path_factory.mktemp("auth")
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps(KeySet([RSA]).as_dict(private=False)))
    async with fresh_database(request.param, request, directory) as database_url:
        settings = settings_for(database_url, jwks_file=str(jwks), jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
        server, task, base, _app = await start_server(settings)
        try:
            async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
                service = {"Authorization": f"Bearer {hs256(claims(sub='svc-upstream', roles=['service']))}"}
                seeded = await _submit(client, base, service, "AUTH-1")
                escalation = await _submit(client, base, service, "AUTH-2", affectedSystems=[f"host-{i}" for i in range(12)])
                assert escalation["requiresEscalation"] and seeded["status"] == "PENDING"
                yield Target(base, client, seeded, escalation)
        finally:
            server.should_exit = True
            await task


async def _submit(client: httpx.AsyncClient, base: str, headers: dict, patch_id: str, **extra: object) -> dict:
    query = "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { id status version requiresEscalation } } }"
    patch = {"patchId": patch_id, "apvId": "A", "packageName": "requests", "currentVersion": "2.31.0", "targetVersion": "2.32.0", "severity": "HIGH", **extra}
    body = (await client.post(f"{base}/graphql", json={"query": query, "variables": {"i": patch}}, headers=headers)).json()
    assert "errors" not in body, body
    return body["data"]["submitPatch"]["patch"]


# --- what every attack is tried on --------------------------------------------------------------------

QUERY = "{ me { subject roles } pendingPatches { totalCount } }"


def mutations(target: Target) -> dict[str, tuple[str, dict]]:
    """Mutations that would each write (a patch, a decision, an audit entry, the kill switch) if accepted."""
    a, b = target.seeded["id"], target.escalation["id"]
    return {
        "submitPatch": (
            "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { created } }",
            {"i": {"patchId": "FORGED-1", "apvId": "A", "packageName": "p", "currentVersion": "1.0.0", "targetVersion": "1.0.1", "severity": "LOW"}},
        ),
        "approvePatch": ("mutation($id: ID!) { approvePatch(id: $id) { status } }", {"id": a}),
        "approvePatch (escalation required)": ("mutation($id: ID!) { approvePatch(id: $id) { status } }", {"id": b}),
        "rejectPatch": ('mutation($id: ID!) { rejectPatch(id: $id, reason: "forged") { status } }', {"id": a}),
        "addComment": ('mutation($id: ID!) { addComment(id: $id, body: "forged") { id } }', {"id": a}),
        "cancelPatch": ('mutation($id: ID!) { cancelPatch(id: $id, reason: "forged") { status } }', {"id": a}),
        "setAutoApprovalPaused": ('mutation { setAutoApprovalPaused(paused: true, reason: "forged") { paused } }', {}),
        "trainModel": ("mutation { trainModel { version } }", {}),
    }


REST_PATHS = ("/hitl/patches/pending", "/hitl/analytics/summary")


def error_code(body: dict) -> str | None:
    errors = body.get("errors") or []
    return errors[0].get("extensions", {}).get("code") if errors else None


async def refused_on_websocket(target: Target, credential: Credential) -> dict:
    """How each subprotocol answered connection_init: the close code (graphql-transport-ws) or the message
    type (legacy graphql-ws)."""
    outcome = {}
    async with connect(target.base, token=None, protocol=TRANSPORT_WS, init=False) as client:
        try:
            message = await client.init(credential.init_payload())
            outcome[TRANSPORT_WS] = message["type"]
        except websockets.ConnectionClosed as closed:
            outcome[TRANSPORT_WS] = closed.rcvd.code if closed.rcvd else None
    async with connect(target.base, token=None, protocol=LEGACY_WS, init=False) as client:
        try:
            message = await client.init(credential.init_payload())
            outcome[LEGACY_WS] = message["type"]
        except websockets.ConnectionClosed as closed:
            outcome[LEGACY_WS] = f"closed {closed.rcvd.code if closed.rcvd else None} without connection_error"
    return outcome


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_attack_is_unauthenticated_everywhere_and_writes_nothing(target, attack):
    credential = ATTACKS[attack]
    before = await target.state()
    headers = credential.headers()

    query = await target.gql(QUERY, headers=headers)
    assert error_code(query) == "UNAUTHENTICATED" and not query.get("data"), query
    everything = mutations(target)
    # A new patch, a decision on each seeded patch, the kill switch (the role table below tries every mutation).
    for name in ("submitPatch", "approvePatch", "approvePatch (escalation required)", "setAutoApprovalPaused"):
        mutation, variables = everything[name]
        body = await target.gql(mutation, variables, headers=headers)
        assert error_code(body) == "UNAUTHENTICATED" and not body.get("data"), (mutation, body)
        assert all(error["extensions"]["code"] == "UNAUTHENTICATED" for error in body["errors"]), body

    for path in REST_PATHS:
        response = await target.client.get(f"{target.base}{path}", headers=headers)
        assert response.status_code == 401, (path, response.status_code, response.text)
        assert response.json()["error"]["code"] == "UNAUTHENTICATED", response.text

    assert await refused_on_websocket(target, credential) == {TRANSPORT_WS: 4401, LEGACY_WS: "connection_error"}

    assert await target.state() == before  # nothing written: no patch, no audit entry, no decision, no pause
    # No secret in what the attacker got back.
    assert SECRET not in json.dumps(query) and API_KEY not in json.dumps(query)


# --- valid credential, role too low -------------------------------------------------------------------

ALL = ("submitPatch", "approvePatch", "approvePatch (escalation required)", "rejectPatch", "addComment", "cancelPatch", "setAutoApprovalPaused", "trainModel")
# role -> (the token's roles, the mutations API.md's role table does not give it)
LOW_ROLES = {
    "viewer": (["viewer"], ALL),
    "reviewer": (["reviewer"], ("submitPatch", "approvePatch (escalation required)", "cancelPatch", "setAutoApprovalPaused", "trainModel")),
    "service": (["service"], ("approvePatch", "approvePatch (escalation required)", "rejectPatch", "addComment", "setAutoApprovalPaused", "trainModel")),
    "lead": (["lead"], ("submitPatch", "setAutoApprovalPaused", "trainModel")),
    "unknown role": (["superuser", "root"], ALL),
}


@pytest.mark.parametrize("role", list(LOW_ROLES))
async def test_role_too_low_is_forbidden_and_writes_nothing(target, role):
    roles, refused = LOW_ROLES[role]
    credential = bearer(hs256(claims(sub=f"low-{role}", roles=roles)))
    before = await target.state()
    everything = mutations(target)
    for name in refused:
        mutation, variables = everything[name]
        body = await target.gql(mutation, variables, headers=credential.headers())
        assert error_code(body) == "FORBIDDEN" and not body.get("data"), (role, name, body)
    query = await target.gql(QUERY, headers=credential.headers())
    if role == "unknown role":  # no known role: not even a reader
        assert error_code(query) == "FORBIDDEN", query
        for path in REST_PATHS:
            response = await target.client.get(f"{target.base}{path}", headers=credential.headers())
            assert response.status_code == 403 and response.json()["error"]["code"] == "FORBIDDEN", response.text
        # A valid token without a role is Forbidden (4403), not Unauthorized: signing in again would not help.
        assert await refused_on_websocket(target, credential) == {TRANSPORT_WS: 4403, LEGACY_WS: "connection_error"}
    else:
        assert query["data"]["me"] == {"subject": f"low-{role}", "roles": [role.upper()]}, query
    assert await target.state() == before


async def test_valid_credentials_pass_the_same_checks(target):
    """The same checks accept the real credentials: a valid admin token passes everywhere (and writes)."""
    credential = bearer(VALID_ADMIN)
    body = await target.gql(QUERY, headers=credential.headers())
    assert body["data"]["me"] == {"subject": "adam", "roles": ["ADMIN"]}
    for path in REST_PATHS:
        assert (await target.client.get(f"{target.base}{path}", headers=credential.headers())).status_code == 200
    for key in (Credential(api_key=API_KEY), bearer(rs256(claims(sub="idp-alice", roles=["viewer"])))):
        assert (await target.gql("{ me { subject } }", headers=key.headers()))["data"]["me"]["subject"] in ("service:internal", "idp-alice")
        async with connect(target.base, token=None, protocol=TRANSPORT_WS, init=False) as client:
            assert (await client.init(key.init_payload()))["type"] == "connection_ack"
        async with connect(target.base, token=None, protocol=LEGACY_WS, init=False) as client:
            assert (await client.init(key.init_payload()))["type"] == "connection_ack"


# --- a WebSocket whose token expires ------------------------------------------------------------------

EVENTS = "subscription { patchEvents { seq } }"


async def test_websocket_is_closed_when_its_token_expires(sqlite_template, tmp_path):
    copyfile(sqlite_template, tmp_path / "hitl.db")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(KeySet([RSA]).as_dict(private=False)))
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'hitl.db'}", jwt_leeway_seconds=0, jwks_file=str(jwks))
    server, task, base, _app = await start_server(settings)
    try:
        lifetime = 3  # seconds left when the tokens are made: enough to connect on a loaded machine (2 s, truncated, was not)

        async def closes(protocol: str, token: str) -> tuple[int, str, float]:
            async with connect(base, token=token, protocol=protocol) as client:
                opened = time.monotonic()
                await client.subscribe(EVENTS)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:  # keep-alives and pings may arrive first
                        await asyncio.wait_for(client.connection.recv(), 10)
                return closed.value.rcvd.code, closed.value.rcvd.reason, time.monotonic() - opened

        expires = math.ceil(time.time()) + lifetime
        short_hs = hs256({"sub": "brief", "roles": ["viewer"], "exp": expires})
        short_rs = rs256({"sub": "brief-rs", "roles": ["viewer"], "exp": expires})
        results = await asyncio.gather(closes(TRANSPORT_WS, short_hs), closes(LEGACY_WS, short_hs), closes(TRANSPORT_WS, short_rs))
        for code, reason, after in results:
            assert (code, reason) == (4401, "token expired")
            assert after < lifetime + 3, after
        # A socket whose token is still valid stays open meanwhile.
        async with connect(base, token=hs256({"sub": "long", "roles": ["viewer"], "exp": int(time.time()) + 600})) as client:
            await client.subscribe(EVENTS)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.connection.recv(), 0.3)
    finally:
        server.should_exit = True
        await task
