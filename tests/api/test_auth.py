"""Credentials over real HTTP: JWTs (HS256, RS256/ES256 via JWKS), claim checks, the API key, the CLI token,
the recorded actor, and the refusal to start without a real secret.

Token checks do not depend on the database, so most run on SQLite only; the audit check runs on both.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from graphql_api.app import ConfigurationError, create_app
from graphql_api.auth import mint_token
from graphql_api.config import Settings
from tests.support.server import API_KEY, SECRET, Api, free_port, running, settings_for, token

HITL = str(Path(sys.executable).with_name("hitl"))
ME = "{ me { subject roles } }"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(claims: dict, key: object = None, alg: str = "HS256", kid: str | None = None) -> str:
    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    return jwt.encode(header, claims, key if key is not None else OctKey.import_key(SECRET), algorithms=[alg])


def claims(sub: str = "alice", roles: list | str = ("viewer",), **extra: object) -> dict:
    now = int(time.time())
    return {"sub": sub, "roles": list(roles) if not isinstance(roles, str) else roles, "iat": now, "exp": now + 600, **extra}


def code_of(body: dict) -> str | None:
    errors = body.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


async def me(api: Api, *, bearer: str | None = None, headers: dict | None = None) -> dict:
    sent = dict(headers or {})
    if bearer is not None:
        sent["Authorization"] = f"Bearer {bearer}"
    response = await api.client.post(f"{api.base}/graphql", json={"query": ME}, headers=sent)
    assert response.status_code == 200, response.text
    return response.json()


def hitl_env(**values: str) -> dict:
    """The test process's environment without any HITL_* setting, plus `values`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HITL_", "POSTGRES_"))}
    return {**env, **values}


# --- HS256 and the rejections -------------------------------------------------------------------------


def _alg_none() -> str:
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(roles=['admin']))}."


def _without_exp() -> str:
    body = claims(roles=["admin"])
    del body["exp"]
    return signed(body)


