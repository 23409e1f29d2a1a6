"""hitl_* Prometheus metrics. Gauges come from the database (cached briefly), so every replica reports
the same truth; counters and the histogram count what this process decided."""

import asyncio
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from db.engine import Database
from db.services import analytics, queue
from db.services.analytics import HUMAN_DECISIONS
from db.types import utcnow

log = logging.getLogger("hitl.metrics")

# A collection's pause: young ones take well under a millisecond, full ones grow with the heap.
GC_PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Submission → decision. Dense around the 5-minute p95 alert (HITLDecisionLag) and up to a day.
DECISION_BUCKETS = (5, 15, 30, 60, 120, 180, 240, 300, 360, 450, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)


class Metrics:
    def __init__(self, cache_seconds: float = 5.0) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter("hitl_decisions_total", "Decisions by type", ["decision_type"], registry=self.registry)
        self.decision_duration = Histogram(
            "hitl_decision_duration_seconds", "Time from submission to decision", buckets=DECISION_BUCKETS, registry=self.registry
        )
        self.pending = Gauge("hitl_pending_patches", "Patches waiting for a decision (PENDING and ESCALATED)", registry=self.registry)
        self.ml_accuracy = Gauge("hitl_ml_accuracy", "Share of patches where the model agreed with wargaming", registry=self.registry)
        self.auto_approval_rate = Gauge("hitl_auto_approval_rate", "Auto-approved share of decided patches", registry=self.registry)
        self.rejection_rate = Gauge("hitl_rejection_rate", "Rejected share of decided patches", registry=self.registry)
        self.db_up = Gauge("hitl_db_up", "1 when the database answered the last check", registry=self.registry)
        self.active_subscriptions = Gauge("hitl_active_subscriptions", "Open GraphQL subscriptions in this process", registry=self.registry)
        self.subscription_executions = Counter(
            "hitl_subscription_executions_total",
            "Subscription results computed (once per event and distinct operation, shared by its subscribers)",
            registry=self.registry,
        )
        # Set by `hitl serve` (graphql_api.gc_pauses), which owns the process.
        self.gc_pause = Histogram(
            "hitl_gc_pause_seconds", "Garbage collection pauses of this process, by generation (2 = full)", ["generation"],
            buckets=GC_PAUSE_BUCKETS, registry=self.registry,
        )
        self.gc_frozen_objects = Gauge(
            "hitl_gc_frozen_objects", "Objects created at startup and left out of every later collection", registry=self.registry
        )
        self._cache_seconds = cache_seconds
        self._refreshed_at = float("-inf")
        self._lock = asyncio.Lock()

    def record_decision(self, decision_type: str, seconds: float | None) -> None:
        self.decisions.labels(decision_type=decision_type).inc()
        # Submission → *human* decision, like analyticsSummary's decision times (README): instant
        # auto-approvals and cancellations would pull the p95 (HITLDecisionLag) down and hide reviewer lag.
        if seconds is not None and decision_type in HUMAN_DECISIONS:
            self.decision_duration.observe(max(seconds, 0.0))

    async def refresh(self, db: Database) -> None:
        """Recompute the gauges unless they are fresher than the cache window."""
        async with self._lock:
            if time.monotonic() - self._refreshed_at < self._cache_seconds:
                return
            try:
                async with db.read() as session:
                    summary = await analytics.summary(session=session, now=utcnow())
                    pending = await queue.pending_count(session=session)
            except Exception:  # noqa: BLE001 - any failure means the database is not usable
                log.warning("database check for metrics failed", exc_info=True)
                self.db_up.set(0)
            else:
                self.db_up.set(1)
                self.pending.set(pending)
                self.ml_accuracy.set(summary.ml_accuracy if summary.ml_accuracy is not None else float("nan"))
                # No decisions yet: the rates are unknown (NaN), not 0, so the rate alerts stay quiet.
                decided = summary.approved + summary.rejected + summary.auto_approved
                self.auto_approval_rate.set(summary.auto_approval_rate if decided else float("nan"))
                self.rejection_rate.set(summary.rejection_rate if decided else float("nan"))
            self._refreshed_at = time.monotonic()
