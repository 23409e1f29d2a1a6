"""Single sign-on on the API side, against a real OpenID provider (npm oidc-provider, tests/support/idp.py): tokens
from its authorization code flow (through its login page) and client credentials, verified with the keys its
discovery names, on HTTP (GraphQL), REST and WebSocket; roles from the `groups` claim through HITL_ROLE_MAP."""

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import pytest
import websockets

from graphql_api.auth import mint_token
from graphql_api.config import Settings
from graphql_api.oidc import is_id_token
from tests.support import idp
from tests.support.server import SECRET, Api, running, settings_for, submit
from tests.support.wsclient import TRANSPORT_WS, connect

# Token checks do not depend on the database: SQLite only.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ME = "{ me { subject roles } }"
PENDING = "{ pendingPatches(first: 10) { totalCount } }"
APPROVE = "mutation($id: ID!) { approvePatch(id: $id) { id status } }"
# HS256 tokens beside the provider's: with HITL_JWT_AUDIENCE set they carry it (as `hitl token` mints them).
UPSTREAM = mint_token(secret=SECRET, subject="svc-upstream", roles=["service"], ttl_seconds=3600, audience=idp.AUDIENCE)


def sso_settings(database_url: str, issuer: str, **overrides: object) -> Settings:
    return settings_for(
        database_url,
        oidc_issuer=issuer,
        oidc_client_id=idp.CONSOLE_CLIENT,
        jwt_audience=idp.AUDIENCE,
        roles_claim=idp.ROLES_CLAIM,
        role_map=idp.ROLE_MAP,
        jwt_leeway_seconds=0,
        **overrides,
    )


@pytest.fixture
async def api(database_url: str, provider: idp.Provider) -> AsyncIterator[Api]:
    async with running(sso_settings(database_url, provider.issuer)) as api:
        yield api


def access_token(provider: idp.Provider, user: str) -> str:
    return provider.login(user, idp.API_REDIRECT)["access_token"]


def code_of(body: dict) -> str | None:
    errors = body.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


def parts(token: str) -> tuple[dict, dict]:
    header, payload = (json.loads(base64.urlsafe_b64decode(part + "==")) for part in token.split(".")[:2])
    return header, payload


async def ws_close_code(api: Api, token: str) -> int | None:
    """The close code of a WebSocket whose connection_init carries `token` (None when it was accepted)."""
    url = api.base.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[TRANSPORT_WS], proxy=None) as connection:
        await connection.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        try:
            message = json.loads(await asyncio.wait_for(connection.recv(), 5))
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code
        assert message["type"] == "connection_ack", message
        return None


@SQLITE_ONLY
async def test_roles_come_from_the_providers_groups(api, provider):
    """rita's group maps to REVIEWER, lena's to LEAD (her other group is ignored), nora's to nothing: she may
    ask who she is (roles []) and nothing else, on GraphQL, REST and WebSocket."""
    rita, lena, nora = (access_token(provider, user) for user in ("rita", "lena", "nora"))
    assert (await api.gql(ME, as_=rita))["data"]["me"] == {"subject": "rita", "roles": ["REVIEWER"]}
    assert (await api.gql(ME, as_=lena))["data"]["me"] == {"subject": "lena", "roles": ["LEAD"]}
    assert (await api.gql(ME, as_=nora))["data"]["me"] == {"subject": "nora", "roles": []}

    assert (await api.gql(PENDING, as_=rita))["data"]["pendingPatches"]["totalCount"] == 0
    assert code_of(await api.gql(PENDING, as_=nora)) == "FORBIDDEN"

    rest = f"{api.base}/hitl/patches/pending"
    assert (await api.client.get(rest, headers={"Authorization": f"Bearer {rita}"})).status_code == 200
    assert (await api.client.get(rest, headers={"Authorization": f"Bearer {nora}"})).status_code == 403

    async with connect(api.base, token=lena) as client:
        await client.subscribe("subscription { analyticsSummary { pending } }")
        assert (await client.data())["analyticsSummary"] == {"pending": 0}
    assert await ws_close_code(api, nora) == 4403


@SQLITE_ONLY
async def test_the_reviewer_approves_and_the_unmapped_user_is_forbidden(api, provider):
    patch = await submit(api, 1, as_=UPSTREAM)
    rita, nora = access_token(provider, "rita"), access_token(provider, "nora")
    refused = await api.gql(APPROVE, {"id": patch["id"]}, as_=nora)
    assert code_of(refused) == "FORBIDDEN" and refused["data"] is None
    approved = await api.gql(APPROVE, {"id": patch["id"]}, as_=rita)
    assert approved["data"]["approvePatch"]["status"] == "APPROVED", approved
    audit = await api.gql('query($id: ID!) { patch(id: $id) { approvals { approver } } }', {"id": patch["id"]}, as_=rita)
    assert audit["data"]["patch"]["approvals"] == [{"approver": "rita"}]


