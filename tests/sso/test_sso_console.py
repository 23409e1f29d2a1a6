"""Single sign-on in the reviewer console, in headless chromium, against a real OpenID provider (npm oidc-provider)
and a real `hitl serve`: sign in through the provider's login page, approve as the reviewer, the unmapped user,
renewal keeping the open console connected past the first token's lifetime, sign-out at the provider."""

import json
import random
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from graphql_api.auth import mint_token
from tests.support import console_data, idp
from tests.support.browser import (
    available, axe_violations, button, buttons, chromium, console_errors, element, find, has_text, requested_urls, screenshot, text, wait_for,
)
from tests.support.console_server import Console, serve
from tests.support.processes import PortTaken, ServeProcess
from tests.support.server import SECRET, free_port

ROOT = Path(__file__).resolve().parents[2]
# The provider's access tokens live this long: the renewal test keeps a console open past it.
TOKEN_TTL = 12  # renewed at 3/4 of it (lib/sso.js): long enough for a renewal on a loaded machine
# HS256 tokens beside the provider's carry HITL_JWT_AUDIENCE, as `hitl token` mints them.
UPSTREAM = mint_token(secret=SECRET, subject="svc-upstream", roles=["service"], ttl_seconds=3600, audience=idp.AUDIENCE)
ADMIN = mint_token(secret=SECRET, subject="adam", roles=["admin"], ttl_seconds=3600, audience=idp.AUDIENCE)
PENDING = "{ pendingPatches(first: 500) { edges { node { id } } } }"
CANCEL = 'mutation($id: ID!) { cancelPatch(id: $id, reason: "test over") { id } }'


@pytest.fixture(scope="module")
def sso(idp_installed: None, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Console, idp.Provider]]:
    assert available(), "chromium and chromium-driver: scripts/install-test-tools.sh (the idp_installed fixture ran it)"
    directory = tmp_path_factory.mktemp("sso-console")
    shutil.copyfile(sqlite_template, directory / "hitl.db")
    for attempt in range(1, ServeProcess.PORT_ATTEMPTS + 1):  # the provider names the console's port: both start again if it was taken
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        try:
            with idp.provider(redirect_uris=[f"{origin}/console/callback"], post_logout_redirect_uris=[f"{origin}/console/"],
                              access_token_ttl=TOKEN_TTL) as provider:
                env = {
                    "HITL_OIDC_ISSUER": provider.issuer, "HITL_OIDC_CLIENT_ID": idp.CONSOLE_CLIENT, "HITL_OIDC_SCOPES": "openid profile groups",
                    "HITL_JWT_AUDIENCE": idp.AUDIENCE, "HITL_ROLES_CLAIM": idp.ROLES_CLAIM, "HITL_ROLE_MAP": idp.ROLE_MAP,
                    "HITL_JWT_LEEWAY_SECONDS": "0",  # the server closes a socket the moment its token expires
                }
                for console in serve(f"sqlite+aiosqlite:///{directory / 'hitl.db'}", directory, port=port, **env):
                    yield console, provider
                return
        except PortTaken:
            if attempt == ServeProcess.PORT_ATTEMPTS:
                raise


@pytest.fixture
def console(sso: tuple[Console, idp.Provider]) -> Iterator[Console]:
    console, _ = sso
    try:
        yield console
    finally:
        for edge in gql(console, PENDING, as_=ADMIN)["pendingPatches"]["edges"]:
            gql(console, CANCEL, {"id": edge["node"]["id"]}, as_=ADMIN)


def gql(console: Console, query: str, variables: dict | None = None, *, as_: str = UPSTREAM) -> dict:
    return console_data.gql(console.client, console.base, query, variables, token=as_)


def submit(console: Console, n: int, **overrides) -> dict:
    data = console_data.patch_input(n, random.Random(n), prefix=f"SSO{time.monotonic_ns()}", **overrides)
    return gql(console, console_data.SUBMIT, {"i": data})["submitPatch"]["patch"]