BAD_CREDENTIALS = {
    "missing": {},
    "expired beyond the leeway": {"Authorization": "Bearer " + mint_token(secret=SECRET, subject="alice", roles=["admin"], ttl_seconds=-120)},
    "other secret": {"Authorization": "Bearer " + mint_token(secret="x" * 48, subject="alice", roles=["admin"], ttl_seconds=600)},
    "alg none": {"Authorization": "Bearer " + _alg_none()},
    "alg none, signature kept": {"Authorization": "Bearer " + _alg_none() + token("alice", "admin").rsplit(".", 1)[1]},
    "no exp": {"Authorization": "Bearer " + _without_exp()},
    "no sub": {"Authorization": "Bearer " + signed({k: v for k, v in claims().items() if k != "sub"})},
    "tampered payload": {"Authorization": "Bearer " + ".".join([token("alice", "viewer").split(".")[0], b64(claims(roles=["admin"])), token("alice", "viewer").split(".")[2]])},
    "not a JWT": {"Authorization": "Bearer not-a-jwt"},
    "scheme Basic": {"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()},
    "scheme Token": {"Authorization": "Token " + token("alice", "admin")},
    "bare token": {"Authorization": token("alice", "admin")},
    "Bearer without a token": {"Authorization": "Bearer"},
    "Bearer and dots": {"Authorization": "Bearer .."},
    "oversized token": {"Authorization": "Bearer " + "a" * 10_000},
    "wrong API key": {"X-API-Key": API_KEY + "x"},
    "empty API key": {"X-API-Key": ""},
    "bad token with a valid API key": {"Authorization": "Bearer nope", "X-API-Key": API_KEY},
}


@SQLITE_ONLY
async def test_bad_credentials_are_unauthenticated(api):
    """One server, every case; the failure lists each case that was not refused."""
    wrong = {}
    for case, headers in BAD_CREDENTIALS.items():
        body = await me(api, headers=headers)
        if code_of(body) != "UNAUTHENTICATED" or body.get("data") is not None:
            wrong[case] = body
        # The message says what is wrong with the credential, never echoes a secret.
        assert SECRET not in json.dumps(body) and API_KEY not in json.dumps(body)
    assert not wrong, wrong


@SQLITE_ONLY
async def test_hs256_token_and_case_insensitive_roles(api):
    assert (await me(api, bearer=token("alice", "reviewer")))["data"]["me"] == {"subject": "alice", "roles": ["REVIEWER"]}
    mixed = signed(claims(sub="bob", roles=["Reviewer", "lEaD", "no-such-role"]))
    assert (await me(api, bearer=mixed))["data"]["me"] == {"subject": "bob", "roles": ["LEAD", "REVIEWER"]}
    single = signed(claims(sub="carol", roles="admin"))
    assert (await me(api, bearer=single))["data"]["me"] == {"subject": "carol", "roles": ["ADMIN"]}
    # The scheme name is case-insensitive too (RFC 9110).
    assert (await me(api, headers={"Authorization": "bearer " + token("dave", "viewer")}))["data"]["me"]["subject"] == "dave"


@SQLITE_ONLY
async def test_clock_skew_leeway(api):
    assert api.settings.jwt_leeway_seconds == 30
    now = int(time.time())
    ten_seconds_ago = signed({**claims(), "exp": now - 10})
    assert (await me(api, bearer=ten_seconds_ago))["data"]["me"]["subject"] == "alice"
    a_minute_ago = signed({**claims(), "exp": now - 60})
    assert code_of(await me(api, bearer=a_minute_ago)) == "UNAUTHENTICATED"
    issued_in_the_future = signed({**claims(), "iat": now + 3600})
    assert code_of(await me(api, bearer=issued_in_the_future)) == "UNAUTHENTICATED"
    not_yet_valid = signed({**claims(), "nbf": now + 3600})
    assert code_of(await me(api, bearer=not_yet_valid)) == "UNAUTHENTICATED"


@SQLITE_ONLY
async def test_api_key_acts_as_service(api):
    body = await me(api, headers={"X-API-Key": API_KEY})
    assert body["data"]["me"] == {"subject": "service:internal", "roles": ["SERVICE"]}
    submitted = await api.gql(
        "mutation { submitPatch(input: {patchId: \"K-1\", apvId: \"A\", packageName: \"p\", currentVersion: \"1.0.0\", targetVersion: \"1.0.1\", severity: LOW}) { patch { id } } }",
        headers={"X-API-Key": API_KEY},
    )
    assert "errors" not in submitted, submitted
    log = await api.gql("{ auditLog { edges { node { action actor } } } }", headers={"X-API-Key": API_KEY})
    assert [edge["node"] for edge in log["data"]["auditLog"]["edges"]] == [{"action": "SUBMITTED", "actor": "service:internal"}]


@SQLITE_ONLY
async def test_api_key_is_off_when_not_configured(database_url):
    async with running(settings_for(database_url, internal_api_key=None)) as api:
        assert code_of(await me(api, headers={"X-API-Key": API_KEY})) == "UNAUTHENTICATED"
        assert code_of(await me(api, headers={"X-API-Key": ""})) == "UNAUTHENTICATED"


# --- the actor is the token's subject -----------------------------------------------------------------


async def test_recorded_actor_is_the_token_subject(api):
    service = signed(claims(sub="svc-upstream", roles=["service"], name="mallory", preferred_username="mallory", actor="mallory"))
    spoof = {"X-User": "mallory", "X-Forwarded-User": "mallory", "X-Actor": "mallory", "X-Remote-User": "mallory"}
    # The client "says" it is mallory in claims the service does not use and in headers; only `sub` counts.
    created = await api.gql(
        "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { id } } }",
        {"i": {"patchId": "P-1", "apvId": "A-1", "packageName": "requests", "currentVersion": "2.31.0", "targetVersion": "2.32.0", "severity": "HIGH"}},
        as_=service,
        headers=spoof,
    )
    assert "errors" not in created, created
    patch = created["data"]["submitPatch"]["patch"]
    reviewer = signed(claims(sub="alice", roles=["reviewer"], name="mallory", preferred_username="mallory", actor="mallory", user="mallory"))
    commented = await api.gql(
        'mutation($id: ID!) { addComment(id: $id, body: "looks fine") { author } }', {"id": patch["id"]}, as_=reviewer, headers=spoof
    )
    assert commented["data"]["addComment"] == {"author": "alice"}, commented
    approved = await api.gql(
        'mutation($id: ID!) { approvePatch(id: $id, comment: "approved by mallory") { status decidedBy approvals { approver } } }',
        {"id": patch["id"]},
        as_=reviewer,
        headers=spoof,
    )
    assert approved["data"]["approvePatch"] == {"status": "APPROVED", "decidedBy": "alice", "approvals": [{"approver": "alice"}]}, approved
    trail = await api.gql(
        "query($id: ID!) { auditLog(filter: {decisionId: $id}) { edges { node { action actor } } } }", {"id": patch["id"]}, as_=reviewer
    )
    assert [edge["node"] for edge in trail["data"]["auditLog"]["edges"]] == [
        {"action": "SUBMITTED", "actor": "svc-upstream"},
        {"action": "COMMENTED", "actor": "alice"},
        {"action": "APPROVED", "actor": "alice"},
    ]
    nobody = await api.gql("{ auditLog(filter: {actor: \"mallory\"}) { totalCount } }", as_=reviewer)
    assert nobody["data"]["auditLog"]["totalCount"] == 0


# --- RS256 / ES256 against a JWKS file ----------------------------------------------------------------


@pytest.fixture
def jwks(tmp_path: Path) -> tuple[Path, RSAKey, ECKey]:
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(KeySet([rsa, ec]).as_dict(private=False)))
    assert '"d"' not in path.read_text()  # only the public halves are published
    return path, rsa, ec


