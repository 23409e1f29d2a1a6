"""Real webhook receivers on 127.0.0.1 (uvicorn in the test's event loop): they record what arrives and answer
as told (a status, a redirect, or hang); stopped and started again on the same port to play a receiver that is down."""

import asyncio
import json
import time
from dataclasses import dataclass

import uvicorn

from tests.support.server import free_port
from tests.support.waiting import eventually



@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    def __init__(self, *, status: int = 200, hang: bool = False, redirect_to: str | None = None, port: int | None = None) -> None:
        self.status, self.hang, self.redirect_to = status, hang, redirect_to
        self.port = port or free_port()
        self.received: list[Received] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None
        self._release = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> "Receiver":
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._release = asyncio.Event()
        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off", access_log=False, interface="asgi3")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        await eventually(lambda: self._server.started, timeout=10, what="receiver started")

    async def stop(self) -> None:
        if self._server is None:
            return
        self._release.set()  # hanging requests end
        self._server.should_exit = True
        self._server.force_exit = True
        await asyncio.wait_for(self._task, 10)
        self._server = None

    async def _app(self, scope, receive, send) -> None:  # noqa: ANN001
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        self.received.append(Received(headers=headers, body=body, at=time.monotonic()))
        if self.hang:
            await self._release.wait()
        status, extra = self.status, []
        if self.redirect_to is not None:
            status, extra = 302, [(b"location", self.redirect_to.encode())]
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain"), *extra]})
        await send({"type": "http.response.body", "body": b"ok"})

    def events(self) -> list[dict]:
        return [item.json for item in self.received]

    def seqs(self) -> list[int]:
        return [item.json["data"]["seq"] for item in self.received]

