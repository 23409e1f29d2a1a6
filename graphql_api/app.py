"""create_app(settings): FastAPI + GraphQL router + /health /ready /metrics + REST aliases."""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection

from db.broker import broker_for
from db.engine import Database, OutageLog, unavailable_reason
from db.migrate import current_revision, head_revision, schema_problem
from db.services import sla, status_counts
from db.services.errors import Unauthenticated
from db.types import utcnow
from graphql_api import gc_pauses, rest
from graphql_api.auth import Authenticator
from graphql_api.config import Settings
from graphql_api.context import Context, Services
from graphql_api.entry import HttpEntry, ServiceApp, WebSocketEntry
from graphql_api.errors import RETRY_AFTER_SECONDS, UNAVAILABLE, UNAVAILABLE_MESSAGES, unavailable_status
from graphql_api.hub import Hub
from graphql_api.limits import BodySizeLimit, RequestContext
from graphql_api.metrics import Metrics
from graphql_api.schema import build_schema
from graphql_api.ws import SubscriptionRouter
from ml.service import ModelHolder

log = logging.getLogger("hitl.app")
# Awaited by the server before it closes connections on SIGTERM (graphql_api.server.GracefulServer).
SHUTDOWN_HOOKS: list = []
# /ready answers within this bound (the readiness probe's timeout is 3 s): a database that does not answer
# in time, or a pool with no free connection, is "not ready" rather than a probe that hangs.
READY_TIMEOUT_SECONDS = 2.0
GRAPHQL_PATH = "/graphql"
DATABASE_ERROR_CLASSES = (SQLAlchemyError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class ConfigurationError(RuntimeError):
    pass


def build_services(settings: Settings) -> Services:
    if not settings.dev and (problem := settings.secret_problem()):
        raise ConfigurationError(f"refusing to start: {problem}")
    db = Database.from_url(
        settings.effective_database_url,
        pool_min=settings.db_pool_min_size,
        pool_max=settings.db_pool_max_size,
        pool_timeout=settings.db_pool_timeout_seconds,
        statement_timeout=settings.db_statement_timeout_seconds,
    )
    metrics = Metrics(cache_seconds=settings.metrics_cache_seconds)
    models = ModelHolder()
    hub = Hub(
        db,
        broker_for(db, settings.effective_database_url),
        metrics,
        on_model_change=lambda: models.refresh(db),
        buffer=settings.subscriber_buffer,
        coalesce_seconds=settings.queue_coalesce_seconds,
    )
    return Services(
        settings=settings,
        db=db,
        policy=settings.policy(),
        models=models,
        metrics=metrics,
        authenticator=Authenticator(settings),
        hub=hub,
    )


async def _sla_watcher(services: Services) -> None:
    """Appends SLA_BREACHED once per patch; safe with any number of replicas (rows are claimed under lock).
    Also folds the patch-count deltas the triggers append (status_counts.compact)."""
    outage = OutageLog(log)
    while True:
        try:
            async with services.db.write() as session:
                await sla.mark_breaches(session=session, policy=services.policy, now=utcnow())
            async with services.db.write() as session:
                await status_counts.compact(session=session)
            outage.recovered()
        except Exception as exc:  # noqa: BLE001 - keep watching; the database may come back
            outage.failed(exc, "SLA check failed", lambda reason: f"SLA check skipped: database unavailable ({reason}); retrying")
        await asyncio.sleep(services.settings.sla_check_interval_seconds)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    services = build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            await services.models.refresh(services.db)
        except Exception:  # noqa: BLE001 - serve without a model; /ready reports the database
            log.warning("could not load the active model", exc_info=True)
        await services.hub.start()
        SHUTDOWN_HOOKS.append(services.hub.close_all)
        watcher = asyncio.create_task(_sla_watcher(services))
        try:
            yield
        finally:
            SHUTDOWN_HOOKS.remove(services.hub.close_all)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await services.hub.close_all()
            await services.hub.stop()
            await services.db.dispose()

    async def get_context(connection: HTTPConnection) -> Context:
        credential, error = None, None
        if connection.scope["type"] == "http":
            try:
                credential = services.authenticator.from_headers(connection.headers.get("authorization"), connection.headers.get("x-api-key"))
            except Unauthenticated as exc:
                error = exc
            if credential is not None:
                structlog.contextvars.bind_contextvars(subject=credential.actor.subject)
        return Context(
            connection=connection if connection.scope["type"] == "websocket" else None,
            services=services,
            credential=credential,
            auth_error=error,
            client_ip=connection.client.host if connection.client else None,
            user_agent=(connection.headers.get("user-agent") or "")[:512] or None,
            request_id=connection.scope.get("state", {}).get("request_id") or uuid.uuid4().hex,
        )

    app = ServiceApp(title="HITL Patch Service", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    router = SubscriptionRouter(
        build_schema(settings),
        context_getter=get_context,
        graphql_ide="graphiql" if settings.graphiql else None,
        allowed_origins=settings.ws_allowed_origins,
        keep_alive=True,
        keep_alive_interval=settings.ws_keep_alive_seconds,
        connection_init_wait_timeout=timedelta(seconds=10),
    )
    app.include_router(router, prefix=GRAPHQL_PATH)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        async def check() -> str | None:
            async with services.db.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
                return await current_revision(connection)

        try:
            revision = await asyncio.wait_for(check(), READY_TIMEOUT_SECONDS)
        except TimeoutError:
            services.metrics.db_up.set(0)
            reason = f"database did not answer within {READY_TIMEOUT_SECONDS:g} s (down, or no free pooled connection)"
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            services.metrics.db_up.set(0)
            return JSONResponse({"status": "unavailable", "reason": f"database unreachable: {type(exc).__name__}"}, status_code=503)
        services.metrics.db_up.set(1)
        if problem := schema_problem(revision):
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready", "revision": revision, "codeRevision": head_revision()})

    @app.get("/metrics")
    async def metrics() -> Response:
        await services.metrics.refresh(services.db)
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(rest.router(services))

    async def database_unavailable(_request: Request, exc: Exception) -> Response:
        """REST aliases: a database that cannot serve right now is a 503 with the API's error shape."""
        reason = unavailable_reason(exc)
        if reason is None:
            raise exc  # anything else: the server error middleware logs it and answers 500
        log.warning("database unavailable (%s) in a REST request; answered 503", reason)
        body = {"error": {"code": UNAVAILABLE, "reason": reason, "retryable": True, "message": UNAVAILABLE_MESSAGES[reason]}}
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    for error_class in DATABASE_ERROR_CLASSES:
        app.add_exception_handler(error_class, database_unavailable)

    app.add_middleware(HttpEntry, router=router, context_getter=get_context, path=GRAPHQL_PATH)  # inside all of the below
    Instrumentator(registry=services.metrics.registry, excluded_handlers=["/metrics", "/health", "/ready"]).instrument(app)
    app.add_middleware(unavailable_status)
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
    app.front = RequestContext(WebSocketEntry(app.front, router=router, context_getter=get_context, path=GRAPHQL_PATH))
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `hitl serve` and its uvicorn workers (settings from the environment): the process is
    the server's, so it also tunes the garbage collector (graphql_api.gc_pauses)."""
    app = create_app(Settings())
    gc_pauses.tune_for_serving(app.state.services.metrics)
    return app
