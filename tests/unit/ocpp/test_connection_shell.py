"""The asyncio shell around the OCPP-J core: requests queue one at a time, time out on the loop's timer, end
OFFLINE when the connection closes; a caller that gives up before its turn sends nothing. An in-memory
websocket stands in for the socket (the e2e suites run the real one)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedOK

from csms.domain.clock import FakeClock
from csms.domain.enums import CommandStatus
from csms.ocpp.connection import CommandFailed
from csms.ocpp.v16.handlers import V16ChargePoint

NOW = datetime(2026, 1, 1, tzinfo=UTC)
_CLOSE = object()


class QueueWs:
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Any] = asyncio.Queue()
        self.sent: list[Any] = []

    async def recv(self) -> str:
        item = await self.incoming.get()
        if item is _CLOSE:
            raise ConnectionClosedOK(None, None)
        return item  # type: ignore[no-any-return]

    async def send(self, message: str) -> None:
        self.sent.append(json.loads(message))


class Events:
    def __getattr__(self, name: str) -> Any:
        async def _noop(*a: Any, **k: Any) -> None:
            return None
        return _noop


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
async def conn_ws() -> Any:
    ws = QueueWs()
    conn = V16ChargePoint("CP", ws, events=Events(), clock=FakeClock(NOW), response_timeout_s=0.2)
    reader = asyncio.create_task(conn.start())
    yield conn, ws
    ws.incoming.put_nowait(_CLOSE)
    await asyncio.wait_for(reader, 2)


async def test_one_call_at_a_time_and_a_cancelled_one_is_never_sent(conn_ws: Any) -> None:
    conn, ws = conn_ws
    first = asyncio.create_task(conn.request("Reset", {"type": "Soft"}))
    second = asyncio.create_task(conn.request("ClearCache", {}))
    await settle()
    assert [f[2] for f in ws.sent] == ["Reset"]  # ClearCache waits for Reset's answer
    second.cancel()
    await settle()
    ws.incoming.put_nowait(json.dumps([3, ws.sent[0][1], {"status": "Accepted"}]))
    assert await asyncio.wait_for(first, 2) == {"status": "Accepted"}
    await settle()
    assert [f[2] for f in ws.sent] == ["Reset"]


async def test_a_silent_charger_times_out_and_the_next_call_goes_out(conn_ws: Any) -> None:
    conn, ws = conn_ws
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    first = asyncio.create_task(conn.request("Reset", {"type": "Soft"}))
    second = asyncio.create_task(conn.request("ClearCache", {}))
    with pytest.raises(CommandFailed) as e:
        await asyncio.wait_for(first, 2)
    assert e.value.result.status == CommandStatus.TIMEOUT and loop.time() - t0 >= 0.2
    await settle()
    assert [f[2] for f in ws.sent] == ["Reset", "ClearCache"]  # released by the timeout
    ws.incoming.put_nowait(json.dumps([4, ws.sent[1][1], "NotSupported", "no", {}]))
    with pytest.raises(CommandFailed) as e:
        await asyncio.wait_for(second, 2)
    assert e.value.result.status == CommandStatus.ERROR and e.value.result.detail == "NotSupported: no"


async def test_close_ends_sent_and_queued_requests_offline() -> None:
    ws = QueueWs()
    conn = V16ChargePoint("CP", ws, events=Events(), clock=FakeClock(NOW), response_timeout_s=30)
    reader = asyncio.create_task(conn.start())
    calls = [asyncio.create_task(conn.request("Reset", {"type": "Soft"})) for _ in range(2)]
    await settle()
    ws.incoming.put_nowait(_CLOSE)
    await asyncio.wait_for(reader, 2)
    for c in calls:
        with pytest.raises(CommandFailed) as e:
            await asyncio.wait_for(c, 2)
        assert e.value.result.status == CommandStatus.OFFLINE
    with pytest.raises(CommandFailed) as e:
        await conn.request("Reset", {"type": "Soft"})
    assert e.value.result.status == CommandStatus.OFFLINE


async def test_a_handler_may_await_a_call_to_its_own_charger(conn_ws: Any) -> None:
    """The reader never awaits a handler: the answer to a CALL made from inside one is still read."""
    conn, ws = conn_ws
    got: list[Any] = []

    async def heartbeat(station_id: str) -> datetime:
        got.append(await conn.request("ClearCache", {}))
        return NOW

    conn.events = type("E", (Events,), {"heartbeat": staticmethod(heartbeat)})()
    ws.incoming.put_nowait('[2,"h1","Heartbeat",{}]')
    await settle()
    assert ws.sent[-1][2] == "ClearCache"
    ws.incoming.put_nowait(json.dumps([3, ws.sent[-1][1], {"status": "Accepted"}]))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if ws.sent[-1][:2] == [3, "h1"]:
            break
    assert got == [{"status": "Accepted"}] and ws.sent[-1][:2] == [3, "h1"]
