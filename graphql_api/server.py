"""`hitl serve`: uvicorn with proxy headers and graceful shutdown; `--dev` makes a laptop setup in one step."""

import asyncio
import os
import secrets
import sys

import uvicorn
from pydantic import SecretStr

from db.migrate import upgrade
from graphql_api.auth import mint_token
from graphql_api.config import Settings
from graphql_api.logging_setup import configure
from graphql_api.limits import MAX_WS_MESSAGE_CHARS

WS_PROTOCOL = "graphql_api.ws_protocol:LeanWebSocketProtocol"  # uvicorn's, with less state per connection
DEV_ROLES = ("viewer", "reviewer", "lead", "admin", "service")
DEV_DEMO_PATCHES = 1500


def _prepare_dev(settings: Settings) -> Settings:
    """Generated secret, migrated embedded database, demo data when empty, one token per role."""
    from db.demo_data import is_empty, load_demo
    from db.engine import Database

    secret = secrets.token_urlsafe(48)
    # Workers started by uvicorn read their settings from the environment.
    os.environ["HITL_JWT_SECRET"], os.environ["HITL_DEV"] = secret, "true"
    settings = settings.model_copy(update={"jwt_secret": SecretStr(secret), "dev": True})
    upgrade(settings.effective_database_url)

    async def seed() -> str | None:
        db = Database.from_url(settings.effective_database_url)
        try:
            empty = await is_empty(db)
        finally:
            await db.dispose()
        return await load_demo(settings, count=DEV_DEMO_PATCHES, seed=7) if empty else None

    loaded = asyncio.run(seed())
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    lines = ["", "HITL Patch Service — DEV MODE (embedded database, generated secret, SYNTHETIC demo data)"]
    lines.append(f"  database: {settings.effective_database_url}")
    if loaded:
        lines.append(f"  {loaded}")
    lines.append(f"  GraphiQL: http://{host}:{settings.port}/graphql")
    lines.append("  tokens (valid 12h, for this run only; send as 'Authorization: Bearer <token>'):")
    for role in DEV_ROLES:
        token = mint_token(secret=secret, subject=f"dev-{role}", roles=[role], ttl_seconds=12 * 3600)
        lines.append(f"    {role:<8} {token}")
    print("\n".join(lines) + "\n", flush=True)  # noqa: T201 - the point of dev mode
    return settings


def run(settings: Settings) -> None:
    if settings.dev and "log_format" not in settings.model_fields_set:
        settings = settings.model_copy(update={"log_format": "console"})  # a person reads these
        os.environ["HITL_LOG_FORMAT"] = "console"
    configure(settings.log_level, settings.log_format)
    if settings.dev:
        settings = _prepare_dev(settings)
    elif problem := settings.secret_problem():
        print(f"refusing to start: {problem}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2)
    config = uvicorn.Config(
        "graphql_api.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        ws=WS_PROTOCOL,
        ws_per_message_deflate=False,  # ~40 KB per connection; dashboards send small JSON
        ws_max_size=MAX_WS_MESSAGE_CHARS,  # uvicorn's default 16 MiB would be read in full before ws.py refuses it
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        log_config=None,
        access_log=False,
    )
    if settings.workers > 1:
        # Several workers: uvicorn's supervisor; on SIGTERM its workers close WebSockets with 1012.
        uvicorn.run(config.app, **_multiprocess_kwargs(config))
        return
    GracefulServer(config).run()


class GracefulServer(uvicorn.Server):
    """On SIGTERM: stop accepting, tell WebSocket clients 1001 (going away) so they reconnect to another
    replica, then let uvicorn finish in-flight requests within the grace period."""

    async def shutdown(self, sockets=None) -> None:  # noqa: ANN001
        from graphql_api.app import SHUTDOWN_HOOKS

        for server in self.servers:
            server.close()
        for hook in list(SHUTDOWN_HOOKS):
            await hook()
        await super().shutdown(sockets)


def _multiprocess_kwargs(config: uvicorn.Config) -> dict:
    keys = ("factory", "host", "port", "workers", "proxy_headers", "forwarded_allow_ips", "ws", "ws_per_message_deflate",
            "ws_max_size", "timeout_graceful_shutdown", "log_config", "access_log")
    return {key: getattr(config, key) for key in keys}
