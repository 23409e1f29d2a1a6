"""The reviewer console (graphql_api/console, a single-page app of static ES modules) and the GraphiQL page, each
asset served by this service (API.md, "Reviewer console and GraphiQL"): nothing comes from a CDN or any other
origin, so both work in a browser without internet access.

- `GET /console` and its sub-paths (the app's own routes, e.g. /console/patches/<id>) answer the app's HTML;
  `GET /` redirects there. `HITL_CONSOLE=false` answers 404 for all of them.
- `GET /console/assets/app/...` and `/console/assets/vendor/...` answer the files of graphql_api/console/app and
  graphql_api/console/vendor (scripts, styles, images only: never the READMEs, locks or checksum lists), with an
  ETag (304 on a match), `Cache-Control: no-cache` (no build step, so no content hashes in the names) and gzip
  when the browser takes it (compressed once per file version, kept in memory: the set of files is fixed).
  With the console off and GraphiQL on, only GraphiQL's assets are served.
- GraphiQL (`GET /graphql` from a browser, graphql_api.http.graphql_http) is `graphiql_page`.
- `GET /console/config.json` (no credential) tells the console whether to offer single sign-on:
  `{oidc: {issuer, clientId, scopes, redirectUri} | null}` (API.md, "Single sign-on").

Every page carries a Content-Security-Policy without inline script (`default-src 'self'`), `nosniff`, no
framing and no referrer. The console's policy also enforces Trusted Types with no policy at all, so no string
can reach an HTML sink (innerHTML and the like) even by mistake: untrusted text (diffs, package names,
comments) can only ever be rendered as text. With single sign-on, the console's `connect-src` also names the
issuer's origin (discovery, token and renewal requests), and nothing else: GraphiQL's policy does not.
GraphiQL (React, CodeMirror) needs inline styles and data: fonts and gets a policy of its own.
"""

import gzip
import html
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from graphql_api.config import Settings
from graphql_api.paths import CONSOLE_ASSETS_PATH, CONSOLE_PATH

CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console"
ASSET_ROOTS = {"app": CONSOLE_DIR / "app", "vendor": CONSOLE_DIR / "vendor"}
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# What the GraphiQL page loads (graphql_api/console/graphiql.html): served even when the console is off.
GRAPHIQL_ASSETS = ("vendor/react/", "vendor/react-dom/", "vendor/graphiql/", "app/graphiql.", "app/icon.svg")
# Scripts the console's HTML announces up front (modulepreload), so the browser fetches the module graph in
# parallel instead of one import level after another.
CONSOLE_VENDOR_MODULES = ("vendor/preact/preact.mjs", "vendor/preact/hooks.mjs", "vendor/htm/htm.mjs", "vendor/graphql-ws/client.js",
                          "vendor/graphql-ws/common-CGW11Fyb.js")

_COMMON_POLICY = "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"


def console_csp(issuer: str | None = None) -> str:
    """The console's policy; `connect-src` also allows the IdP's origin when single sign-on is on."""
    connect = "'self'"
    if issuer:
        url = urlsplit(issuer)
        connect += f" {url.scheme}://{url.netloc}"
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; connect-src {connect}; "
        f"{_COMMON_POLICY}; require-trusted-types-for 'script'; trusted-types 'none'"
    )


GRAPHIQL_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    f"connect-src 'self'; {_COMMON_POLICY}"
)
PAGE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "cache-control": "no-cache",
}
ASSET_HEADERS = {"x-content-type-options": "nosniff", "cross-origin-resource-policy": "same-origin", "cache-control": "no-cache"}
GZIP_MIN_BYTES = 1024


