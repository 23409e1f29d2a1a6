"""A TCP relay in front of PostgreSQL (or the service) that can be told to hang, as a frozen server or a network
that drops every packet does: connections stay open and nothing answers.

`StallingRelay(target_port).start()` listens on a free loopback port and relays to the target; `stall()` stops
relaying on every open connection and accepts new ones without ever answering; `resume()` relays again.
`hold_new()` keeps every connection accepted from then on unanswered for good (a connection attempt that hangs),
`release_new()` relays new ones again; `drop_all()` cuts the open connections (a network drop). It runs on its own
thread (its own event loop), so a test or a benchmark drives it from synchronous code too.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class StallingRelay:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stalling-relay", daemon=True)
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._connections: set[asyncio.Task] = set()
        self._holding = False

    # --- driven from any thread -----------------------------------------------------------------------

    def start(self) -> StallingRelay:
        self._thread.start()
        self._call(self._start())
        return self

    def stall(self) -> None:
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        self._call(self._set_flowing(True))

    def hold_new(self) -> None:
        self._call(self._set_holding(True))

    def release_new(self) -> None:
        self._call(self._set_holding(False))

    def drop_all(self) -> None:
        self._call(self._drop_all())

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> StallingRelay:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, coroutine) -> object:  # noqa: ANN001
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # --- on the relay's loop ---------------------------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _set_flowing(self, flowing: bool) -> None:
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _set_holding(self, holding: bool) -> None:
        self._holding = holding

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    async def _close(self) -> None:
        self._server.close()
        await self._drop_all()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(asyncio.current_task())
        try:
            with contextlib.suppress(asyncio.CancelledError):  # closed by close(): ends quietly
                await self._relay(reader, writer)
        finally:
            self._connections.discard(asyncio.current_task())

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self._holding:
            await asyncio.Event().wait()  # never answered; ended by close()
        try:
            await self._flowing.wait()  # a stalled database accepts and never answers
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(upstream_writer)
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer), return_exceptions=True)
        for end in (writer, upstream_writer):
            self._writers.discard(end)
            end.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            # While stalled, what arrived is held back (never delivered) until the relay resumes.
            await self._flowing.wait()
            if not data or writer.transport.is_closing():
                with contextlib.suppress(OSError):
                    writer.transport.abort()
                return
            writer.write(data)
            await writer.drain()
