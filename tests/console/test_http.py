"""How the service serves the console and GraphiQL (no browser): pages and their security headers, assets (types,
ETags, gzip, nothing outside app/ and vendor/), HITL_CONSOLE / HITL_GRAPHIQL, a proxy's root path, and the
console's size budget."""

import gzip
import re
from pathlib import Path

import httpx
import pytest

from graphql_api.app import create_app
from graphql_api.auth import Authenticator
from graphql_api.config import Settings
from graphql_api.http.console import CONSOLE_DIR
from graphql_api.server import dev_links
from tests.support.server import SECRET, settings_for, start_server

on_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
BUDGET_GZIP_BYTES = 300 * 1024  # JS + CSS of the console, GraphiQL aside (issue 17)


async def _serving(database_url: str, **settings):  # noqa: ANN202
    server, task, base, _app = await start_server(settings_for(database_url, **settings))
    return server, task, base


@pytest.fixture
async def site(database_url: str):  # noqa: ANN201
    server, task, base = await _serving(database_url)
    async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as client:
        yield client
    server.should_exit = True
    await task


def _directives(policy: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


def _assert_page_headers(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = _directives(response.headers["content-security-policy"])
    assert policy["default-src"] == "default-src 'self'" and policy["script-src"] == "script-src 'self'"
    assert policy["frame-ancestors"] == "frame-ancestors 'none'" and policy["object-src"] == "object-src 'none'"
    assert response.headers["x-content-type-options"] == "nosniff" and response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    scripts = re.findall(r"<script\b[^>]*>", response.text)
    assert scripts and all(" src=" in tag for tag in scripts), "no inline script"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", response.text), "nothing from another origin"
    return policy


@on_sqlite
@pytest.mark.parametrize("path", ["/console", "/console/", "/console/patches/0b1c", "/console/analytics?window=7d"])
async def test_console_pages_are_the_app_with_a_strict_policy(site, path):
    response = await site.get(path)
    policy = _assert_page_headers(response)
    assert policy["require-trusted-types-for"] == "require-trusted-types-for 'script'" and policy["trusted-types"] == "trusted-types 'none'"
    assert '<base href="/console/">' in response.text and '<script type="module" src="assets/app/main.js">' in response.text
    assert 'content="on"' in response.text  # GraphiQL is on: the header links to it
    for asset in re.findall(r'href="(assets/[^"]+)"', response.text):  # every preloaded module and stylesheet is served
        assert (await site.get(f"/console/{asset}")).status_code == 200, asset


@on_sqlite
async def test_root_redirects_to_the_console(site):
    response = await site.get("/")
    assert response.status_code == 302 and response.headers["location"] == "/console"


@on_sqlite
async def test_assets_have_types_etags_and_gzip(site):
    plain = await site.get("/console/assets/app/main.js", headers={"accept-encoding": "identity"})
    assert plain.status_code == 200 and plain.headers["content-type"] == "text/javascript; charset=utf-8"
    assert plain.headers["x-content-type-options"] == "nosniff" and plain.headers["cache-control"] == "no-cache"
    assert plain.content == (CONSOLE_DIR / "app/main.js").read_bytes()
    again = await site.get("/console/assets/app/main.js", headers={"if-none-match": plain.headers["etag"]})
    assert again.status_code == 304 and not again.content
    module = await site.get("/console/assets/vendor/preact/preact.mjs", headers={"accept-encoding": "gzip"})
    assert module.headers["content-encoding"] == "gzip" and module.headers["content-type"] == "text/javascript; charset=utf-8"
    assert module.content == (CONSOLE_DIR / "vendor/preact/preact.mjs").read_bytes()  # httpx decoded it
    head = await site.head("/console/assets/app/app.css", headers={"accept-encoding": "identity"})
    assert head.status_code == 200 and head.headers["content-type"] == "text/css; charset=utf-8" and not head.content
    assert int(head.headers["content-length"]) == (CONSOLE_DIR / "app/app.css").stat().st_size


@on_sqlite
@pytest.mark.parametrize(
    "path",
    [
        "/console/assets/app/%2e%2e/%2e%2e/http/console.py",
        "/console/assets/vendor/SHA256SUMS",
        "/console/assets/vendor/vendor.lock.json",
        "/console/assets/vendor/preact/LICENSE",
        "/console/assets/README.md",
        "/console/assets/index.html",
        "/console/assets/app/missing.js",
        "/console/assets/app",
    ],
)
async def test_only_scripts_styles_and_images_of_app_and_vendor_are_served(site, path):
    response = await site.get(path)
    assert response.status_code == 404 and b"import" not in response.content


@on_sqlite
async def test_graphiql_comes_with_assets_from_the_service(site):
    response = await site.get("/graphql", headers={"accept": "text/html"})
    policy = _assert_page_headers(response)
    assert "unsafe-eval" not in policy.get("script-src", "")
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources and all(source.startswith("/console/assets/") for source in sources)
    for source in sources:
        assert (await site.get(source)).status_code == 200, source


@on_sqlite
async def test_console_off_answers_404_but_graphiql_keeps_its_assets(database_url):
    server, task, base = await _serving(database_url, console=False)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as client:
            for path in ("/", "/console", "/console/patches/x", "/console/assets/app/main.js", "/console/assets/vendor/preact/preact.mjs"):
                assert (await client.get(path)).status_code == 404, path
            page = await client.get("/graphql", headers={"accept": "text/html"})
            assert page.status_code == 200
            for source in re.findall(r'(?:src|href)="([^"]+)"', page.text):
                assert (await client.get(source)).status_code == 200, source
    finally:
        server.should_exit = True
        await task


@on_sqlite
async def test_graphiql_off_hides_its_link_and_both_off_serve_no_assets(database_url):
    server, task, base = await _serving(database_url, graphiql=False)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as client:
            assert 'name="hitl-graphiql" content="off"' in (await client.get("/console")).text
            assert (await client.get("/graphql", headers={"accept": "text/html"})).status_code == 404
    finally:
        server.should_exit = True
        await task
    server, task, base = await _serving(database_url, graphiql=False, console=False)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as client:
            assert (await client.get("/console/assets/vendor/graphiql/graphiql.min.css")).status_code == 404
    finally:
        server.should_exit = True
        await task


@on_sqlite
async def test_pages_follow_the_root_path_of_a_proxy(database_url):
    app = create_app(settings_for(database_url))
    transport = httpx.ASGITransport(app=app, root_path="/hitl")
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        console = await client.get("/hitl/console")
        graphiql = await client.get("/hitl/graphql", headers={"accept": "text/html"})
        root = await client.get("/hitl/")
    assert '<base href="/hitl/console/">' in console.text
    assert '<script src="/hitl/console/assets/vendor/graphiql/graphiql.min.js" defer>' in graphiql.text
    assert root.headers["location"] == "/hitl/console"


def _console_files() -> list[Path]:
    """What the console's page loads: its modules and stylesheet, and the vendored modules they import (the OIDC
    client with single sign-on on)."""
    app = [path for path in (CONSOLE_DIR / "app").rglob("*") if path.suffix in (".js", ".css") and not path.name.startswith("graphiql.")]
    vendor = [CONSOLE_DIR / "vendor" / name for name in ("preact/preact.mjs", "preact/hooks.mjs", "htm/htm.mjs", "graphql-ws/client.js", "graphql-ws/common-CGW11Fyb.js",
                                                         "oidc-client-ts/oidc-client-ts.js", "jwt-decode/index.js")]
    return app + vendor


def test_console_javascript_and_css_fit_the_budget():
    sizes = {path.relative_to(CONSOLE_DIR): len(gzip.compress(path.read_bytes(), compresslevel=6)) for path in _console_files()}
    total = sum(sizes.values())
    assert total <= BUDGET_GZIP_BYTES, f"{total} bytes gzip > {BUDGET_GZIP_BYTES}: {sorted(sizes.items(), key=lambda item: -item[1])[:8]}"


def test_every_module_the_console_imports_is_one_it_ships():
    """Relative imports only (no bare specifier: there is no import map and no bundler), each to a shipped file."""
    checked = 0
    for path in _console_files():
        if path.suffix == ".css":
            continue
        for specifier in re.findall(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']""", path.read_text(), re.MULTILINE):
            assert specifier.startswith("."), f"{path}: bare import {specifier!r}"
            assert (path.parent / specifier).resolve().is_file(), f"{path}: {specifier} does not exist"
            checked += 1
    assert checked > 50  # the app's own imports and the vendored modules' (hooks → preact, client → common)


def test_dev_server_prints_a_signed_in_console_link_per_role():
    settings = Settings(_env_file=None, dev=True, port=8027, jwt_secret=SECRET)
    lines = dev_links(settings, SECRET)
    links = {line.split()[0]: line.split()[1] for line in lines if "/console#token=" in line}
    assert set(links) == {"viewer", "reviewer", "lead", "admin"}  # SERVICE is for machines: a token, no link
    authenticator = Authenticator(settings)
    for role, link in links.items():
        assert link.startswith("http://127.0.0.1:8027/console#token=")
        credential = authenticator.verify_token(link.split("#token=", 1)[1])
        assert credential.actor.subject == f"dev-{role}" and [r.value for r in credential.actor.roles] == [role.upper()]
    assert any(line.strip() == "GraphiQL: http://127.0.0.1:8027/graphql" for line in lines)
    assert not any("/console#" in line for line in dev_links(settings.model_copy(update={"console": False}), SECRET))