def router(settings: Settings) -> APIRouter:
    pages = APIRouter()
    if settings.console or settings.graphiql:
        allowed = None if settings.console else GRAPHIQL_ASSETS

        # First: routes are tried in order, and the console's sub-path route below would also match these.
        @pages.api_route(CONSOLE_ASSETS_PATH + "/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
        async def asset(request: Request, path: str) -> Response:
            return _asset(request, path, allowed)

    if settings.console:
        policy = console_csp(settings.oidc_issuer)

        # Before the console's sub-path route, which would match it too.
        @pages.get(CONSOLE_PATH + "/config.json", include_in_schema=False)
        async def console_config(request: Request) -> Response:
            return JSONResponse(_console_config(settings, request), headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"})

        @pages.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
        async def root(request: Request) -> Response:
            return RedirectResponse(f"{_root_path(request)}{CONSOLE_PATH}", status_code=302)

        @pages.api_route(CONSOLE_PATH, methods=["GET", "HEAD"], include_in_schema=False)
        @pages.api_route(CONSOLE_PATH + "/{route:path}", methods=["GET", "HEAD"], include_in_schema=False)
        async def console(request: Request, route: str = "") -> Response:  # noqa: ARG001 - the app routes itself
            return _page(_console_html(_root_path(request), graphiql=settings.graphiql), policy)

    return pages


def _console_config(settings: Settings, request: Request) -> dict:
    if not settings.oidc_issuer:
        return {"oidc": None}
    origin = str(request.base_url).rstrip("/")  # with the proxy's root path (uvicorn --root-path)
    return {
        "oidc": {
            "issuer": settings.oidc_issuer,
            "clientId": settings.oidc_client_id,
            "scopes": settings.oidc_scopes,
            "redirectUri": f"{origin}{CONSOLE_PATH}/callback",
        }
    }


def graphiql_page(request: Request) -> Response:
    return _page(_graphiql_html(_root_path(request)), GRAPHIQL_CSP)


def _root_path(request: Request) -> str:
    """The prefix a proxy mounts the service under (uvicorn's --root-path), without a trailing slash."""
    return request.scope.get("root_path", "").rstrip("/")


def _page(body: str, policy: str) -> Response:
    return Response(body, media_type="text/html; charset=utf-8", headers={"content-security-policy": policy, **PAGE_HEADERS})


@lru_cache(maxsize=8)
def _console_html(root_path: str, *, graphiql: bool) -> str:
    base = html.escape(f"{root_path}{CONSOLE_PATH}/", quote=True)
    app = sorted(str(path.relative_to(CONSOLE_DIR)) for path in ASSET_ROOTS["app"].rglob("*.js") if not path.name.startswith("graphiql."))
    preload = "\n".join(f'    <link rel="modulepreload" href="assets/{html.escape(path)}">' for path in [*CONSOLE_VENDOR_MODULES, *app])
    page = (CONSOLE_DIR / "index.html").read_text().replace("__BASE__", base).replace("    __MODULEPRELOAD__", preload)
    return page.replace("__GRAPHIQL__", "on" if graphiql else "off")


@lru_cache(maxsize=8)
def _graphiql_html(root_path: str) -> str:
    assets = html.escape(f"{root_path}{CONSOLE_ASSETS_PATH}", quote=True)
    return (CONSOLE_DIR / "graphiql.html").read_text().replace("__ASSETS__", assets)


def _asset(request: Request, path: str, allowed: tuple[str, ...] | None) -> Response:
    file = _asset_file(path)
    if file is None or (allowed is not None and not path.startswith(allowed)):
        return Response("Not Found", status_code=404, media_type="text/plain", headers={"x-content-type-options": "nosniff"})
    stat = file.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    headers = {"etag": etag, "vary": "Accept-Encoding", **ASSET_HEADERS}
    if etag in {tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    if stat.st_size >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", "").lower():
        body = _gzipped(file, etag)
        headers["content-encoding"] = "gzip"
    else:
        body = file.read_bytes()
    media_type = CONTENT_TYPES[file.suffix]
    if request.method == "HEAD":
        return Response(status_code=200, headers={**headers, "content-length": str(len(body)), "content-type": media_type})
    return Response(body, media_type=media_type, headers=headers)


def _asset_file(path: str) -> Path | None:
    """The file under app/ or vendor/ that `path` names, if it is one we serve (no escaping the directory)."""
    kind, _, rest = path.partition("/")
    root = ASSET_ROOTS.get(kind)
    if root is None or not rest:
        return None
    file = (root / rest).resolve()
    if not file.is_relative_to(root) or file.suffix not in CONTENT_TYPES or not file.is_file():
        return None
    return file


@lru_cache(maxsize=64)
def _gzipped(file: Path, etag: str) -> bytes:  # noqa: ARG001 - the etag keys the cache to this version of the file
    return gzip.compress(file.read_bytes(), compresslevel=6, mtime=0)