def sso_sign_in(driver, console: Console, user: str) -> None:
    """Open the console, "Sign in with SSO", log in on the provider's own page, back in the console."""
    driver.get(f"{console.base}/console/")
    button(driver, "Sign in with SSO", timeout=20)
    assert axe_violations(driver) == []
    button(driver, "Sign in with SSO").click()
    login = element(driver, "input[name=login]", timeout=20)  # the provider's page, on its own origin
    assert driver.current_url.startswith(sso_issuer(console))
    login.send_keys(user)
    element(driver, "input[name=password]").send_keys("any password")
    element(driver, "button[type=submit]").click()
    wait_for(driver, has_text(".topbar", f"Signed in as {user}"), timeout=20, what="the signed-in header")
    assert "/console/callback" not in driver.current_url and "code=" not in driver.current_url


def sso_issuer(console: Console) -> str:
    return console.env["HITL_OIDC_ISSUER"]


def session_token(driver) -> str:
    return driver.execute_script("return sessionStorage.getItem('hitl.console.token')")


def claims_of(token: str) -> dict:
    import base64

    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def test_config_json_and_the_policy_name_the_issuer_only_where_needed(console):
    config = console.client.get(f"{console.base}/console/config.json").json()
    assert config == {"oidc": {
        "issuer": sso_issuer(console), "clientId": idp.CONSOLE_CLIENT, "scopes": "openid profile groups",
        "redirectUri": f"{console.base}/console/callback",
    }}
    policy = console.client.get(f"{console.base}/console/").headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["connect-src"] == f"'self' {sso_issuer(console)}"
    assert all(sso_issuer(console) not in value for name, value in directives.items() if name != "connect-src")
    graphiql = console.client.get(f"{console.base}/graphql", headers={"accept": "text/html"}).headers["content-security-policy"]
    assert sso_issuer(console) not in graphiql


def test_the_reviewer_signs_in_through_the_provider_and_approves(console):
    patch = submit(console, 1, severity="HIGH")
    with chromium() as driver:
        sso_sign_in(driver, console, "rita")
        assert "(REVIEWER)" in text(driver, ".topbar") and "signed in with SSO" in text(driver, ".topbar")
        wait_for(driver, lambda d: [row.get_attribute("data-patch-id") for row in find(d, ".queue-table tbody tr[data-patch-id]")] == [patch["id"]],
                 timeout=20, what="the queue")
        wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".conn").text == "Live", timeout=20, what="the live connection")
        token = session_token(driver)
        assert claims_of(token)["iss"] == sso_issuer(console) and claims_of(token)["sub"] == "rita"

        driver.get(f"{console.base}/console/patches/{patch['id']}")
        wait_for(driver, has_text("main h1", patch["patchId"]), what="the patch page")
        button(driver, "Approve").click()
        button(driver, "Approve", "dialog[open]").click()
        wait_for(driver, has_text(".patch-head", "APPROVED"), timeout=20, what="the approved patch")
        screenshot(driver, "sso-approved")
        assert not [error for error in console_errors(driver) if "Content Security Policy" in error or "TrustedHTML" in error]
    detail = gql(console, 'query($id: ID!) { patch(id: $id) { status approvals { approver } } }', {"id": patch["id"]}, as_=ADMIN)["patch"]
    assert detail == {"status": "APPROVED", "approvals": [{"approver": "rita"}]}


