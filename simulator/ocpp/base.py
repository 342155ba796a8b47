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


@dataclass(frozen=True, slots=True)
class MeterSample:
    at: datetime
    energy_wh: float
    power_w: float
    current_a: float
    soc_pct: float | None
    phases: int


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
        done, _ = await asyncio.wait({task, link.closed}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        raise ChargerOffline(f"{self.charger.config.charger_id}: connection lost during {type(payload).__name__}")

    def now(self) -> datetime:
        return self.charger.clock.now()
