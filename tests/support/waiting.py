"""Waiting on a condition instead of sleeping for a guessed time: fast when the machine is fast, patient when it is loaded."""

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable

import httpx


async def eventually(condition: Callable[[], object | Awaitable[object]], *, timeout: float = 10.0, interval: float = 0.02, what: str = "the condition") -> object:
    """The condition's first truthy value, polled until `timeout`; an AssertionError naming `what` after that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        await asyncio.sleep(interval)


async def metric(base: str, name: str, client: httpx.AsyncClient | None = None) -> float | None:
    """One unlabelled sample of a server's /metrics, or None when it is not exported."""
    async with httpx.AsyncClient(trust_env=False, timeout=10) if client is None else contextlib.nullcontext(client) as http:
        text = (await http.get(f"{base}/metrics")).text
    return next((float(line.split()[1]) for line in text.splitlines() if line.startswith(f"{name} ")), None)


async def subscriptions_open(base: str, count: int, client: httpx.AsyncClient | None = None, timeout: float = 10.0) -> None:
    """Until the server counts `count` running subscriptions: each is then registered for live events, so what
    happens next reaches it (a subscription starts at the hub's position, not at the client's request)."""

    async def running() -> bool:
        return await metric(base, "hitl_active_subscriptions", client) == count

    await eventually(running, timeout=timeout, interval=0.02, what=f"{count} running subscriptions at {base}")

