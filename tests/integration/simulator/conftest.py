"""A minimal in-test OCPP central system (1.6 + 2.0.1) built on the ``ocpp`` library, on 127.0.0.1 with an
ephemeral port. It accepts everything, records every CALL it receives and lets tests send CALLs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ocpp.v16
import ocpp.v201
import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import call_result as r16
from ocpp.v16.enums import Action as A16
from ocpp.v201 import call_result as r201
from ocpp.v201.enums import Action as A201
from websockets.asyncio.server import serve


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class CsmsState:
    received: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (charger, action, payload)
    connections: dict[str, Any] = field(default_factory=dict)
    boot_pending_first: set[str] = field(default_factory=set)
    blocked_tokens: set[str] = field(default_factory=set)
    tx_ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    auth_headers: dict[str, str | None] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def log(self, cid: str, action: str, payload: dict[str, Any]) -> None:
        self.received.append((cid, action, payload))
        self.changed.set()

    def of(self, cid: str, action: str) -> list[dict[str, Any]]:
        return [p for c, a, p in self.received if c == cid and a == action]

    async def wait(self, cid: str, action: str, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        async def _w() -> list[dict[str, Any]]:
            while len(self.of(cid, action)) < n:
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.05)
            return self.of(cid, action)
        return await asyncio.wait_for(_w(), timeout)


class Csms16(ocpp.v16.ChargePoint):
    state: CsmsState

    def _log(self, action: str, kw: dict[str, Any]) -> None:
        self.state.log(self.id, action, kw)

    @on(A16.boot_notification)
    def boot(self, **kw: Any) -> r16.BootNotification:
        self._log("BootNotification", kw)
        if self.id in self.state.boot_pending_first:
            self.state.boot_pending_first.discard(self.id)
            return r16.BootNotification(current_time=_now(), interval=1, status="Pending")
        return r16.BootNotification(current_time=_now(), interval=300, status="Accepted")

    @on(A16.heartbeat)
    def heartbeat(self, **kw: Any) -> r16.Heartbeat:
        self._log("Heartbeat", kw)
        return r16.Heartbeat(current_time=_now())

    @on(A16.status_notification)
    def status(self, **kw: Any) -> r16.StatusNotification:
        self._log("StatusNotification", kw)
        return r16.StatusNotification()

    @on(A16.authorize)
    def authorize(self, id_tag: str, **kw: Any) -> r16.Authorize:
        self._log("Authorize", {"id_tag": id_tag, **kw})
        ok = id_tag not in self.state.blocked_tokens
        return r16.Authorize(id_tag_info={"status": "Accepted" if ok else "Blocked"})

    @on(A16.start_transaction)
    def start_tx(self, **kw: Any) -> r16.StartTransaction:
        self._log("StartTransaction", kw)
        return r16.StartTransaction(transaction_id=next(self.state.tx_ids), id_tag_info={"status": "Accepted"})

    @on(A16.stop_transaction)
    def stop_tx(self, **kw: Any) -> r16.StopTransaction:
        self._log("StopTransaction", kw)
        return r16.StopTransaction(id_tag_info={"status": "Accepted"})

    @on(A16.meter_values)
    def meter_values(self, **kw: Any) -> r16.MeterValues:
        self._log("MeterValues", kw)
        return r16.MeterValues()


class Csms201(ocpp.v201.ChargePoint):
    state: CsmsState

    def _log(self, action: str, kw: dict[str, Any]) -> None:
        self.state.log(self.id, action, kw)

    @on(A201.boot_notification)
    def boot(self, **kw: Any) -> r201.BootNotification:
        self._log("BootNotification", kw)
        if self.id in self.state.boot_pending_first:
            self.state.boot_pending_first.discard(self.id)
            return r201.BootNotification(current_time=_now(), interval=1, status="Pending")
        return r201.BootNotification(current_time=_now(), interval=300, status="Accepted")

    @on(A201.heartbeat)
    def heartbeat(self, **kw: Any) -> r201.Heartbeat:
        self._log("Heartbeat", kw)
        return r201.Heartbeat(current_time=_now())

    @on(A201.status_notification)
    def status(self, **kw: Any) -> r201.StatusNotification:
        self._log("StatusNotification", kw)
        return r201.StatusNotification()

    @on(A201.authorize)
    def authorize(self, id_token: dict[str, Any], **kw: Any) -> r201.Authorize:
        self._log("Authorize", {"id_token": id_token, **kw})
        ok = id_token["id_token"] not in self.state.blocked_tokens
        return r201.Authorize(id_token_info={"status": "Accepted" if ok else "Blocked"})

    @on(A201.transaction_event)
    def tx_event(self, **kw: Any) -> r201.TransactionEvent:
        self._log("TransactionEvent", kw)
        if kw.get("id_token"):
            return r201.TransactionEvent(id_token_info={"status": "Accepted"})
        return r201.TransactionEvent()

    @on(A201.notify_ev_charging_needs)
    def needs(self, **kw: Any) -> r201.NotifyEVChargingNeeds:
        self._log("NotifyEVChargingNeeds", kw)
        return r201.NotifyEVChargingNeeds(status="Accepted")

    @on(A201.meter_values)
    def meter_values(self, **kw: Any) -> r201.MeterValues:
        self._log("MeterValues", kw)
        return r201.MeterValues()


@dataclass
class MiniCsms:
    url: str
    state: CsmsState

    async def call(self, charger_id: str, payload: Any, timeout: float = 5.0) -> Any:
        """Send a CALL to a connected charger (waits for it to be connected)."""
        async def _conn() -> Any:
            while charger_id not in self.state.connections:
                await asyncio.sleep(0.01)
            return self.state.connections[charger_id]
        cp = await asyncio.wait_for(_conn(), timeout)
        return await cp.call(payload, suppress=False)


@pytest.fixture
async def csms() -> AsyncIterator[MiniCsms]:
    state = CsmsState()

    async def handler(ws: Any) -> None:
        cid = ws.request.path.rstrip("/").split("/")[-1]
        state.auth_headers[cid] = ws.request.headers.get("Authorization")
        cls = Csms201 if ws.subprotocol == "ocpp2.0.1" else Csms16
        cp = cls(cid, ws)
        cp.state = state
        state.connections[cid] = cp
        try:
            await cp.start()
        except websockets.ConnectionClosed:
            pass
        finally:
            if state.connections.get(cid) is cp:
                del state.connections[cid]

    async with serve(handler, "127.0.0.1", 0, subprotocols=["ocpp2.0.1", "ocpp1.6"]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield MiniCsms(f"ws://127.0.0.1:{port}/ocpp", state)
