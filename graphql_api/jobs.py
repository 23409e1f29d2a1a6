"""Periodic work every replica does beside serving requests. Each job is safe with any number of replicas."""

import asyncio
import logging
from datetime import timedelta

from db.engine import OutageLog
from db.services import audit_checkpoints, sla, status_counts
from db.types import utcnow
from graphql_api.services import Services
from ml.service import check_drift

log = logging.getLogger("hitl.jobs")
# Checkpoint lines only: graphql_api.logging_setup writes them as they are (one JSON object, no other field).
checkpoint_log = logging.getLogger("hitl.audit.checkpoint")
# A replica writes a checkpoint when the newest is older than this share of the interval, so one replica
# ticking every interval always writes, and several replicas still write about one per interval in all.
DUE_SHARE = 0.9


async def open_pool(services: Services) -> None:
    """Opens DB_POOL_MIN_SIZE connections once, beside the start rather than in it (a database that hangs must not
    hold up /health); a database that is down leaves them to be opened on demand."""
    try:
        await services.db.open_connections()
    except Exception as exc:  # noqa: BLE001 - opened by the first requests instead
        log.warning("could not open the database connections ahead of requests: %s", type(exc).__name__)


async def sla_watcher(services: Services) -> None:
    """Appends SLA_BREACHED once per patch (rows are claimed under lock), and folds the patch-count deltas the
    triggers append (status_counts.compact)."""
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


async def metrics_refresher(services: Services) -> None:
    """Reads the database-derived gauges every HITL_METRICS_REFRESH_SECONDS, each read bounded by
    HITL_METRICS_REFRESH_TIMEOUT_SECONDS, so /metrics answers at once whatever the database does."""
    settings = services.settings
    while True:
        await services.metrics.refresh(services.db, timeout=settings.metrics_refresh_timeout_seconds)
        await asyncio.sleep(settings.metrics_refresh_seconds)


async def audit_checkpointer(services: Services) -> None:
    """Every HITL_AUDIT_CHECKPOINT_SECONDS: a signed checkpoint of the audit chain's head, stored and written
    as a log line. Any replica may write it; the first replica to find the newest one due writes it (under a
    lock in db.services.audit_checkpoints), so all replicas together write about one per interval."""
    settings = services.settings
    if settings.audit_checkpoint_seconds == 0 or settings.audit_checkpoint_key is None:
        return
    key = settings.audit_checkpoint_key_bytes
    every = timedelta(seconds=settings.audit_checkpoint_seconds * DUE_SHARE)
    outage = OutageLog(log)
    while True:
        try:
            async with services.db.write() as session:
                checkpoint = await audit_checkpoints.write_due(session=session, key=key, now=utcnow(), every=every)
            if checkpoint is not None:
                checkpoint_log.info(checkpoint.line())
            outage.recovered()
        except Exception as exc:  # noqa: BLE001 - keep going; the database may come back
            outage.failed(exc, "audit checkpoint failed", lambda reason: f"audit checkpoint skipped: database unavailable ({reason}); retrying")
        await asyncio.sleep(settings.audit_checkpoint_seconds)


async def drift_checker(services: Services) -> None:
    """Every HITL_DRIFT_CHECK_SECONDS (0 = never): the active model's feature drift over the last HITL_DRIFT_WINDOW
    submissions (ml.service.check_drift). Replicas measure the same thing; the pause it may cause happens once
    (under the audit lock, and never over a pause)."""
    settings = services.settings
    if settings.drift_check_seconds == 0:
        return
    outage = OutageLog(log)
    while True:
        try:
            await check_drift(db=services.db, window=settings.drift_window, threshold=settings.drift_psi_threshold, pause=settings.drift_pause)
            outage.recovered()
        except Exception as exc:  # noqa: BLE001 - keep going; the database may come back
            outage.failed(exc, "drift check failed", lambda reason: f"drift check skipped: database unavailable ({reason}); retrying")
        await asyncio.sleep(settings.drift_check_seconds)
