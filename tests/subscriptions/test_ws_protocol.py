"""graphql_api.live.ws_protocol: uvicorn's WebSocket protocol with less state per open connection. The whole
WebSocket suite runs on it (tests.api.conftest.start_server and `hitl serve` use it); here: what it no longer
keeps, and the two small replacements for asyncio.Queue and asyncio.Event."""

import asyncio
import gc

import pytest
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request as WebSocketsRequest

from graphql_api.live.ws_protocol import Flag, LeanWebSocketProtocol, Mailbox
from tests.support.server import VIEWER, submit
from tests.support.waiting import subscriptions_open
from tests.support.wsclient import EVENTS, connect


async def test_an_open_connection_keeps_no_handshake_and_still_serves(api):
    async with connect(api.base, token=VIEWER) as client:
        await client.subscribe(EVENTS)
        await subscriptions_open(api.base, 1)
        [protocol] = [o for o in gc.get_objects() if issubclass(type(o), WebSocketsSansIOProtocol) and not o.disconnected]
        assert type(protocol) is LeanWebSocketProtocol
        assert protocol.request is None and protocol.response is None
        kept_by_the_parser = protocol.conn.parser.gi_frame.f_locals["request"]  # websockets' generator local
        assert isinstance(kept_by_the_parser, WebSocketsRequest) and not kept_by_the_parser.headers
        assert isinstance(protocol.queue, Mailbox) and isinstance(protocol.writable, Flag)
        await submit(api, 1)
        assert (await client.data())["patchEvents"]["seq"] == 1


async def test_mailbox_hands_items_out_in_order_and_wakes_a_waiting_reader():
    mailbox = Mailbox()
    mailbox.put_nowait(1)
    mailbox.put_nowait(2)
    assert [await mailbox.get(), await mailbox.get()] == [1, 2]
    assert mailbox.empty()
    reader = asyncio.create_task(mailbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    mailbox.put_nowait(3)
    assert await asyncio.wait_for(reader, 1) == 3


async def test_mailbox_gives_each_of_two_readers_one_item():
    mailbox = Mailbox()
    readers = [asyncio.create_task(mailbox.get()) for _ in range(2)]
    await asyncio.sleep(0)
    mailbox.put_nowait("a")
    mailbox.put_nowait("b")
    assert sorted(await asyncio.wait_for(asyncio.gather(*readers), 1)) == ["a", "b"]


async def test_a_reader_cancelled_after_its_wake_up_passes_the_item_on():
    mailbox = Mailbox()
    first, second = asyncio.create_task(mailbox.get()), asyncio.create_task(mailbox.get())
    await asyncio.sleep(0)
    mailbox.put_nowait("item")  # wakes `first`, which is cancelled before it runs
    first.cancel()
    assert await asyncio.wait_for(second, 1) == "item"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_flag_waits_until_set_and_wakes_every_waiter():
    flag = Flag()
    flag.set()
    assert await asyncio.wait_for(flag.wait(), 1)
    flag.clear()
    assert not flag.is_set()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True] * 3
