"""The settings a command-line model job (`hitl ml train`, `hitl demo`) runs with. A module of its own so that
reading the settings does not import xgboost."""

from dataclasses import dataclass

from db.services.policy import Policy


@dataclass(frozen=True)
class TrainingJob:
    database_url: str  # where the decision history is
    policy: Policy
    nthread: int
