"""The events every sender of a process reads, read once: a window of recent events after the audit log's seq,
shared by the senders that follow the head (N endpoints cost one read per new event, not N). A sender asking
for a position outside the window (catching up on a backlog) is served straight from the database."""

import asyncio
import bisect

from db.engine import Database
from db.services import webhook_delivery
from db.services.webhook_delivery import Batch, Event

WINDOW = 5000  # events kept


class EventFeed:
    def __init__(self, db: Database, *, window: int = WINDOW) -> None:
        self.db, self.window = db, window
        self._seqs: list[int] = []
        self._events: list[Event] = []
        self._low: int | None = None  # everything after `_low` up to `_high` is in the window
        self._high = 0
        self._lock = asyncio.Lock()

    async def after(self, seq: int, limit: int) -> Batch:
        if self._low is None or not self._low <= seq <= self._high:
            async with self._lock:
                if self._low is None or seq > self._high:  # a new position ahead: the window starts there
                    self._seqs, self._events = [], []
                    self._low = self._high = seq
                elif seq < self._low:  # behind the window: read it for this sender alone
                    async with self.db.read() as session:
                        return await webhook_delivery.events_after(session=session, seq=seq, limit=limit)
        if seq == self._high:
            async with self._lock:
                if seq == self._high:  # nobody read further meanwhile
                    await self._extend(limit)
        return self._slice(seq, limit)

    async def _extend(self, limit: int) -> None:
        async with self.db.read() as session:
            batch = await webhook_delivery.events_after(session=session, seq=self._high, limit=limit)
        self._events.extend(batch.events)
        self._seqs.extend(event.seq for event in batch.events)
        if batch.last_seq is not None:
            self._high = batch.last_seq
        if len(self._events) > self.window * 3 // 2:  # trimmed in chunks: a list's head is costly to drop one by one
            cut = len(self._events) - self.window
            self._low = self._seqs[cut - 1]
            self._seqs, self._events = self._seqs[cut:], self._events[cut:]

    def _slice(self, seq: int, limit: int) -> Batch:
        start = bisect.bisect_right(self._seqs, seq)
        events = self._events[start:start + limit]
        if len(events) == limit:
            return Batch(events=events, last_seq=events[-1].seq, full=True)
        return Batch(events=events, last_seq=self._high if self._high > seq else None, full=False)