def test_the_unmapped_user_sees_the_console_but_no_decision_controls(console):
    patch = submit(console, 2)
    with chromium() as driver:
        sso_sign_in(driver, console, "nora")
        wait_for(driver, has_text("main", "You have no role here"), timeout=20, what="the no-role page")
        assert "Signed in as nora" in text(driver, ".topbar")
        driver.get(f"{console.base}/console/patches/{patch['id']}")
        wait_for(driver, has_text("main", "You have no role here"), timeout=20, what="the no-role page on a patch link")
        assert not [label for label in buttons(driver) if label in ("Approve", "Reject", "Escalate", "Cancel patch")]
        screenshot(driver, "sso-no-role")
        assert axe_violations(driver) == []
        token = session_token(driver)
    refused = console.client.post(
        f"{console.base}/graphql", json={"query": 'mutation($id: ID!) { approvePatch(id: $id) { id } }', "variables": {"id": patch["id"]}},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert refused["data"] is None and refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_renewal_keeps_an_open_console_connected_past_the_first_tokens_lifetime(console):
    """The provider's access tokens live TOKEN_TTL s and the server closes a WebSocket the moment its token expires
    (no leeway): the console renews with the refresh token before that and connects its WebSocket again with the
    new token, so it stays signed in and live, and a patch submitted afterwards still arrives over that socket."""
    with chromium() as driver:
        sso_sign_in(driver, console, "rita")
        wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".conn").text == "Live", timeout=20, what="the live connection")
        first = session_token(driver)
        first_exp = claims_of(first)["exp"]
        requested_urls(driver)  # from here on
        statuses = set()
        while time.time() < first_exp + 4:  # past the first token's lifetime
            statuses.add(driver.find_element(By.CSS_SELECTOR, ".conn").text)
            assert "Signed in as rita" in text(driver, ".topbar"), "the session ended"
            time.sleep(0.25)
        renewed = session_token(driver)
        assert renewed != first and claims_of(renewed)["exp"] > first_exp and claims_of(renewed)["sub"] == "rita"
        sockets = [url for url in requested_urls(driver) if url.startswith("ws://")]
        assert len(sockets) >= 1, "the WebSocket did not reconnect with the renewed token"
        assert statuses == {"Live"}, statuses  # no banner, no "Reconnecting…"
        assert not find(driver, "#connection-banner") and not find(driver, "#renewal-banner")

        patch = submit(console, 3, severity="CRITICAL")
        wait_for(driver, lambda d: patch["id"] in [row.get_attribute("data-patch-id") for row in find(d, ".queue-table tbody tr[data-patch-id]")],
                 timeout=5, what="a patch arriving over the renewed connection")
        assert "Signed in as rita" in text(driver, ".topbar")


def test_a_tab_back_after_its_token_expired_renews_before_its_first_request(console):
    """The tab leaves the console and comes back after the access token expired: its session (sessionStorage)
    is renewed with the refresh token before the console asks the service anything, so it stays signed in."""
    with chromium() as driver:
        sso_sign_in(driver, console, "rita")
        first = session_token(driver)
        driver.get("about:blank")
        time.sleep(max(0.0, claims_of(first)["exp"] - time.time()) + 2)
        driver.get(f"{console.base}/console/")
        wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".conn").text == "Live", timeout=20, what="live again")
        assert "Signed in as rita" in text(driver, ".topbar")
        assert claims_of(session_token(driver))["exp"] > claims_of(first)["exp"]


def test_an_unreachable_provider_is_said_on_the_sign_in_page(sso):
    """The provider is down: "Sign in with SSO" says so and the pasted-token path still works."""
    console, provider = sso
    with chromium() as driver:
        driver.get(f"{console.base}/console/")
        provider.process.send_signal(signal.SIGSTOP)  # the provider stops answering
        try:
            button(driver, "Sign in with SSO", timeout=20).click()
            wait_for(driver, has_text(".sso .problem", "cannot be reached"), timeout=30, what="the problem")
        finally:
            provider.process.send_signal(signal.SIGCONT)
        element(driver, "textarea[name=token]").send_keys(ADMIN)
        button(driver, "Sign in").click()
        wait_for(driver, has_text(".topbar", "Signed in as adam (ADMIN)"), timeout=20, what="signed in with a pasted token")


def test_sign_out_ends_the_session_here_and_at_the_provider(console):
    with chromium() as driver:
        sso_sign_in(driver, console, "lena")
        assert "(LEAD)" in text(driver, ".topbar")
        button(driver, "Sign out").click()
        # The provider's end-session page asks to confirm, then sends the browser back to the console.
        confirm = wait_for(driver, lambda d: next((b for b in d.find_elements(By.CSS_SELECTOR, "button") if b.get_attribute("value") == "yes"), False),
                           timeout=20, what="the provider's sign-out confirmation")
        assert driver.current_url.startswith(sso_issuer(console))
        confirm.click()
        wait_for(driver, has_text("main", "Sign in to the reviewer console"), timeout=20, what="the sign-in page")
        assert driver.current_url.startswith(f"{console.base}/console/")
        assert session_token(driver) is None
        assert not [key for key in driver.execute_script("return Object.keys(sessionStorage)") if key.startswith("oidc.")]
        # Signing in again needs the login page again: the provider's session ended too.
        button(driver, "Sign in with SSO").click()
        element(driver, "input[name=login]", timeout=20)
        assert driver.current_url.startswith(sso_issuer(console))
