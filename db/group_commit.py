"""Group commit: the items of concurrent callers written together, one transaction for many."""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy import exc as sa_exc

from db.engine import Database, unavailable_reason

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("hitl.db")


class GroupCommit(Generic[T, R]):
    """`submit(item)` returns `write(session=, items=)`'s result for that item, once it is committed.

    Items that arrive while a group is being written form the next group (at most `max_items`): alone, an item is
    written at once; under load, one transaction, one audit chain lock and one commit serve many callers. A group
    that fails is written again item by item, so that each caller gets its own item's outcome, unless the database
    is unavailable (then every caller gets that error at once).
    An item still waiting for its turn after `max_wait` seconds fails as a request waiting that long for a pooled
    connection does (POOL_EXHAUSTED), so a caller waits no longer than the pool's bound plus its own write."""

    def __init__(
        self,
        db: Database,
        write: Callable[..., Awaitable[Sequence[R]]],  # write(session=AsyncSession, items=Sequence[T]), as submission.write
        *,
        max_items: int = 100,
        max_wait: float = 10.0,
    ) -> None:
        self._db, self._write = db, write
        self._max_items, self._max_wait = max_items, max_wait
        self._waiting: deque[tuple[T, asyncio.Future, float]] = deque()
        self._writer: asyncio.Task | None = None

    async def submit(self, item: T) -> R:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future, time.monotonic()))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_waiting(), name="hitl-group-commit")
        return await future

    async def wait_idle(self) -> None:
        """Until the items submitted so far are written (at shutdown, before the pool closes)."""
        while self._writer is not None:
            await asyncio.wait({self._writer})

    async def _write_waiting(self) -> None:
        group: list[tuple[T, asyncio.Future]] = []
        try:
            while self._waiting:
                group = self._next_group()
                if group:
                    await self._write_group(group)
        except BaseException as exc:  # cancelled (the loop is closing): nobody may wait for ever
            for future in [future for _, future in group] + [future for _, future, _ in self._waiting]:
                _settle(future, error=exc)
            self._waiting.clear()
            raise
        finally:
            self._writer = None

    def _next_group(self) -> list[tuple[T, asyncio.Future]]:
        group: list[tuple[T, asyncio.Future]] = []
        now = time.monotonic()
        while self._waiting and len(group) < self._max_items:
            item, future, arrived = self._waiting.popleft()
            if now - arrived > self._max_wait:
                _settle(future, error=sa_exc.TimeoutError(f"waited {now - arrived:.1f} s for the writes before it"))
            else:
                group.append((item, future))
        return group

    async def _write_group(self, group: list[tuple[T, asyncio.Future]]) -> None:
        try:
            async with self._db.write() as session:
                results = await self._write(session=session, items=[item for item, _ in group])
        except Exception as exc:  # noqa: BLE001 - handed to the callers
            if len(group) == 1 or unavailable_reason(exc) is not None:
                for _, future in group:
                    _settle(future, error=exc)
                return
            log.info("a group of %d writes failed (%s): writing them one by one", len(group), type(exc).__name__)
            for entry in group:
                await self._write_group([entry])
            return
        for (_, future), result in zip(group, results, strict=True):
            _settle(future, result=result)


def _settle(future: asyncio.Future, *, result: object = None, error: BaseException | None = None) -> None:
    if future.done():  # the caller gave up (cancelled); its item was written all the same
        return
    if isinstance(error, asyncio.CancelledError):
        future.cancel()
    elif error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