@SQLITE_ONLY
async def test_tokens_the_service_must_refuse(api, provider, other_provider):
    """Each refused on HTTP (UNAUTHENTICATED), REST (401) and WebSocket (4401); the provider's own valid
    machine token passes all three, so the refusals are about the token, not the path."""
    valid = provider.client_credentials()["access_token"]
    expiring = provider.client_credentials(idp.EXPIRING_CLIENT)["access_token"]
    id_token = provider.login("rita", idp.API_REDIRECT)["id_token"]
    cases = {
        "another audience": provider.client_credentials(resource="urn:other:api")["access_token"],
        "another issuer (same signing key)": other_provider.client_credentials()["access_token"],
        "an ID token": id_token,
        "signed with another key": other_key_token(valid),
    }
    assert parts(expiring)[1]["exp"] - parts(expiring)[1]["iat"] <= 2
    await asyncio.sleep(max(0.0, parts(expiring)[1]["exp"] - time.time()) + 1.1)
    cases["expired"] = expiring
    assert parts(cases["another issuer (same signing key)"])[0]["kid"] == parts(valid)[0]["kid"]

    assert (await api.gql(ME, as_=valid))["data"]["me"] == {"subject": idp.MACHINE_CLIENT, "roles": []}
    assert (await api.client.get(f"{api.base}/hitl/patches/pending", headers={"Authorization": f"Bearer {valid}"})).status_code == 403
    assert await ws_close_code(api, valid) == 4403  # accepted, then refused for having no role
    wrong = {}
    for case, token in cases.items():
        http = await api.gql(ME, as_=token)
        rest = await api.client.get(f"{api.base}/hitl/patches/pending", headers={"Authorization": f"Bearer {token}"})
        ws = await ws_close_code(api, token)
        if (code_of(http), rest.status_code, ws) != ("UNAUTHENTICATED", 401, 4401):
            wrong[case] = (http, rest.status_code, ws)
    assert not wrong, wrong


def other_key_token(token: str) -> str:
    """The provider's token re-signed with a key of the same id that the provider never published."""
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    header, claims = parts(token)
    key = RSAKey.generate_key(2048, parameters={"kid": header["kid"]})
    return jwt.encode(header, claims, key)


async def test_the_id_token_is_recognised_even_for_the_client_audience(provider):
    """Without HITL_JWT_AUDIENCE the audience is the client id, which ID tokens carry too: the claims tell."""
    tokens = provider.login("rita", idp.API_REDIRECT)
    assert is_id_token(*parts(tokens["id_token"]))
    assert not is_id_token(*parts(tokens["access_token"]))


@SQLITE_ONLY
async def test_hs256_tokens_keep_working_beside_the_provider(api):
    """`hitl token` (minted with the configured audience, as the CLI does) and the API key still pass."""
    lead = mint_token(secret=SECRET, subject="ops-bot", roles=["lead"], ttl_seconds=60, audience=idp.AUDIENCE)
    assert (await api.gql(ME, as_=lead))["data"]["me"] == {"subject": "ops-bot", "roles": ["LEAD"]}
    # HS256 roles are role names in `roles`: an IdP group name there means nothing.
    grouped = mint_token(secret=SECRET, subject="ops-bot", roles=["sec-reviewers"], ttl_seconds=60, audience=idp.AUDIENCE)
    assert (await api.gql(ME, as_=grouped))["data"]["me"]["roles"] == []


@SQLITE_ONLY
async def test_a_provider_key_rotation_is_picked_up(database_url, idp_installed):
    """The provider restarts on the same port with a new key: the first token signed with it makes the
    service discover and fetch the keys again (in the background), and it is accepted soon after."""
    port = idp.free_port()
    with idp.provider(redirect_uris=[idp.API_REDIRECT], port=port) as first:
        async with running(sso_settings(database_url, first.issuer)) as api:
            before = access_token(first, "rita")
            assert (await api.gql(ME, as_=before))["data"]["me"]["roles"] == ["REVIEWER"]
            first.process.terminate()
            first.process.wait(timeout=10)
            with idp.provider(redirect_uris=[idp.API_REDIRECT], port=port) as second:
                after = access_token(second, "rita")
                assert parts(after)[0]["kid"] != parts(before)[0]["kid"]
                answers = []
                for _ in range(50):
                    answers.append(code_of(await api.gql(ME, as_=after)))
                    if answers[-1] is None:
                        break
                    await asyncio.sleep(0.1)
                assert answers[-1] is None and set(answers[:-1]) <= {"UNAUTHENTICATED"}, answers


@SQLITE_ONLY
async def test_an_unreachable_provider_at_startup_only_costs_its_own_tokens(database_url, idp_installed):
    """The provider is down when the service starts: HS256 tokens work; once it is up, its tokens work too
    (the service retries discovery, at most every JWKS_RETRY_SECONDS — shortened here)."""
    port = idp.free_port()
    settings = sso_settings(database_url, f"http://127.0.0.1:{port}")
    async with running(settings) as api:
        lead = mint_token(secret=SECRET, subject="ops-bot", roles=["lead"], ttl_seconds=60, audience=idp.AUDIENCE)
        assert (await api.gql(ME, as_=lead))["data"]["me"]["roles"] == ["LEAD"]
        api.app.state.services.authenticator._jwks_retry_at = 0.0  # noqa: SLF001 - skip the 30 s retry wait
        with idp.provider(redirect_uris=[idp.API_REDIRECT], port=port) as late:
            token = access_token(late, "lena")
            for _ in range(50):
                body = await api.gql(ME, as_=token)
                if code_of(body) is None:
                    break
                await asyncio.sleep(0.1)
            assert body["data"]["me"] == {"subject": "lena", "roles": ["LEAD"]}
