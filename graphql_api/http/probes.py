"""The probes operators and Kubernetes read: /health (liveness), /ready (readiness), /metrics (Prometheus)."""

import asyncio

import asyncpg
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from db.engine import exception_chain
from db.migrate import current_revision, head_revision, schema_problem
from graphql_api.paths import HEALTH_PATH, METRICS_PATH, READY_PATH
from graphql_api.services import Services

# /ready answers within this bound (the readiness probe's timeout is 3 s): a database that does not answer
# in time, or a pool with no free connection, is "not ready" rather than a probe that hangs.
READY_TIMEOUT_SECONDS = 2.0


def router(services: Services) -> APIRouter:
    probes = APIRouter()

    @probes.get(HEALTH_PATH)
    async def health() -> dict:
        return {"status": "ok"}

    @probes.get(READY_PATH)
    async def ready() -> Response:
        async def check() -> str | None:
            async with services.db.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
                return await current_revision(connection)

        try:
            revision = await asyncio.wait_for(check(), READY_TIMEOUT_SECONDS)
        except TimeoutError:
            reason = f"database did not answer within {READY_TIMEOUT_SECONDS:g} s (down, or no free pooled connection)"
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return JSONResponse({"status": "unavailable", "reason": f"database unreachable: {_why(exc)}"}, status_code=503)
        if problem := schema_problem(revision):
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready", "revision": revision, "codeRevision": head_revision()})

    @probes.get(METRICS_PATH)
    async def metrics() -> Response:
        # Never waits on the database: its gauges are refreshed in the background (graphql_api.jobs).
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return probes


def _why(exc: BaseException) -> str:
    """The error's type, and the server's own words when it refused the session (e.g. 'database "hitl" does not
    exist', 'password authentication failed for user "hitl_app"'): never a statement or its parameters."""
    cause = next((link for link in exception_chain(exc) if isinstance(link, asyncpg.PostgresError)), None)
    if cause is not None and getattr(cause, "severity_en", None) == "FATAL":
        return f"{type(cause).__name__} ({cause.args[0] if cause.args else ''})"
    return type(exc).__name__
