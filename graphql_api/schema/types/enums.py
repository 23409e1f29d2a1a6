"""GraphQL enums: the domain enumerations, exposed under the names of API.md."""

import strawberry

from db import enums
from db.services import analytics_breakdown

PatchStatus = strawberry.enum(enums.PatchStatus, name="PatchStatus")
Priority = strawberry.enum(enums.Priority, name="Priority")
Severity = strawberry.enum(enums.Severity, name="Severity")
SlaStatus = strawberry.enum(enums.SlaStatus, name="SlaStatus")
VersionBump = strawberry.enum(enums.VersionBump, name="VersionBump")
PatchEventKind = strawberry.enum(enums.PatchEventKind, name="PatchEventKind")
AnalyticsInterval = strawberry.enum(analytics_breakdown.AnalyticsInterval, name="AnalyticsInterval")
