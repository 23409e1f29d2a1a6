"""Group commit: the items of concurrent callers written together, one transaction for many."""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from db.engine import Database, unavailable_reason

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("hitl.db")


class GroupCommit(Generic[T, R]):
    """`submit(item)` returns `write(session, items)`'s result for that item, once it is committed.

    Items that arrive while a group is being written form the next group (at most `max_items`): alone, an item is
    written at once; under load, one transaction, one audit chain lock and one commit serve many callers. A group
    that fails is written again item by item, so that each caller gets its own item's outcome, unless the database
    is unavailable (then every caller gets that error at once)."""

    def __init__(
        self, db: Database, write: Callable[[AsyncSession, Sequence[T]], Awaitable[Sequence[R]]], *, max_items: int = 100
    ) -> None:
        self._db, self._write, self._max_items = db, write, max_items
        self._waiting: deque[tuple[T, asyncio.Future]] = deque()
        self._writer: asyncio.Task | None = None

    async def submit(self, item: T) -> R:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
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
                group = [self._waiting.popleft() for _ in range(min(self._max_items, len(self._waiting)))]
                await self._write_group(group)
        except BaseException as exc:  # cancelled (the loop is closing): nobody may wait for ever
            for _, future in [*group, *self._waiting]:
                _settle(future, error=exc)
            self._waiting.clear()
            raise
        finally:
            self._writer = None

    async def _write_group(self, group: list[tuple[T, asyncio.Future]]) -> None:
        try:
            async with self._db.write() as session:
                results = await self._write(session, [item for item, _ in group])
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