@SQLITE_ONLY
async def test_jwks_rs256_and_es256(database_url, jwks):
    path, rsa, ec = jwks
    stranger_rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-9"})
    impostor_rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})  # a known kid, the wrong key
    impostor_ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    async with running(settings_for(database_url, jwks_file=str(path))) as api:
        rs = signed(claims(sub="idp-alice", roles=["lead"]), rsa, "RS256", "rsa-1")
        es = signed(claims(sub="idp-bob", roles=["admin"]), ec, "ES256", "ec-1")
        assert (await me(api, bearer=rs))["data"]["me"] == {"subject": "idp-alice", "roles": ["LEAD"]}
        assert (await me(api, bearer=es))["data"]["me"] == {"subject": "idp-bob", "roles": ["ADMIN"]}
        # HS256 with the configured secret still works beside the JWKS.
        assert (await me(api, bearer=token("carol", "viewer")))["data"]["me"]["subject"] == "carol"
        for bad in (
            signed(claims(), stranger_rsa, "RS256", "rsa-9"),
            signed(claims(), impostor_rsa, "RS256", "rsa-1"),
            signed(claims(), impostor_ec, "ES256", "ec-1"),
            signed(claims(), rsa, "RS384", "rsa-1"),  # a known key with an algorithm that is not accepted
            signed({**claims(), "exp": int(time.time()) - 120}, rsa, "RS256", "rsa-1"),
            signed({k: v for k, v in claims().items() if k != "exp"}, ec, "ES256", "ec-1"),
        ):
            assert code_of(await me(api, bearer=bad)) == "UNAUTHENTICATED"


