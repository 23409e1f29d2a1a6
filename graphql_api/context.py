"""The typed per-request context handed to every resolver."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strawberry.fastapi import BaseContext

from db.engine import Database
from db.services.actor import Actor
from db.services.errors import Unauthenticated
from db.services.policy import Policy
from db.types import utcnow
from graphql_api.auth import Credential
from graphql_api.config import Settings
from graphql_api.loaders import Loaders, create_loaders
from graphql_api.metrics import Metrics
from ml.service import ModelHolder


@dataclass
class Services:
    """Process-wide collaborators, created once by the app."""

    settings: Settings
    db: Database
    policy: Policy
    models: ModelHolder
    metrics: Metrics
    authenticator: Any  # graphql_api.auth.Authenticator
    hub: Any = None  # the subscription fan-out hub


@dataclass
class Context(BaseContext):
    services: Services
    credential: Credential | None
    auth_error: Unauthenticated | None
    client_ip: str | None
    user_agent: str | None
    request_id: str
    now: datetime = field(default_factory=utcnow)
    connection: Any = None  # the WebSocket, for subscriptions
    connection_params: Any = None  # connection_init payload (set by strawberry)
    expiry_timer: Any = None  # closes the WebSocket when its token expires (an asyncio.TimerHandle)
    _loaders: Loaders | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        super().__init__()

    @property
    def loaders(self) -> Loaders:
        """Created on first use. A WebSocket's context lives as long as the connection and serves every event of
        its subscriptions: there the loaders batch but do not cache, or each event would show the relations
        (approvals, comments, audit trail) first read for that patch, and the cache would grow for hours."""
        if self._loaders is None:
            self._loaders = create_loaders(self.services.db, cache=self.connection is None)
        return self._loaders

    @property
    def db(self) -> Database:
        return self.services.db

    def actor(self) -> Actor:
        """The authenticated caller, with this request's client address for the audit log."""
        if self.credential is None:
            raise self.auth_error or Unauthenticated("missing credentials")
        actor = self.credential.actor
        return Actor(subject=actor.subject, roles=actor.roles, ip_address=self.client_ip, user_agent=self.user_agent)
