"""In-test fakes for the OCPP adapter: a recording ChargerEvents, a dict StationDirectory, client helpers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from csms.domain.enums import AuthorizationStatus, RegistrationStatus
from csms.domain.ids import EvseRef, TransactionKey
from csms.domain.model import AuthorizationResult, ChargingNeeds, StationInfo, TxEvent, TxReply
from csms.domain.ports import BootReply, StationAccess

NOW = datetime(2026, 11, 27, 5, 15, 13, 123456, tzinfo=UTC)


@dataclass
class RecordingEvents:
    """Implements ChargerEvents; records every call as (name, args) and answers from its settings."""

    boot_status: RegistrationStatus = RegistrationStatus.ACCEPTED
    interval_s: int = 300
    now: datetime = NOW
    tokens: dict[str, AuthorizationStatus] = field(default_factory=lambda: {"BAD": AuthorizationStatus.BLOCKED})
    total_cost: float | None = None
    #: method name -> exception to raise from it
    fail: dict[str, BaseException] = field(default_factory=dict)
    #: awaited inside ready() / heartbeat(); tests put gateway calls here
    on_ready: Callable[[str], Awaitable[Any]] | None = None
    on_heartbeat: Callable[[str], Awaitable[Any]] | None = None
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    _next_tx: int = 100
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        self._changed.set()
        if name in self.fail:
            raise self.fail[name]

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [a for n, a in self.calls if n == name]

    async def wait_for(self, name: str, count: int = 1, timeout: float = 3.0) -> list[tuple[Any, ...]]:
        async def _wait() -> None:
            while len(self.named(name)) < count:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(_wait(), timeout)
        return self.named(name)

    # --- ChargerEvents ---------------------------------------------------------------------------
    async def connected(self, station_id: str, protocol: str) -> None:
        self._record("connected", station_id, protocol)

    async def disconnected(self, station_id: str) -> None:
        self._record("disconnected", station_id)

    async def booted(self, station_id: str, info: StationInfo, reason: str | None) -> BootReply:
        self._record("booted", station_id, info, reason)
        return BootReply(self.boot_status, self.interval_s)

    async def heartbeat(self, station_id: str) -> datetime:
        self._record("heartbeat", station_id)
        if self.on_heartbeat is not None:
            await self.on_heartbeat(station_id)
        return self.now

    async def status_changed(self, station_id: str, evse: EvseRef | None, status: Any, at: datetime,
                             error_code: str | None, charging_state: Any = None) -> None:
        self._record("status_changed", station_id, evse, status, at, error_code, charging_state)

    async def authorize(self, station_id: str, id_token: str) -> AuthorizationResult:
        self._record("authorize", station_id, id_token)
        return AuthorizationResult(self.tokens.get(id_token, AuthorizationStatus.ACCEPTED))

    async def transaction(self, event: TxEvent) -> TxReply:
        self._record("transaction", event)
        tx_id = event.charger_tx_id
        if tx_id is None:
            self._next_tx += 1
            tx_id = str(self._next_tx)
        auth = None
        if event.id_token:
            auth = AuthorizationResult(self.tokens.get(event.id_token, AuthorizationStatus.ACCEPTED))
        return TxReply(TransactionKey(f"{event.station_id}/{tx_id}"), tx_id, auth)  # the cost: live_cost

    async def live_cost(self, tx_key: str, tx: Any = None) -> float | None:
        self._record("live_cost", tx_key)
        return self.total_cost

    async def meter_values(self, station_id: str, evse: EvseRef | None, charger_tx_id: str | None,
                           samples: Any) -> None:
        self._record("meter_values", station_id, evse, charger_tx_id, samples)

    async def charging_needs(self, needs: ChargingNeeds) -> None:
        self._record("charging_needs", needs)

    async def ready(self, station_id: str) -> None:
        self._record("ready", station_id)
        if self.on_ready is not None:
            await self.on_ready(station_id)

    async def charging_limit(self, station_id: str, evse: EvseRef | None, source: str, limit: float | None,
                             unit: Any) -> None:
        self._record("charging_limit", station_id, evse, source, limit, unit)

    async def notice(self, station_id: str, kind: str, detail: dict[str, object]) -> None:
        self._record("notice", station_id, kind, detail)


@dataclass
class FakeDirectory:
    """Implements StationDirectory from a dict; unknown ids -> None."""

    stations: dict[str, StationAccess] = field(default_factory=dict)
    lookups: int = 0

    async def access(self, station_id: str) -> StationAccess | None:
        self.lookups += 1
        return self.stations.get(station_id)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def open_ws(port: int, ident: str, protocols: list[str] | None = ("ocpp1.6",),  # type: ignore[assignment]
                  headers: dict[str, str] | None = None, prefix: str = "/ocpp", **kw: Any) -> ClientConnection:
    scheme = "wss" if kw.get("ssl") is not None else "ws"  # ssl=<SSLContext>: the TLS listener's port
    return await connect(f"{scheme}://127.0.0.1:{port}{prefix}/{ident}",
                         subprotocols=list(protocols) if protocols else None,  # type: ignore[arg-type]
                         additional_headers=headers, open_timeout=3, **kw)
