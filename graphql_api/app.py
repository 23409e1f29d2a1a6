"""create_app(settings): composition only. The services of one process, their start and stop, the /graphql
router (its HTTP half from graphql_api.http, its WebSocket half from graphql_api.live), the probes, the REST
aliases and the middlewares, in the order requests meet them."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_fastapi_instrumentator import Instrumentator

from db.broker import broker_for
from db.engine import Database
from db.group_commit import GroupCommit
from db.services import submission
from graphql_api import jobs
from graphql_api.auth import Authenticator
from graphql_api.config import Settings
from graphql_api.http import console, probes, rest
from graphql_api.http.entry import HttpEntry, ServiceApp, WebSocketEntry
from graphql_api.http.graphql_http import HttpGraphQLRouter
from graphql_api.http.middleware import BodySizeLimit, RequestContext, UnavailableStatus
from graphql_api.live.hub import Hub
from graphql_api.live.shared_execution import SharedEventExecutor
from graphql_api.live.websocket import WebSocketGraphQL
from graphql_api.metrics import Metrics
from graphql_api.paths import GRAPHQL_PATH, PROBE_PATHS
from graphql_api.schema import build_schema
from graphql_api.schema.context import context_getter
from graphql_api.services import Services
from graphql_api.webhooks.dispatcher import Dispatcher
from ml.service import ModelHolder

log = logging.getLogger("hitl.app")
# Awaited by the server before it closes connections on SIGTERM (graphql_api.server.GracefulServer).
SHUTDOWN_HOOKS: list[Callable[[], Awaitable[None]]] = []


class ConfigurationError(RuntimeError):
    pass


class GraphQLEndpoint(WebSocketGraphQL, HttpGraphQLRouter):
    """/graphql: GraphQL over HTTP (graphql_api.http.graphql_http) and over WebSocket (graphql_api.live.websocket)."""


def build_services(settings: Settings) -> Services:
    if not settings.dev and (problem := settings.startup_problem()):
        raise ConfigurationError(f"refusing to start: {problem}")
    db = Database.from_url(
        settings.effective_database_url,
        pool_min=settings.db_pool_min_size,
        pool_max=settings.db_pool_max_size,
        pool_timeout=settings.db_pool_timeout_seconds,
        statement_timeout=settings.db_statement_timeout_seconds,
    )
    metrics = Metrics()
    models = ModelHolder()
    hub = Hub(
        db,
        broker_for(db, settings.effective_database_url),
        metrics,
        on_model_change=lambda: models.refresh(db),
        buffer=settings.subscriber_buffer,
        coalesce_seconds=settings.queue_coalesce_seconds,
        coalesce_max_seconds=settings.queue_coalesce_max_seconds,
    )
    return Services(
        settings=settings, db=db, policy=settings.policy(), models=models, metrics=metrics, authenticator=Authenticator(settings), hub=hub,
        submissions=GroupCommit(db, submission.write, max_wait=settings.db_pool_timeout_seconds),
        webhooks=Dispatcher(db, settings, metrics),
    )


@contextlib.asynccontextmanager
async def running(services: Services) -> AsyncIterator[None]:
    """The process's life: the active model loaded, the hub, the webhook senders and the periodic jobs started; all
    stopped at exit."""
    try:
        await services.models.refresh(services.db)
    except Exception:  # noqa: BLE001 - serve without a model; /ready reports the database
        log.warning("could not load the active model", exc_info=True)
    services.hub.add_listener(services.webhooks.on_events)
    await services.hub.start()
    await services.webhooks.start()
    SHUTDOWN_HOOKS.append(services.hub.close_all)
    watchers = [
        asyncio.create_task(jobs.open_pool(services), name="hitl-open-pool"),
        asyncio.create_task(jobs.sla_watcher(services), name="hitl-sla-watcher"),
        asyncio.create_task(jobs.audit_checkpointer(services), name="hitl-audit-checkpointer"),
        asyncio.create_task(jobs.drift_checker(services), name="hitl-drift-checker"),
        asyncio.create_task(jobs.metrics_refresher(services), name="hitl-metrics-refresher"),
    ]
    try:
        yield
    finally:
        SHUTDOWN_HOOKS.remove(services.hub.close_all)
        await services.db.cancel_when_idle(watchers)
        services.metrics.cancel_reading()  # the refresher's read in flight, if any: not begun, as the pool is idle
        for watcher in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await services.submissions.wait_idle()
        await services.webhooks.stop()
        await services.hub.close_all()
        await services.hub.stop()
        await services.db.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    services = build_services(settings)
    app = ServiceApp(title="HITL Patch Service", lifespan=lambda _app: running(services), docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    get_context = context_getter(services)
    router = GraphQLEndpoint(
        build_schema(settings, execution_context_class=SharedEventExecutor),
        context_getter=get_context,
        graphql_ide="graphiql" if settings.graphiql else None,
        allowed_origins=settings.ws_allowed_origins,
        keep_alive=True,
        keep_alive_interval=settings.ws_keep_alive_seconds,
        connection_init_wait_timeout=timedelta(seconds=10),
    )
    router.metrics = services.metrics
    app.include_router(router, prefix=GRAPHQL_PATH)
    app.include_router(probes.router(services))
    app.include_router(rest.router(services))
    app.include_router(console.router(settings))

    # Middlewares, innermost first. The HTTP entry hands /graphql straight to the router (graphql_api.http.entry).
    app.add_middleware(HttpEntry, router=router, context_getter=get_context, path=GRAPHQL_PATH)
    Instrumentator(registry=services.metrics.registry, excluded_handlers=list(PROBE_PATHS)).instrument(app)
    app.add_middleware(UnavailableStatus)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added after (so outside) the body limit: a browser sees the 413 itself, not a CORS failure.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
        )
    # In front of FastAPI itself: the request id, then the WebSocket entry (a WebSocket skips FastAPI's layers).
    app.front = RequestContext(WebSocketEntry(app.front, router=router, context_getter=get_context, path=GRAPHQL_PATH))
    return app