@SQLITE_ONLY
async def test_jwks_only_configuration(database_url, jwks):
    """With a JWKS and no secret the service starts outside dev mode, and HS256 tokens mean nothing."""
    path, rsa, _ec = jwks
    async with running(settings_for(database_url, jwks_file=str(path), jwt_secret=None)) as api:
        assert (await me(api, bearer=signed(claims(sub="idp-alice"), rsa, "RS256", "rsa-1")))["data"]["me"]["subject"] == "idp-alice"
        assert code_of(await me(api, bearer=token("carol", "admin"))) == "UNAUTHENTICATED"
        # An HS256 token "signed" with the RSA public key (algorithm confusion) is refused.
        signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims(roles=['admin']))}"
        mac = hmac.new(rsa.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
        confused = f"{signing_input}.{b64(mac)}"
        assert code_of(await me(api, bearer=confused)) == "UNAUTHENTICATED"


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 (a thread): serves `document`, or 503 while `down`, after `delay` s; counts fetches."""

    def __init__(self, document: dict) -> None:
        self.document, self.down, self.delay, self.fetches = document, False, 0.0, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                owner.fetches += 1
                time.sleep(owner.delay)
                body, status = (b"unavailable", 503) if owner.down else (json.dumps(owner.document).encode(), 200)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "JwksServer":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@SQLITE_ONLY
async def test_jwks_url_is_cached_and_survives_an_idp_outage(database_url, jwks, monkeypatch):
    from graphql_api import auth

    path, rsa, _ec = jwks
    rs = signed(claims(sub="idp-alice", roles=["lead"]), rsa, "RS256", "rsa-1")
    with JwksServer(json.loads(path.read_text())) as idp:
        async with running(settings_for(database_url, jwks_url=idp.url)) as api:
            for _ in range(3):
                assert (await me(api, bearer=rs))["data"]["me"]["subject"] == "idp-alice"
            assert idp.fetches == 1  # cached
            # The cache expires while the IdP is down: the last good keys keep working, and the service
            # does not fetch again on every request.
            monkeypatch.setattr(auth, "JWKS_CACHE_SECONDS", 0)
            idp.down, idp.delay = True, 1.5  # a slow, failing IdP
            started = time.monotonic()
            assert (await me(api, bearer=rs))["data"]["me"]["subject"] == "idp-alice"
            assert time.monotonic() - started < idp.delay  # the reload runs beside the request, not inside it (it would take the delay)
            for _ in range(500):  # the background reload fails...
                if idp.fetches == 2:
                    break
                await asyncio.sleep(0.01)
            for _ in range(3):  # ...and the next one waits JWKS_RETRY_SECONDS
                assert (await me(api, bearer=rs))["data"]["me"]["subject"] == "idp-alice"
            await asyncio.sleep(0.2)
            assert idp.fetches == 2
            assert (await me(api, bearer=token("carol", "viewer")))["data"]["me"]["subject"] == "carol"


@SQLITE_ONLY
async def test_hs256_tokens_do_not_depend_on_the_jwks(database_url, jwks):
    path, rsa, _ec = jwks
    with JwksServer(json.loads(path.read_text())) as idp:
        idp.down = True
        async with running(settings_for(database_url, jwks_url=idp.url)) as api:
            for _ in range(3):
                assert (await me(api, bearer=token("carol", "viewer")))["data"]["me"]["subject"] == "carol"
                assert code_of(await me(api, bearer=signed(claims(), rsa, "RS256", "rsa-1"))) == "UNAUTHENTICATED"
            assert idp.fetches == 1  # one failed load, then a retry delay, not a fetch per request


@SQLITE_ONLY
async def test_issuer_and_audience_are_checked_when_configured(database_url, jwks):
    path, rsa, _ec = jwks
    settings = settings_for(database_url, jwks_file=str(path), jwt_issuer="https://idp.example", jwt_audience="hitl")
    async with running(settings) as api:
        good = {"iss": "https://idp.example", "aud": "hitl"}
        assert (await me(api, bearer=signed(claims(**good))))["data"]["me"]["subject"] == "alice"
        assert (await me(api, bearer=signed(claims(**good), rsa, "RS256", "rsa-1")))["data"]["me"]["subject"] == "alice"
        several = {"iss": "https://idp.example", "aud": ["other", "hitl"]}
        assert (await me(api, bearer=signed(claims(**several))))["data"]["me"]["subject"] == "alice"
        for bad in (
            {"aud": "hitl"},
            {"iss": "https://idp.example"},
            {"iss": "https://evil.example", "aud": "hitl"},
            {"iss": "https://idp.example", "aud": "other"},
            {"iss": "https://idp.example", "aud": ["other"]},
            {"iss": "https://idp.example", "aud": ""},
        ):
            assert code_of(await me(api, bearer=signed(claims(**bad)))) == "UNAUTHENTICATED", bad
            assert code_of(await me(api, bearer=signed(claims(**bad), rsa, "RS256", "rsa-1"))) == "UNAUTHENTICATED", bad
        # `hitl token` mints with the configured issuer and audience.
        minted = mint_token(secret=SECRET, subject="eve", roles=["viewer"], ttl_seconds=60, issuer="https://idp.example", audience="hitl")
        assert (await me(api, bearer=minted))["data"]["me"]["subject"] == "eve"


@SQLITE_ONLY
async def test_without_configured_issuer_any_issuer_passes(api):
    assert (await me(api, bearer=signed(claims(iss="https://anyone.example", aud="whatever"))))["data"]["me"]["subject"] == "alice"


# --- the command line ---------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_cli_token_is_accepted(api, tmp_path):
    returncode, stdout, stderr = await run_cli("token", "--sub", "alice", "--role", "reviewer", "--ttl", "1h", env=hitl_env(HITL_JWT_SECRET=SECRET), cwd=tmp_path)
    assert returncode == 0, stderr
    printed = stdout.strip()
    assert printed.count(".") == 2 and "\n" not in printed, stdout
    assert (await me(api, bearer=printed))["data"]["me"] == {"subject": "alice", "roles": ["REVIEWER"]}
    lifetime = jwt.decode(printed, OctKey.import_key(SECRET)).claims
    assert 3590 <= lifetime["exp"] - time.time() <= 3600


async def test_cli_token_needs_a_secret_and_known_roles(tmp_path):
    no_secret, bad_role = await asyncio.gather(
        run_cli("token", "--sub", "alice", "--role", "reviewer", env=hitl_env(), cwd=tmp_path),
        run_cli("token", "--sub", "alice", "--role", "superuser", env=hitl_env(HITL_JWT_SECRET=SECRET), cwd=tmp_path),
    )
    assert no_secret[0] != 0 and "HITL_JWT_SECRET" in no_secret[1] + no_secret[2] and no_secret[1].count(".") < 2
    assert bad_role[0] != 0 and "superuser" in bad_role[1] + bad_role[2]


# --- refusing to start without a real secret ----------------------------------------------------------

BAD_SECRETS = {
    "unset": None,
    "empty": "",
    "placeholder": "changeme",
    "long placeholder": "placeholder-placeholder-placeholder-placeholder",
    "short": "s3cr3t-but-only-31-characters!!",
}


@pytest.mark.parametrize("case", list(BAD_SECRETS))
def test_create_app_refuses_a_missing_or_weak_secret(tmp_path, case):
    secret = BAD_SECRETS[case]
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db", jwt_secret=secret)
    with pytest.raises(ConfigurationError, match="HITL_JWT_SECRET"):
        create_app(settings)


def test_create_app_accepts_a_real_secret_or_dev_mode(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    assert create_app(Settings(_env_file=None, database_url=url, jwt_secret="k" * 32, audit_checkpoint_key="c" * 32)) is not None
    assert create_app(Settings(_env_file=None, database_url=url, dev=True)) is not None  # `hitl serve --dev` generates one
    # No checkpoints, no key needed.
    assert create_app(Settings(_env_file=None, database_url=url, jwt_secret="k" * 32, audit_checkpoint_seconds=0)) is not None


@pytest.mark.parametrize("case", list(BAD_SECRETS))
def test_create_app_refuses_a_missing_or_weak_checkpoint_key(tmp_path, case):
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db", jwt_secret="k" * 32, audit_checkpoint_key=BAD_SECRETS[case])
    with pytest.raises(ConfigurationError, match="HITL_AUDIT_CHECKPOINT_KEY") as refused:
        create_app(settings)
    assert not BAD_SECRETS[case] or BAD_SECRETS[case] not in str(refused.value), "the key is never shown"


async def run_cli(*args: str, env: dict, cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(HITL, *args, env=env, cwd=cwd, stdout=PIPE, stderr=PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"`hitl {' '.join(args)}` still running after {timeout} s")
    return process.returncode, stdout.decode(), stderr.decode()


async def test_hitl_serve_refuses_a_missing_or_weak_secret(tmp_path):
    async def serve(case: str) -> tuple[str, int, str]:
        env = hitl_env(HITL_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/{case}.db", HITL_HOST="127.0.0.1", HITL_PORT=str(free_port()))
        if BAD_SECRETS[case] is not None:
            env["HITL_JWT_SECRET"] = BAD_SECRETS[case]
        code, _out, err = await run_cli("serve", env=env, cwd=tmp_path)
        return case, code, err

    for case, code, stderr in await asyncio.gather(*(serve(case) for case in ("unset", "short"))):
        assert code != 0, case
        assert "refusing to start" in stderr and "HITL_JWT_SECRET" in stderr, (case, stderr)
        assert "Traceback" not in stderr, (case, stderr)


async def test_reserved_subjects_cannot_be_claimed(api):
    from tests.support.server import token as mint

    for subject in ("system:auto-approval", "system:sla-watcher", "synthetic:generator", "service:internal"):
        body = await api.gql("{ me { subject } }", as_=mint(subject, "admin"))
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", subject


def test_unknown_key_id_triggers_a_jwks_reload(tmp_path):
    """Key rotation: a token signed with the IdP's new key works once the JWKS has been reloaded, which
    the unknown key id itself triggers (in the background, rate-limited)."""
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import KeySet, RSAKey

    from db.services.errors import Unauthenticated
    from graphql_api.auth import Authenticator
    from graphql_api.config import Settings

    old, new = RSAKey.generate_key(2048, parameters={"kid": "old"}), RSAKey.generate_key(2048, parameters={"kid": "new"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(KeySet([old]).as_dict(private=False)))
    authenticator = Authenticator(Settings(_env_file=None, jwks_file=str(jwks)))
    for _ in range(100):  # the first load runs in the background
        if authenticator._keyset() is not None:
            break
        time.sleep(0.02)
    claims = {"sub": "rotated", "roles": ["viewer"], "exp": int(time.time()) + 300}
    rotated = jose_jwt.encode({"alg": "RS256", "kid": "new"}, claims, new)
    assert authenticator.verify_token(jose_jwt.encode({"alg": "RS256", "kid": "old"}, claims, old)).actor.subject == "rotated"
    jwks.write_text(json.dumps(KeySet([old, new]).as_dict(private=False)))
    with pytest.raises(Unauthenticated):
        authenticator.verify_token(rotated)  # unknown kid: refused now, reload requested
    for _ in range(100):
        try:
            assert authenticator.verify_token(rotated).actor.subject == "rotated"
            break
        except Unauthenticated:
            time.sleep(0.05)
    else:
        pytest.fail("the rotated key was never picked up")
