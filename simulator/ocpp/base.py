"""Shared plumbing for the 1.6 and 2.0.1 client adapters: the link (an ``ocpp`` ChargePoint that records
every frame), calls that fail fast when the connection drops, timestamps and meter samples."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.charger import Charger


class ChargerOffline(ConnectionError):
    """The charger has no (booted) connection to the CSMS."""


def ts(dt: datetime) -> str:
    """OCPP timestamp: UTC, millisecond precision, ``Z`` designator (e.g. 2024-05-01T12:00:00.000Z)."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


PHASE_NAMES = ("L1", "L2", "L3")


@dataclass(frozen=True, slots=True)
class MeterSample:
    at: datetime
    energy_wh: float
    power_w: float
    current_a: float          # per phase the car draws on
    soc_pct: float | None
    phases: int               # phases in use: min(station phases, EV phases)
    station_phases: int = 3   # phases the EVSE is wired to (its meter measures each)

    def phase_currents(self) -> list[tuple[str, float]]:
        """Current.Import per phase, as a real EVSE meter reports it: the car's current on the phases it
        draws on (L1 first), 0 A on the others. This is how a CSMS learns that a one-phase car on a
        three-phase EVSE loads one phase only (OCPP 1.6 has no other way to say it)."""
        n = max(1, min(self.station_phases, len(PHASE_NAMES)))
        return [(PHASE_NAMES[i], self.current_a if i < self.phases else 0.0) for i in range(n)]


class RecordingLinkMixin:
    """Mixed into the ``ocpp`` ChargePoint subclasses: records frames and signals connection loss."""

    charger: Charger
    closed: asyncio.Future[None]

    def _init_recording(self, charger: Charger) -> None:
        self.charger = charger
        self.closed = asyncio.get_running_loop().create_future()

    async def _send(self, message: str) -> None:  # type: ignore[override]
        self.charger.recorder.frame(self.charger.clock.now(), "out", message)
        await super()._send(message)  # type: ignore[misc]

    async def route_message(self, raw_msg: str) -> None:  # type: ignore[override]
        self.charger.recorder.frame(self.charger.clock.now(), "in", raw_msg)
        await super().route_message(raw_msg)  # type: ignore[misc]

    async def serve(self) -> None:
        """Read frames until the connection closes (never raises ConnectionClosed)."""
        try:
            await self.start()  # type: ignore[attr-defined]
        except Exception as exc:  # websockets ConnectionClosed* and friends
            self.charger.note_disconnect(exc)
        finally:
            if not self.closed.done():
                self.closed.set_result(None)


def _consume(task: asyncio.Future[Any]) -> None:
    """Done callback: mark a task's exception as retrieved (the caller reports it, or nobody is waiting)."""
    if not task.cancelled():
        task.exception()


class AdapterBase:
    """Common behaviour of both adapters. Subclasses set ``subprotocol`` and ``_link_cls``."""

    subprotocol: str = ""
    version: str = ""
    _link_cls: type

    def __init__(self, charger: Charger) -> None:
        self.charger = charger
        self.link: Any = None

    def attach(self, ws: Any) -> Any:
        link = self._link_cls(self.charger.config.charger_id, ws,
                              response_timeout=self.charger.config.response_timeout_s)
        link._init_recording(self.charger)
        link.adapter = self
        self.link = link
        return link

    async def call(self, payload: Any) -> Any:
        """Send a CALL and return its result; raise on CALLERROR, timeout or connection loss."""
        link = self.link
        if link is None or link.closed.done():
            raise ChargerOffline(f"{self.charger.config.charger_id} is offline")
        task = asyncio.ensure_future(link.call(payload, suppress=False))
        # Whoever stops waiting for it (connection lost, or this coroutine cancelled by Charger.close), the
        # inner call's outcome is consumed here: else a send that fails on the closed socket afterwards is
        # logged by asyncio as "Task exception was never retrieved".
        task.add_done_callback(_consume)
        try:
            done, _ = await asyncio.wait({task, link.closed}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.cancel()
        raise ChargerOffline(f"{self.charger.config.charger_id}: connection lost during {type(payload).__name__}")

    def now(self) -> datetime:
        return self.charger.clock.now()
