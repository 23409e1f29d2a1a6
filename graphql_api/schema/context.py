"""The typed per-request context handed to every resolver, and the context getter that builds it."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext

from db.engine import Database
from db.services.actor import Actor
from db.services.errors import Unauthenticated
from db.types import utcnow
from graphql_api.auth import Credential
from graphql_api.schema.loaders import Loaders, create_loaders
from graphql_api.services import Services


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
    refusal_close_code: int | None = None  # the close code of a refused connection_init (graphql_api.live.websocket)
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


def context_getter(services: Services) -> Callable[[HTTPConnection], Awaitable[Context]]:
    """Builds each request's Context. Over HTTP the credential is read from the headers now (a bad one is kept
    as `auth_error` and raised by the first field that needs a caller); a WebSocket authenticates at
    connection_init (graphql_api.live.websocket)."""

    async def get_context(connection: HTTPConnection) -> Context:
        credential, error = None, None
        websocket = connection.scope["type"] == "websocket"
        if not websocket:
            try:
                credential = services.authenticator.from_headers(connection.headers.get("authorization"), connection.headers.get("x-api-key"))
            except Unauthenticated as exc:
                error = exc
            if credential is not None:
                structlog.contextvars.bind_contextvars(subject=credential.actor.subject)
        return Context(
            connection=connection if websocket else None,
            services=services,
            credential=credential,
            auth_error=error,
            client_ip=connection.client.host if connection.client else None,
            user_agent=(connection.headers.get("user-agent") or "")[:512] or None,
            request_id=connection.scope.get("state", {}).get("request_id") or uuid.uuid4().hex,
        )

    return get_context
