"""A real OpenID provider on 127.0.0.1 (npm `oidc-provider`, tests/sso/idp/server.mjs) and the test side of its
flows: the authorization code flow with PKCE through its login page (as a browser would, over HTTP), the
refresh token grant, and client credentials. Installed by scripts/install-test-tools.sh."""

import base64
import hashlib
import json
import re
import secrets
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from joserfc.jwk import RSAKey

from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
IDP_DIR = ROOT / "tests/sso/idp"
AUDIENCE = "urn:hitl:api"
CONSOLE_CLIENT = "hitl-console"
MACHINE_CLIENT = "hitl-tests"  # confidential, client_credentials
EXPIRING_CLIENT = "hitl-tests-expiring"  # confidential, client_credentials, 1 s tokens
CLIENT_SECRET = "test-client-secret-of-a-local-idp-only"
# Logins and their IdP groups: HITL_ROLE_MAP of the tests maps the first two.
USERS = {"rita": ["sec-reviewers"], "lena": ["sec-leads", "staff"], "nora": ["staff"]}
ROLE_MAP = "sec-reviewers=REVIEWER,sec-leads=LEAD"
ROLES_CLAIM = "groups"
API_REDIRECT = "http://127.0.0.1:9/console/callback"  # the API tests' code flow never follows it


def install() -> None:
    done = subprocess.run(["bash", str(ROOT / "scripts/install-test-tools.sh")], capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"scripts/install-test-tools.sh failed:\n{done.stdout}\n{done.stderr}"


def signing_key() -> dict:
    return RSAKey.generate_key(2048, parameters={"kid": f"test-{secrets.token_hex(4)}", "use": "sig", "alg": "RS256"}).as_dict(private=True)


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen
    output: list[str] = field(default_factory=list)

    def client_credentials(self, client_id: str = MACHINE_CLIENT, resource: str = AUDIENCE) -> dict:
        response = httpx.post(
            f"{self.issuer}/token", data={"grant_type": "client_credentials", "resource": resource}, auth=(client_id, CLIENT_SECRET), trust_env=False
        )
        assert response.status_code == 200, response.text
        return response.json()

    def login(self, user: str, redirect_uri: str, *, client_id: str = CONSOLE_CLIENT, resource: str | None = None) -> dict:
        """The authorization code flow with PKCE for `user` through the provider's login page: its token response
        (access_token, id_token, refresh_token, expires_in)."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        params = {
            "client_id": client_id, "response_type": "code", "redirect_uri": redirect_uri, "scope": "openid profile groups",
            "state": state, "code_challenge": challenge, "code_challenge_method": "S256", **({"resource": resource} if resource else {}),
        }
        with httpx.Client(trust_env=False, follow_redirects=False, timeout=10) as browser:
            response = browser.get(f"{self.issuer}/auth", params=params)
            for _ in range(10):
                location = response.headers.get("location")
                if location is None:  # a page: the login form
                    action = unescape(re.search(r'<form[^>]*action="([^"]+)"', response.text).group(1))
                    response = browser.post(urljoin(str(response.url), action), data={"prompt": "login", "login": user, "password": "any"})
                    continue
                if location.startswith(redirect_uri):
                    query = parse_qs(urlsplit(location).query)
                    assert query.get("state") == [state], location
                    assert "code" in query, location
                    code = query["code"][0]
                    break
                response = browser.get(urljoin(str(response.url), location))
            else:
                raise AssertionError(f"the login flow did not end at {redirect_uri}")
            tokens = browser.post(
                f"{self.issuer}/token",
                data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "client_id": client_id, "code_verifier": verifier,
                      **({"resource": resource} if resource else {})},
            )
        assert tokens.status_code == 200, tokens.text
        return tokens.json()

    def refresh(self, refresh_token: str, client_id: str = CONSOLE_CLIENT) -> dict:
        response = httpx.post(f"{self.issuer}/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}, trust_env=False)
        assert response.status_code == 200, response.text
        return response.json()


@contextmanager
def provider(
    *, redirect_uris: list[str], post_logout_redirect_uris: list[str] | None = None, access_token_ttl: int = 300, jwks: list[dict] | None = None, port: int | None = None
):
    port = port or free_port()
    confidential = {"client_secret": CLIENT_SECRET, "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": []}
    config = {
        "port": port,
        "accessTokenTTL": access_token_ttl,
        "audience": AUDIENCE,
        "expiringClient": EXPIRING_CLIENT,
        "users": USERS,
        "jwks": jwks or [signing_key()],
        "clients": [
            {
                "client_id": CONSOLE_CLIENT, "token_endpoint_auth_method": "none", "application_type": "web",
                "redirect_uris": redirect_uris, "post_logout_redirect_uris": post_logout_redirect_uris or [],
                "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            },
            {"client_id": MACHINE_CLIENT, **confidential},
            {"client_id": EXPIRING_CLIENT, **confidential},
        ],
    }
    process = subprocess.Popen(
        ["node", str(IDP_DIR / "server.mjs"), json.dumps(config)], cwd=IDP_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    running = Provider(issuer=f"http://127.0.0.1:{port}", process=process)
    try:
        for line in process.stdout:
            running.output.append(line)
            if line.startswith("READY "):
                break
        else:
            raise RuntimeError(f"the OpenID provider did not start:\n{''.join(running.output)}")
        # Keep reading its output (a full pipe would block it); shown by a failing test's assertion messages.
        threading.Thread(target=lambda: running.output.extend(process.stdout), daemon=True).start()
        yield running
    finally:
        process.terminate()
        process.wait(timeout=10)
