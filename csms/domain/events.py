"""Facts the core publishes after they are committed. Smart charging, billing and telemetry subscribe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .enums import ChargingState, ConnectorStatus, RateUnit
from .ids import EvseRef
from .model import ChargingNeeds, Transaction


@dataclass(frozen=True, slots=True)
class StationOnline:
    station_id: str
    online: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class StationReady:
    """The station may receive CSMS-initiated calls (booted and accepted, or reconnected)."""

    station_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StatusChanged:
    station_id: str
    evse: EvseRef | None
    status: ConnectorStatus
    charging_state: ChargingState | None
    at: datetime


@dataclass(frozen=True, slots=True)
class TransactionChanged:
    """A transaction started, was updated (meter values, charging state) or ended."""

    transaction: Transaction
    started: bool
    ended: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class ChargingNeedsChanged:
    needs: ChargingNeeds


@dataclass(frozen=True, slots=True)
class ExternalLimitChanged:
    station_id: str
    evse: EvseRef | None
    source: str
    limit: float | None
    unit: RateUnit | None
    at: datetime


@dataclass(frozen=True, slots=True)
class MeterSampled:
    """Station-level or transaction meter values (already stored)."""

    station_id: str
    evse: EvseRef | None
    power_w: float | None
    energy_wh: float | None
    at: datetime


@dataclass(frozen=True, slots=True)
class OverstayChanged:
    """Billing's overstay (idle fee) phase of a session changed.

    phase: "warning" (billing starts within the policy's warn_before), "started" (minutes are being
    billed), "ended" (unplugged, or no longer overstaying). `fee` is a decimal string in `currency`,
    so no consumer turns money into floats.
    """

    tx_key: str
    station_id: str
    evse_id: int
    phase: str
    minutes: int
    fee: str
    currency: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StationChanged:
    """An operator created, changed or removed a station's settings (services.stations)."""

    station_id: str
    change: str  # created | changed | deleted
    at: datetime


@dataclass(frozen=True, slots=True)
class IdTokenChanged:
    """An operator created, replaced or removed an id token (services.tokens)."""

    value: str
    deleted: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class GroupChanged:
    """An operator set a driver group's priority, or removed the group (priority None)."""

    name: str
    priority: float | None
    at: datetime


DomainEvent = (
    StationOnline | StationReady | StatusChanged | TransactionChanged | ChargingNeedsChanged
    | ExternalLimitChanged | MeterSampled | OverstayChanged | StationChanged | IdTokenChanged | GroupChanged
)
