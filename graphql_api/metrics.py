"""hitl_* Prometheus metrics. Counters and histograms count what this process did. The gauges read from the
database (the same on every replica) are refreshed in the background (graphql_api.jobs.metrics_refresher),
never while Prometheus scrapes: a database that hangs must not turn into a scrape that times out, which
Prometheus would report as the whole service down. They are NaN until the first successful read (unknown is not
zero), then keep the last value read; `hitl_db_up` and `hitl_db_last_success_timestamp_seconds` say how that
last attempt went and how old the values are."""

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from db.engine import Database, OutageLog, unavailable_reason
from db.enums import FINAL_STATUSES
from db.services import analytics, audit, auto_approval, ml_models, queue, webhook_delivery
from db.services import drift as drift_state
from db.services.analytics import HUMAN_DECISIONS
from db.types import utcnow
from graphql_api.errors import CODES, OPERATION_TYPES, UNKNOWN_OPERATION, code_of
from ml.service import top_features

log = logging.getLogger("hitl.metrics")

# A collection's pause: young ones take well under a millisecond, full ones grow with the heap.
GC_PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Submission → decision. Dense around the 5-minute p95 alert (HITLDecisionLag) and up to a day.
DECISION_BUCKETS = (5, 15, 30, 60, 120, 180, 240, 300, 360, 450, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
UNKNOWN = float("nan")
OTHER_CODE = "OTHER"  # a code outside graphql_api.errors.CODES (keeps the label set bounded)


@dataclass(frozen=True)
class DatabaseReading:
    summary: analytics.Summary
    pending: int
    head_seq: int
    oldest_open_created_at: datetime | None
    webhook_endpoints: list  # (endpoint id, events behind, failing) per endpoint
    guard_tripped: bool
    top_feature_drift: dict[str, float]  # the active model's top features, once its drift was measured


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter("hitl_decisions_total", "Decisions by type", ["decision_type"], registry=self.registry)
        for status in FINAL_STATUSES:  # 0 from the start: the decision panels show 0, not "No data"
            self.decisions.labels(decision_type=status.value)
        self.decision_duration = Histogram(
            "hitl_decision_duration_seconds", "Time from submission to decision", buckets=DECISION_BUCKETS, registry=self.registry
        )
        self.group_decisions = Counter(
            "hitl_group_decisions_total", "decideGroup calls committed, by decision", ["decision"], registry=self.registry
        )
        self.group_decision_members = Counter(
            "hitl_group_decision_members_total", "Members of committed group decisions, applied or skipped", ["decision", "outcome"],
            registry=self.registry,
        )
        self.pending = Gauge("hitl_pending_patches", "Patches waiting for a decision (PENDING and ESCALATED)", registry=self.registry)
        self.ml_accuracy = Gauge("hitl_ml_accuracy", "Share of patches where the model agreed with wargaming", registry=self.registry)
        self.auto_approval_rate = Gauge("hitl_auto_approval_rate", "Auto-approved share of decided patches", registry=self.registry)
        self.rejection_rate = Gauge("hitl_rejection_rate", "Rejected share of decided patches", registry=self.registry)
        self.db_up = Gauge("hitl_db_up", "1 when the database answered the last background read in time, else 0", registry=self.registry)
        self.db_last_success = Gauge(
            "hitl_db_last_success_timestamp_seconds", "When the database-derived gauges were last read (Unix time)", registry=self.registry
        )
        self.oldest_pending_age = Gauge(
            "hitl_oldest_pending_patch_age_seconds",
            "Age of the longest-waiting patch without a decision (PENDING or ESCALATED); 0 when none waits",
            registry=self.registry,
        )
        # Aged at each scrape from the submission time last read (a read may be a few seconds old).
        self._oldest_open_created: float | None = UNKNOWN
        self.oldest_pending_age.set_function(self._oldest_pending_age)
        self.active_subscriptions = Gauge("hitl_active_subscriptions", "Open GraphQL subscriptions in this process", registry=self.registry)
        self.subscription_executions = Counter(
            "hitl_subscription_executions_total",
            "Subscription results computed (once per event and distinct operation, shared by its subscribers)",
            registry=self.registry,
        )
        # Set by `hitl serve` (graphql_api.server), which owns the process.
        self.gc_pause = Histogram(
            "hitl_gc_pause_seconds", "Garbage collection pauses of this process, by generation (2 = full)", ["generation"],
            buckets=GC_PAUSE_BUCKETS, registry=self.registry,
        )
        self.gc_frozen_objects = Gauge(
            "hitl_gc_frozen_objects", "Objects created at startup and left out of every later collection", registry=self.registry
        )
        self.graphql_errors = Counter(
            "hitl_graphql_errors_total",
            "Errors sent in GraphQL responses (HTTP and WebSocket; most answer HTTP 200), by extensions.code and operation type",
            ["code", "operation_type"],
            registry=self.registry,
        )
        # Every series from the start: a rate() sees the first error, and a dashboard shows 0 instead of nothing.
        for code in (*CODES, OTHER_CODE):
            for kind in (*OPERATION_TYPES, UNKNOWN_OPERATION):
                self.graphql_errors.labels(code=code, operation_type=kind)
        self.audit_head_seq = Gauge("hitl_audit_head_seq", "Seq of the newest audit log entry (the chain's head)", registry=self.registry)
        self.webhook_deliveries = Counter(
            "hitl_webhook_deliveries", "Webhook delivery attempts by this process, by outcome (delivered, retry, failed)", ["outcome"],
            registry=self.registry,
        )
        self.webhook_lag = Gauge(
            "hitl_webhook_lag_events", "Audit events an endpoint's cursor is behind the head (from the database)", ["endpoint"], registry=self.registry
        )
        self.webhook_failing = Gauge(
            "hitl_webhook_endpoints_failing", "Webhook endpoints that gave up a delivery and wait for an ADMIN", registry=self.registry
        )
        self.guard_tripped = Gauge(
            "hitl_auto_approval_guard_tripped", "1 while auto-approval is paused by its guard (outcomes or drift), until an ADMIN resumes",
            registry=self.registry,
        )
        self.feature_drift = Gauge(
            "hitl_ml_feature_drift", "PSI of the active model's top features (by gain): training rows vs recent submissions",
            ["feature"], registry=self.registry,
        )
        for gauge in (self.pending, self.ml_accuracy, self.auto_approval_rate, self.rejection_rate, self.db_up, self.db_last_success,
                      self.audit_head_seq, self.webhook_failing, self.guard_tripped):
            gauge.set(UNKNOWN)
        self._reading: asyncio.Task | None = None
        self._waiters = 0  # callers waiting for _reading (a read is replaced only once done, when none waits)
        self._outage = OutageLog(log)

    def record_decision(self, decision_type: str, seconds: float | None) -> None:
        self.decisions.labels(decision_type=decision_type).inc()
        # Submission → *human* decision, like analyticsSummary's decision times (README): instant
        # auto-approvals and cancellations would pull the p95 (HITLDecisionLag) down and hide reviewer lag.
        if seconds is not None and decision_type in HUMAN_DECISIONS:
            self.decision_duration.observe(max(seconds, 0.0))

    def record_group_decision(self, decision: str, *, applied: int, skipped: int) -> None:
        """A committed group decision; each applied member's own decision is counted by record_decision."""
        self.group_decisions.labels(decision=decision).inc()
        self.group_decision_members.labels(decision=decision, outcome="applied").inc(applied)
        self.group_decision_members.labels(decision=decision, outcome="skipped").inc(skipped)

    def record_graphql_errors(self, errors: list, operation_type: str) -> None:
        """Counts errors as they leave, coded (GraphQLErrors or formatted dicts)."""
        kind = operation_type if operation_type in OPERATION_TYPES else UNKNOWN_OPERATION
        for error in errors:
            code = code_of(error)
            self.graphql_errors.labels(code=code if code in CODES else OTHER_CODE, operation_type=kind).inc()

    async def refresh(self, db: Database, *, timeout: float) -> bool:
        """One read of the database-derived gauges, waited for at most `timeout` seconds; whether it succeeded.

        At most one read is in flight: a caller that finds one joins it. A read nobody waits for any more (each
        caller's time ran out) is cancelled and counts as a failure; its connection is dropped in the background.
        While a hung one is still being torn down, the next attempt waits for it (within its own timeout) instead
        of taking another connection. One caller's short timeout never cancels the read another caller still waits
        for (the background refresher's and a test's fresh read, say)."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(_read(db), name="hitl-metrics-read")
        reading = self._reading  # another caller may start the next read before this one resumes
        self._waiters += 1
        try:
            done, _ = await asyncio.wait({reading}, timeout=timeout)
        finally:
            self._waiters -= 1
        if not done:
            if not self._waiters:
                reading.cancel()
            return self._failed(TimeoutError(f"the database did not answer within {timeout:g} s"))
        if reading.cancelled():
            return self._failed(TimeoutError("the previous read was cancelled"))
        if (error := reading.exception()) is not None:
            return self._failed(error)
        self._apply(reading.result())
        return True

    def cancel_reading(self) -> None:
        if self._reading is not None:
            self._reading.cancel()

    def _failed(self, error: BaseException) -> bool:
        """An outage is logged once while it lasts; anything else (a bug) every time, with its traceback."""
        if unavailable_reason(error) is None:
            log.warning("database read for metrics failed", exc_info=(type(error), error, error.__traceback__))
        else:
            self._outage.failed(error, "database read for metrics failed", lambda reason: f"metrics not refreshed: database unavailable ({reason})")
        self.db_up.set(0)
        return False

    def _apply(self, reading: DatabaseReading) -> None:
        summary = reading.summary
        self.pending.set(reading.pending)
        self.audit_head_seq.set(reading.head_seq)
        self.webhook_lag.clear()  # deleted endpoints leave the exposition
        for endpoint_id, behind, _failing in reading.webhook_endpoints:
            self.webhook_lag.labels(endpoint=str(endpoint_id)).set(behind)
        self.webhook_failing.set(sum(1 for *_rest, failing in reading.webhook_endpoints if failing))
        self.guard_tripped.set(1 if reading.guard_tripped else 0)
        self.feature_drift.clear()  # another model, or none: its series leave the exposition
        for feature, psi in reading.top_feature_drift.items():
            self.feature_drift.labels(feature=feature).set(psi)
        self.ml_accuracy.set(summary.ml_accuracy if summary.ml_accuracy is not None else UNKNOWN)
        # No decisions yet: the rates are unknown (NaN), not 0, so the rate alerts stay quiet.
        decided = summary.approved + summary.rejected + summary.auto_approved
        self.auto_approval_rate.set(summary.auto_approval_rate if decided else UNKNOWN)
        self.rejection_rate.set(summary.rejection_rate if decided else UNKNOWN)
        oldest = reading.oldest_open_created_at
        self._oldest_open_created = oldest.timestamp() if oldest is not None else None
        if self._outage.recovered():
            log.info("metrics refreshed again: the database answers")
        self.db_up.set(1)
        self.db_last_success.set(time.time())

    def _oldest_pending_age(self) -> float:
        if self._oldest_open_created is None:
            return 0.0
        return max(time.time() - self._oldest_open_created, 0.0)  # NaN stays NaN


def _top_drift(model, measured: dict | None) -> dict[str, float]:  # noqa: ANN001 - db.models.MlModel | None
    if model is None or measured is None or measured.get("modelVersion") != model.version:
        return {}
    return {feature: measured["psi"][feature] for feature in top_features(model) if feature in measured["psi"]}


async def _read(db: Database) -> DatabaseReading:
    async with db.read() as session:
        pause = await auto_approval.pause_state(session=session)
        top_feature_drift = _top_drift(await ml_models.active(session=session), await drift_state.latest(session=session))
        return DatabaseReading(
            summary=await analytics.summary(session=session, now=utcnow()),
            pending=await queue.pending_count(session=session),
            head_seq=await audit.head_seq(session=session),
            oldest_open_created_at=await queue.oldest_open_created_at(session=session),
            webhook_endpoints=(await webhook_delivery.lag(session=session))[1],
            guard_tripped=pause.paused and pause.trip is not None,
            top_feature_drift=top_feature_drift,
        )
