"""`hitl serve`: uvicorn with proxy headers and graceful shutdown, and the garbage collector of a served process;
`--dev` makes a laptop setup in one step.

The garbage collector in a served process: fewer and shorter full collections, and every collection's pause timed
into hitl_gc_pause_seconds. A full collection stops the event loop for as long as it takes to scan every tracked
object; at 2,000 open subscriptions that was 0.3-0.6 s. Two settings, measured with the benchmarks
(tests/benchmarks/README.md, "Garbage collector"):
- the objects built at startup (modules, the schema, the ORM's and pydantic's machinery, ~200k) live as long
  as the process: frozen, full collections no longer scan them (150-240 ms passes under 16 concurrent
  approvals became 26-41 ms);
- young collections every 10,000 net allocations instead of 700: a fan-out or a burst of requests keeps
  thousands of objects alive for milliseconds, and at 700 many of them were promoted to the old generation,
  whose growth is what starts a full collection (5-6 full collections in the approval rounds became 0).
Only `hitl serve` does this (create_app_from_env): a test process that builds many apps must not freeze them.
"""

import asyncio
import gc
import os
import secrets
import sys
import time

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from db.migrate import upgrade
from graphql_api.app import SHUTDOWN_HOOKS, create_app
from graphql_api.auth import mint_token
from graphql_api.config import Settings
from graphql_api.logging_setup import configure
from graphql_api.metrics import Metrics
from graphql_api.request_limits import MAX_WS_MESSAGE_CHARS

WS_PROTOCOL = "graphql_api.live.ws_protocol:LeanWebSocketProtocol"  # uvicorn's, with less state per connection
DEV_ROLES = ("viewer", "reviewer", "lead", "admin", "service")
DEV_DEMO_PATCHES = 1500


def _prepare_dev(settings: Settings) -> Settings:
    """Generated secret, migrated embedded database, demo data when empty, one token per role."""
    from db.engine import Database
    from ml.demo import is_empty, load_demo

    secret = secrets.token_urlsafe(48)
    # Workers started by uvicorn read their settings from the environment.
    os.environ["HITL_JWT_SECRET"], os.environ["HITL_DEV"] = secret, "true"
    settings = settings.model_copy(update={"jwt_secret": SecretStr(secret), "dev": True})
    if settings.audit_checkpoint_key is None:  # checkpoints of this run verify while it runs
        os.environ["HITL_AUDIT_CHECKPOINT_KEY"] = checkpoint_key = secrets.token_urlsafe(48)
        settings = settings.model_copy(update={"audit_checkpoint_key": SecretStr(checkpoint_key)})
    upgrade(settings.effective_database_url)

    async def seed() -> str | None:
        db = Database.from_url(settings.effective_database_url)
        try:
            empty = await is_empty(db)
        finally:
            await db.dispose()
        return await load_demo(settings.training_job(), count=DEV_DEMO_PATCHES, seed=7) if empty else None

    loaded = asyncio.run(seed())
    lines = ["", "HITL Patch Service — DEV MODE (embedded database, generated secret, SYNTHETIC demo data)"]
    lines.append(f"  database: {settings.effective_database_url}")
    if loaded:
        lines.append(f"  {loaded}")
    lines += dev_links(settings, secret)
    print("\n".join(lines) + "\n", flush=True)  # noqa: T201 - the point of dev mode
    return settings


def dev_links(settings: Settings, secret: str) -> list[str]:
    """The dev banner's links and tokens: the reviewer console signed in as each role (the token travels in the
    fragment, which the console reads once and removes), GraphiQL, and the raw tokens for curl and scripts."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    tokens = {role: mint_token(secret=secret, subject=f"dev-{role}", roles=[role], ttl_seconds=12 * 3600) for role in DEV_ROLES}
    lines = []
    if settings.console:
        lines.append("  Reviewer console, signed in as each role (open one per browser tab):")
        lines += [f"    {role:<8} http://{host}:{settings.port}/console#token={tokens[role]}" for role in DEV_ROLES if role != "service"]
    lines.append(f"  GraphiQL: http://{host}:{settings.port}/graphql")
    lines.append("  tokens (valid 12h, for this run only; send as 'Authorization: Bearer <token>'):")
    lines += [f"    {role:<8} {tokens[role]}" for role in DEV_ROLES]
    return lines


def run(settings: Settings) -> None:
    if settings.dev and "log_format" not in settings.model_fields_set:
        settings = settings.model_copy(update={"log_format": "console"})  # a person reads these
        os.environ["HITL_LOG_FORMAT"] = "console"
    configure(settings.log_level, settings.log_format)
    if settings.dev:
        settings = _prepare_dev(settings)
    elif problem := settings.startup_problem():
        print(f"refusing to start: {problem}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2)
    config = uvicorn.Config(
        "graphql_api.server:create_app_from_env",
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
        for server in self.servers:
            server.close()
        for hook in list(SHUTDOWN_HOOKS):
            await hook()
        await super().shutdown(sockets)


def _multiprocess_kwargs(config: uvicorn.Config) -> dict:
    keys = ("factory", "host", "port", "workers", "proxy_headers", "forwarded_allow_ips", "ws", "ws_per_message_deflate",
            "ws_max_size", "timeout_graceful_shutdown", "log_config", "access_log")
    return {key: getattr(config, key) for key in keys}


def create_app_from_env() -> FastAPI:
    """Factory for `hitl serve` and its uvicorn workers (settings from the environment): the process is the
    server's, so it also tunes the garbage collector."""
    app = create_app(Settings())
    tune_gc_for_serving(app.state.services.metrics)
    return app


YOUNG_COLLECTION_THRESHOLD = 10_000


def tune_gc_for_serving(metrics: Metrics) -> None:
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
    metrics.gc_frozen_objects.set(gc.get_freeze_count())
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    _time_collections(metrics)


def _time_collections(metrics: Metrics) -> None:
    """Observe each collection's pause, by generation (a gc callback: called around every collection)."""
    histograms = [metrics.gc_pause.labels(generation=str(generation)) for generation in range(3)]
    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            histograms[info["generation"]].observe(time.perf_counter() - started[0])

    gc.callbacks.append(callback)
