"""The process-wide collaborators every request reaches through its context: created once per process by
graphql_api.app, started and stopped with it."""

from dataclasses import dataclass
from typing import Any

from db.engine import Database
from db.group_commit import GroupCommit
from db.services.policy import Policy
from graphql_api.auth import Authenticator
from graphql_api.config import Settings
from graphql_api.metrics import Metrics
from ml.service import ModelHolder


@dataclass
class Services:
    settings: Settings
    db: Database
    policy: Policy
    models: ModelHolder
    metrics: Metrics
    authenticator: Authenticator
    submissions: GroupCommit  # submitPatch's writes: concurrent submissions share a transaction (db.services.submission.write)
    hub: Any = None  # graphql_api.live.hub.Hub: the process's subscription fan-out
    webhooks: Any = None  # graphql_api.webhooks.dispatcher.Dispatcher: the process's webhook senders
