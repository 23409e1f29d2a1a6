"""Read-only reports: the analytics summary and breakdown, and the audit chain's verification."""

import strawberry

from db.services import analytics_breakdown as breakdown
from db.services.analytics import Summary
from graphql_api.schema.types import enums  # noqa: F401 - registers Priority and AnalyticsInterval first

# The domain reports are exactly the API types: one field list each, exposed as is.
AnalyticsSummary = strawberry.type(Summary, name="AnalyticsSummary")
DecisionTimeBucket = strawberry.type(
    breakdown.DecisionTimeBucket, name="DecisionTimeBucket", description="Human decisions that took [fromSeconds, toSeconds) from submission; toSeconds null: no upper bound."
)
PriorityBreakdown = strawberry.type(breakdown.PriorityBreakdown, name="PriorityBreakdown")
AnalyticsPeriod = strawberry.type(breakdown.AnalyticsPeriod, name="AnalyticsPeriod", description="Patches submitted in the period starting at `start` (UTC).")
AnalyticsBreakdown = strawberry.type(breakdown.AnalyticsBreakdown, name="AnalyticsBreakdown")


@strawberry.type
class AuditChainReport:
    valid: bool
    entries_checked: int
    first_broken_seq: int | None
    truncated: bool = strawberry.field(
        description="The chain no longer reaches a given checkpoint's seq with its hash (rows cut from the head, or rewritten and rehashed)."
    )
