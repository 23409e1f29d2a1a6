"""Keyset pages: the total of the filtered set, then one row more than asked to know if more follow."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next_page: bool
    total_count: int

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None


async def fetch_page(
    *,
    session: AsyncSession,
    model: type[T],
    filters: Sequence,
    seek: Sequence,
    order_by: Sequence,
    limit: int,
    cursor_of: Callable[[T], str],
    offset: int = 0,
    total: int | None = None,
) -> Page[T]:
    """`filters` define the set (and its total, unless the caller knows it); `seek` continues after the cursor within it."""
    if total is None:
        total = (await session.exec(select(func.count()).select_from(model).where(*filters))).one()
    statement = select(model).where(*filters, *seek).order_by(*order_by).offset(offset).limit(limit + 1)
    rows = list((await session.exec(statement)).all())
    items = rows[:limit]
    return Page(items=items, cursors=[cursor_of(item) for item in items], has_next_page=len(rows) > limit, total_count=total)
