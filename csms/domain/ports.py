"""Ports: what the core needs from the outside and offers to adapters. Protocols only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .commands import Command
from .enums import ChargingState, ConnectorStatus, RateUnit, RegistrationStatus
from .ids import EvseRef
from .model import (
    AuthorizationResult,
    Capabilities,
    ChargingNeeds,
    ChargingProfile,
    CommandResult,
    MeterSample,
    StationInfo,
    Transaction,
    TxEvent,
    TxReply,
)


@dataclass(frozen=True, slots=True)
class BootReply:
    status: RegistrationStatus
    interval_s: int


@dataclass(frozen=True, slots=True)
class StationAccess:
    """What the handshake needs to know about an identity."""

    known: bool
    password_hash: str | None = None  # None: no password set (refused unless the profile needs none)
    #: OCPP security profile the connection must meet (docs/ocpp.md): 0 none (explicitly insecure),
    #: 1 Basic auth, 2 TLS + Basic auth, 3 TLS + client certificate whose subject CN is the identity.
    security_profile: int = 1
    #: Until Accepted, the connection answers everything but BootNotification with SecurityError.
    registration: RegistrationStatus = RegistrationStatus.ACCEPTED


class StationDirectory(Protocol):
    """Looked up by the OCPP server at the websocket handshake, before the upgrade."""

    async def access(self, station_id: str) -> StationAccess | None:
        """None: unknown identity (refused unless unknown chargers are allowed)."""
        ...


class ChargerEvents(Protocol):
    """Everything a charger can tell the CSMS, version-neutral. Implemented by services.charging."""

    async def connected(self, station_id: str, protocol: str) -> None: ...
    async def disconnected(self, station_id: str) -> None: ...
    async def booted(self, station_id: str, info: StationInfo, reason: str | None) -> BootReply: ...
    async def heartbeat(self, station_id: str) -> datetime: ...
    async def status_changed(
        self, station_id: str, evse: EvseRef | None, status: ConnectorStatus, at: datetime,
        error_code: str | None, charging_state: ChargingState | None = None,
    ) -> None: ...
    async def authorize(self, station_id: str, id_token: str) -> AuthorizationResult: ...
    async def transaction(self, event: TxEvent) -> TxReply: ...
    async def live_cost(self, tx_key: str, tx: Transaction | None = None) -> float | None:
        """The session's cost if it ended now, incl. tax (2.0.1 totalCost; None when unknown).
        `tx`: the transaction as the message just committed it (TxReply.transaction), if known."""
        ...
    async def meter_values(self, station_id: str, evse: EvseRef | None, charger_tx_id: str | None,
                           samples: tuple[MeterSample, ...]) -> None: ...
    async def charging_needs(self, needs: ChargingNeeds) -> None: ...
    async def ready(self, station_id: str) -> None:
        """Called (as a task) once the station may receive CSMS-initiated calls: after the BootNotification
        answer Accepted has been sent, or on connect when the station was already Accepted before."""
        ...
    async def charging_limit(self, station_id: str, evse: EvseRef | None, source: str,
                             limit: float | None, unit: RateUnit | None) -> None:
        """2.0.1 NotifyChargingLimit (limit = first period of the schedule) / ClearedChargingLimit (None)."""
        ...
    async def notice(self, station_id: str, kind: str, detail: dict[str, object]) -> None: ...


class ChargerGateway(Protocol):
    """Version-neutral CSMS-initiated commands: `send(station, command) -> CommandResult`, which never raises
    for a charger's refusal, absence or silence."""

    def is_connected(self, station_id: str) -> bool: ...
    def set_registration(self, station_id: str, status: RegistrationStatus) -> bool:
        """The operator changed the registration: the live connection applies it at once (True: connected)."""
        ...
    def capabilities(self, station_id: str) -> Capabilities:
        """Last discovered capabilities of the station (Capabilities() when not yet known)."""
        ...
    async def send(self, station_id: str, command: Command) -> CommandResult:
        """Send a command (csms.domain.commands: RemoteStart, SetChargingProfile, InstallCertificate, ...) in the
        station's OCPP version; a command the version cannot express is NotSupported and never sent."""
        ...


class TelemetrySink(Protocol):
    """Outbound telemetry for services (implemented by csms.telemetry.MqttTelemetry). Never blocks, never raises."""

    def site_load(self, site_id: str, load_w: float, limit_w: float | None, at: datetime) -> None: ...
    def site_plan(self, site_id: str, plan: Mapping[str, object], at: datetime) -> None: ...
    def session_event(self, tx_key: str, kind: str, detail: Mapping[str, object], at: datetime) -> None: ...
