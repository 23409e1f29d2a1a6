"""Real third-party clients: Python gql (both subprotocols) and the npm graphql-ws client; token expiry;
WebSocket origins."""

import asyncio
import json
from pathlib import Path

import pytest
import websockets
from gql import Client, gql
from gql.transport.exceptions import TransportConnectionFailed
from gql.transport.websockets import WebsocketsTransport

from tests.support.waiting import subscriptions_open
from tests.support.server import VIEWER, settings_for, start_server, submit, token
from tests.support.wsclient import TRANSPORT_WS, connect

EVENTS = "subscription { patchEvents { seq kind patch { patchId } } }"
NODE_CLIENT = Path(__file__).resolve().parents[1] / "http_audit" / "ws-subscribe.js"


def _ws(base: str) -> str:
    return base.replace("http://", "ws://") + "/graphql"


@pytest.mark.parametrize("subprotocol", [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL])
async def test_python_gql_client(api, subprotocol):
    transport = WebsocketsTransport(
        url=_ws(api.base), init_payload={"Authorization": f"Bearer {VIEWER}"}, subprotocols=[subprotocol], connect_args={"proxy": None}
    )
    async with Client(transport=transport) as session:
        received = []

        async def listen():
            async for result in session.subscribe(gql(EVENTS)):
                received.append(result["patchEvents"])
                if len(received) == 2:
                    return

        listener = asyncio.create_task(listen())
        await subscriptions_open(api.base, 1)
        await submit(api, 1)
        await submit(api, 2)
        await asyncio.wait_for(listener, 10)
    assert transport.subprotocol == subprotocol
    assert [(e["seq"], e["patch"]["patchId"]) for e in received] == [(1, "P-1"), (2, "P-2")]


async def test_python_gql_client_without_token_is_refused(api):
    transport = WebsocketsTransport(url=_ws(api.base), subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL], connect_args={"proxy": None})
    with pytest.raises(TransportConnectionFailed) as refused:
        async with Client(transport=transport) as session:
            async for _ in session.subscribe(gql(EVENTS)):
                break
    assert refused.value.__cause__.rcvd.code == 4401


async def _node_client(api, credential: str | None, count: int):
    return await asyncio.create_subprocess_exec(
        "node", str(NODE_CLIENT), _ws(api.base), credential or "", str(count), EVENTS, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def test_npm_graphql_ws_client(api):
    process = await _node_client(api, VIEWER, 3)
    assert json.loads(await asyncio.wait_for(process.stdout.readline(), 20)) == {"ready": True}
    await subscriptions_open(api.base, 1)
    for n in range(3):
        await submit(api, n)
    output, stderr = await asyncio.wait_for(process.communicate(), 20)
    lines = [json.loads(line) for line in output.decode().splitlines()]
    assert process.returncode == 0, stderr
    assert [line["data"]["patchEvents"]["seq"] for line in lines] == [1, 2, 3]


async def test_npm_graphql_ws_client_without_token_gets_4401(api):
    process = await _node_client(api, None, 1)
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 1
    assert json.loads(output.decode().splitlines()[-1]) == {"error": {"code": 4401, "reason": "Unauthorized"}}


async def test_connection_closes_when_the_token_expires(database_url):
    server, task, base, _app = await start_server(settings_for(database_url, jwt_leeway_seconds=0))
    try:
        short = token("brief", "viewer", ttl=3)  # 2 (truncated to whole seconds) left too little to connect under load
        async with connect(base, token=short) as client:
            await client.subscribe(EVENTS)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(client.connection.recv(), 10)
        assert closed.value.rcvd.code == 4401 and closed.value.rcvd.reason == "token expired"
    finally:
        server.should_exit = True
        await task


async def test_websocket_origins(database_url):
    server, task, base, _app = await start_server(settings_for(database_url, ws_allowed_origins=["https://dash.example"]))
    try:
        async with connect(base, token=VIEWER, headers={"Origin": "https://dash.example"}) as client:
            await client.subscribe(EVENTS)
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(_ws(base), subprotocols=[TRANSPORT_WS], proxy=None, additional_headers={"Origin": "https://evil.example"}):
                pass
        assert refused.value.response.status_code == 403
    finally:
        server.should_exit = True
        await task
