"""Many graphql-transport-ws subscribers in one client process: `python -m tests.benchmarks.wsflood`.

Started by the harness (several of them, so that client CPU is spread and is not the server's); it
reads one JSON command per line on stdin and answers one JSON line on stdout. Each connection is a
bare asyncio protocol (RFC 6455 framing by hand, no compression): a library client costs several times
more CPU per message, and on two cores that would show up as server latency. Every receipt of a
`next` message is stamped with `time.monotonic()` (CLOCK_MONOTONIC, comparable across processes) and
filed under the event's `seq`. Loopback only; every wait is bounded.

Commands: connect {n, host, port, token, query, variables}, count {seq}, times {seq}, status,
pages {since} (live pages: receipt and totalCount, per subscriber), disconnect {n}, exit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import struct
import sys
import time
from collections import OrderedDict

KEEP_SEQS = 5000
HANDSHAKE_CONCURRENCY = 64
CONNECT_TIMEOUT = 30.0


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client frame: FIN, masked with a zero key (valid per RFC 6455 and free to apply)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + b"\x00\x00\x00\x00" + payload


class Stats:
    def __init__(self) -> None:
        self.by_seq: OrderedDict[int, list[float]] = OrderedDict()
        self.other_messages = 0
        self.errors: list[str] = []
        self.close_codes: dict[str, int] = {}

    def record(self, seq: int, stamp: float) -> None:
        times = self.by_seq.get(seq)
        if times is None:
            times = self.by_seq[seq] = []
            while len(self.by_seq) > KEEP_SEQS:
                self.by_seq.popitem(last=False)
        times.append(stamp)


class Subscriber(asyncio.Protocol):
    def __init__(self, host: str, port: int, init: bytes, subscribe: bytes, stats: Stats, ready: asyncio.Future) -> None:
        self.host, self.port, self.init, self.subscribe = host, port, init, subscribe
        self.stats, self.ready = stats, ready
        self.buffer = bytearray()
        self.handshaken = False
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.pages: list[tuple[float, int]] = []  # (receipt, totalCount) of live pages (pendingQueue, pendingGroups)

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /graphql HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ack: {exc}"))

    def data_received(self, data: bytes) -> None:
        stamp = time.monotonic()
        self.buffer += data
        if not self.handshaken:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            if b" 101 " not in status:
                self._fail(f"handshake refused: {status!r}")
                return
            del self.buffer[: end + 4]
            self.handshaken = True
            self.transport.write(_frame(self.init))
        self._frames(stamp)

    def _frames(self, stamp: float) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, offset = struct.unpack_from("!H", buffer, 2)[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset: offset + length])
            del buffer[: offset + length]
            if opcode == 0x1:
                self._message(payload, stamp)
            elif opcode == 0x9:  # ping frame
                self.transport.write(_frame(payload, 0xA))
            elif opcode == 0x8:  # close
                code = str(struct.unpack_from("!H", payload)[0]) if len(payload) >= 2 else "none"
                self.stats.close_codes[code] = self.stats.close_codes.get(code, 0) + 1
                with contextlib.suppress(Exception):
                    self.transport.write(_frame(payload[:2], 0x8))
                self.transport.close()
                return

    def _message(self, payload: bytes, stamp: float) -> None:
        if b'"type":"next"' in payload and b'"totalCount":' in payload:
            start = end = payload.find(b'"totalCount":') + 13
            while end < len(payload) and 48 <= payload[end] <= 57:
                end += 1
            if len(self.pages) < KEEP_SEQS:
                self.pages.append((stamp, int(payload[start:end])))
        elif b'"type":"next"' in payload:
            index = payload.find(b'"seq":')
            if index >= 0:
                start = index + 6
                end = start
                while end < len(payload) and 48 <= payload[end] <= 57:
                    end += 1
                self.stats.record(int(payload[start:end]), stamp)
            else:
                self.stats.other_messages += 1
        elif b'"type":"ping"' in payload:
            self.transport.write(_frame(b'{"type":"pong"}'))
        elif b'"connection_ack"' in payload:
            self.transport.write(_frame(self.subscribe))
            if not self.ready.done():
                self.ready.set_result(True)
        elif b'"type":"error"' in payload or b'"type":"complete"' in payload:
            if len(self.stats.errors) < 20:
                self.stats.errors.append(payload[:300].decode(errors="replace"))

    def _fail(self, message: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(message))
        self.transport.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            with contextlib.suppress(Exception):
                self.transport.write(_frame(struct.pack("!H", 1000), 0x8))
            self.transport.close()


class Flood:
    def __init__(self) -> None:
        self.stats = Stats()
        self.subscribers: list[Subscriber] = []

    async def connect(self, n: int, host: str, port: int, token: str, query: str, variables: dict | None = None) -> dict:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("loopback only")
        loop = asyncio.get_running_loop()
        init = json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}).encode()
        subscribe = json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables or {}}}).encode()
        gate = asyncio.Semaphore(HANDSHAKE_CONCURRENCY)
        failures: list[str] = []

        async def one() -> None:
            async with gate:
                ready = loop.create_future()
                try:
                    _, protocol = await asyncio.wait_for(
                        loop.create_connection(lambda: Subscriber(host, port, init, subscribe, self.stats, ready), host, port),
                        CONNECT_TIMEOUT,
                    )
                    await asyncio.wait_for(ready, CONNECT_TIMEOUT)
                    self.subscribers.append(protocol)
                except Exception as exc:  # noqa: BLE001 - reported to the harness
                    failures.append(f"{type(exc).__name__}: {exc}")

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(n)))
        return {"connected": n - len(failures), "failed": len(failures), "failures": failures[:5],
                "seconds": round(time.monotonic() - started, 3), "open": self.open_count()}

    def open_count(self) -> int:
        return sum(1 for s in self.subscribers if not s.closed)

    def disconnect(self, n: int) -> dict:
        alive = [s for s in self.subscribers if not s.closed][:n]
        for subscriber in alive:
            subscriber.close()
        self.subscribers = [s for s in self.subscribers if not s.closed and s not in alive]
        return {"closed": len(alive), "open": self.open_count()}

    def status(self) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"open": self.open_count(), "close_codes": self.stats.close_codes, "errors": self.stats.errors[:5],
                "other_messages": self.stats.other_messages, "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
                "max_rss_mib": round(usage.ru_maxrss / 1024, 1)}

    async def handle(self, command: dict) -> dict:
        kind = command["cmd"]
        if kind == "connect":
            return await self.connect(command["n"], command["host"], command["port"], command["token"], command["query"],
                                      command.get("variables"))
        if kind == "count":
            return {"count": len(self.stats.by_seq.get(command["seq"], ()))}
        if kind == "times":
            return {"times": self.stats.by_seq.get(command["seq"], [])}
        if kind == "status":
            return self.status()
        if kind == "pages":  # each subscriber's live pages received at or after `since`
            return {"pages": [[page for page in s.pages if page[0] >= command["since"]] for s in self.subscribers]}
        if kind == "disconnect":
            return self.disconnect(command["n"])
        raise ValueError(f"unknown command {kind!r}")


async def main() -> None:
    flood = Flood()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            command = json.loads(line)
            if command["cmd"] == "exit":
                break
            try:
                answer = await flood.handle(command)
            except Exception as exc:  # noqa: BLE001
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(answer) + "\n")
            out.flush()
    finally:
        flood.disconnect(len(flood.subscribers))
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
