"""The process's webhook dispatcher: holds leases on endpoints (db.services.webhook_delivery.claim) and runs one
EndpointSender per leased endpoint. The hub hands it every batch of new audit rows it reads (the same
LISTEN/NOTIFY path the subscriptions follow), which wakes the senders at once; an endpoint change (a
WEBHOOK_CHANGED entry) makes it look for leases again at once. Leases are renewed every third of their length."""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import timedelta

from db.engine import Database, OutageLog
from db.enums import SystemAction
from db.services import webhook_delivery
from db.services.webhook_targets import AllowList, Resolver, resolve
from db.types import utcnow
from graphql_api.config import Settings
from graphql_api.metrics import Metrics
from graphql_api.webhooks.feed import EventFeed
from graphql_api.webhooks.worker import BodyCache, Delivering, EndpointSender, backoff

log = logging.getLogger("hitl.webhooks")
STOP_GRACE_SECONDS = 3.0
WEBHOOK_CHANGED = SystemAction.WEBHOOK_CHANGED.value


class Dispatcher:
    def __init__(self, db: Database, settings: Settings, metrics: Metrics, *, resolver: Resolver = resolve) -> None:
        self.db, self.settings = db, settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = settings.webhook_lease_seconds
        self.shared = Delivering(
            db=db, owner=self.owner, allow=AllowList.parse(settings.webhook_allowed_hosts), resolver=resolver,
            timeout=settings.webhook_timeout_seconds, max_retry=timedelta(seconds=settings.webhook_max_retry_seconds),
            backoff=backoff(settings.webhook_backoff_initial_seconds, settings.webhook_backoff_max_seconds),
            max_body=settings.webhook_max_response_bytes, poll_seconds=settings.webhook_poll_seconds,
            console_url=settings.public_url, count=lambda outcome: metrics.webhook_deliveries.labels(outcome=outcome).inc(),
            bodies=BodyCache(), feed=EventFeed(db),
        )
        self.senders: dict[uuid.UUID, EndpointSender] = {}
        self._rescan = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self.settings.webhooks:
            self._task = asyncio.create_task(self._leases(), name="hitl-webhook-leases")

    def on_events(self, rows: Sequence) -> None:
        """New audit rows were committed (called by the hub with the rows it read)."""
        for sender in self.senders.values():
            sender.wake()
        if any(row.action == WEBHOOK_CHANGED for row in rows):
            for sender in self.senders.values():
                sender.refresh()
            self._rescan.set()

    async def _leases(self) -> None:
        outage = OutageLog(log)
        while True:
            self._rescan.clear()
            try:
                async with self.db.write() as session:
                    held = await webhook_delivery.claim(session=session, owner=self.owner, now=utcnow(), lease_seconds=self.lease_seconds)
                self._reconcile(held)
                outage.recovered()
            except Exception as exc:  # noqa: BLE001 - the database may be away; senders stop when their writes fail
                outage.failed(exc, "webhook lease renewal failed", lambda reason: f"webhook leases not renewed: database unavailable ({reason})")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rescan.wait(), self.lease_seconds / 3)

    def _reconcile(self, held: set[uuid.UUID]) -> None:
        for endpoint_id, sender in list(self.senders.items()):
            if endpoint_id not in held or sender.task is None or sender.task.done():
                sender.stop()
                del self.senders[endpoint_id]
        for endpoint_id in held - self.senders.keys():
            sender = self.senders[endpoint_id] = EndpointSender(endpoint_id, self.shared)
            sender.start()
        for sender in self.senders.values():
            sender.refresh()  # settings changed meanwhile (or the lease moved) are read again at every renewal

    async def stop(self) -> None:
        """Let each sender finish the event in hand and record its progress, then give the leases back so that
        another replica takes over at once (a rolling update sends nothing twice)."""
        if self._task is None:
            return
        await self.db.cancel_when_idle([self._task])
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        tasks = [sender.task for sender in self.senders.values() if sender.task is not None]
        for sender in self.senders.values():
            sender.stop()
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            await self.db.cancel_when_idle(late)
            await asyncio.gather(*late, return_exceptions=True)
        self.senders.clear()
        try:
            async with asyncio.timeout(2.0):
                async with self.db.write() as session:
                    await webhook_delivery.release(session=session, owner=self.owner)
        except Exception:  # noqa: BLE001 - the leases then run out by themselves
            log.warning("could not give back the webhook leases; they run out in %s s", self.lease_seconds, exc_info=True)
