"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load generation on a 2-core machine.

A full-featured client (httpx) spends about as much CPU per request as a small server request does;
on two cores that would be measured as server latency. This one writes a request and reads one
response (Content-Length or chunked) on a persistent connection, nothing more. 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import time

IDLE_RECONNECT_S = 3.0

class HttpConnection:
    def __init__(self, host: str, port: int) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("benchmarks only target the loopback interface")
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def open(self) -> HttpConnection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.last_used = time.monotonic()
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            writer, self.writer = self.writer, None
            try:
                await asyncio.wait_for(writer.wait_closed(), 5)
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - a reset while closing changes nothing
                if isinstance(exc, asyncio.CancelledError) and asyncio.current_task().cancelling():
                    raise

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                      timeout: float = 60.0) -> tuple[int, bytes]:
        # uvicorn closes keep-alive connections idle for 5 s: reconnect before that rather than race it.
        if self.writer is not None and time.monotonic() - self.last_used > IDLE_RECONNECT_S:
            await self.close()
        if self.writer is None:
            await self.open()
        try:
            return await self._exchange(method, path, body, headers, timeout)
        finally:
            self.last_used = time.monotonic()

    async def _exchange(self, method: str, path: str, body: bytes, headers: dict[str, str] | None, timeout: float) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: keep-alive"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return await asyncio.wait_for(self._response(), timeout)

    async def _response(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        else:
            body = await self.reader.read()
            await self.close()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body


class GraphQLClient:
    """POST /graphql over one keep-alive connection; `call` returns (seconds, parsed body)."""

    def __init__(self, host: str, port: int, *, token: str | None = None, api_key: str | None = None) -> None:
        self.connection = HttpConnection(host, port)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if api_key:
            self.headers["X-API-Key"] = api_key

    async def call(self, query: str, variables: dict | None = None) -> tuple[float, dict]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        started = time.perf_counter()
        status, raw = await self.connection.request("POST", "/graphql", body, self.headers)
        elapsed = time.perf_counter() - started
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {"errors": [{"message": f"HTTP {status}: {raw[:200]!r}"}]}
        if status != 200 and "errors" not in parsed:
            parsed["errors"] = [{"message": f"HTTP {status}"}]
        return elapsed, parsed

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self.connection.request("GET", path, b"", {k: v for k, v in self.headers.items() if k != "Content-Type"})

    async def close(self) -> None:
        await self.connection.close()
