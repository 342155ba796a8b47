"""Frozen values the store hands back that are records of what happened rather than live domain state:
status history, station notices, stored meter values, billing's per-session state, invoices, site load.

They used to travel as `dict[str, Any]` of column values (ARCHITECTURE.md "As built"): a renamed column
then broke a reader at run time, in a branch no test reached. As dataclasses, mypy and the contract suite
(tests/contract) hold every store (SQLite, PostgreSQL, the in-memory fake) to the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from .enums import ChargingState, ConnectorStatus, RegistrationStatus

#: A JSON object as stored (a notice's detail, an invoice line): free-form by nature, read-only here.
JsonObject = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class StationSettings:
    """What an operator or config.yaml sets about a station (not what the charger reports: StationInfo).

    Written whole: a change reads the settings, `dataclasses.replace`s the fields it changes, and saves."""

    site_id: str = "default"
    registration: RegistrationStatus = RegistrationStatus.ACCEPTED
    #: The registration was set through the API: config.yaml (re)seeding leaves it alone.
    registration_by_operator: bool = False
    password_hash: str | None = None  # None: no password set
    #: OCPP security profile 0-3 the charger must connect with; None: the server default.
    security_profile: int | None = None
    max_current_a: float = 32.0
    max_power_w: float | None = None  # None: max_current_a x voltage_v x phases
    min_current_a: float = 6.0
    phases: int = 3
    voltage_v: float = 230.0
    from_config: bool = False


@dataclass(frozen=True, slots=True)
class StationAccessRecord:
    """The handshake's one primary-key read (services.charging turns it into ports.StationAccess)."""

    password_hash: str | None
    security_profile: int | None
    registration: RegistrationStatus
    #: Its site (in memory with the rest: a connect's re-plan asks its site without a database read)
    site_id: str = "default"


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One StatusNotification as stored (evse_id None: the whole station)."""

    station_id: str
    evse_id: int | None
    connector_id: int | None
    status: ConnectorStatus
    charging_state: ChargingState | None
    error_code: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class StationEvent:
    """A notice from a station (DataTransfer, firmware, security event, NotifyEvent, charging limit)."""

    kind: str
    detail: JsonObject
    at: datetime


@dataclass(frozen=True, slots=True)
class StoredValue:
    """One stored sampled value of a transaction (SI unit of its measurand). `measurand` stays the stored
    word: a measurand this version does not know must still be listed, not dropped."""

    at: datetime
    measurand: str
    phase: str | None
    value: float
    context: str | None


@dataclass(frozen=True, slots=True)
class StationPower:
    """Site and maximum power (W) of a station: max_power_w if configured, else A x V x phases."""

    site_id: str
    max_power_w: float


@dataclass(frozen=True, slots=True)
class BillingSession:
    """What billing persists about one transaction's use of the bay (services.billing.state.SessionTrack
    is the live, mutable form)."""

    tx_key: str
    station_id: str
    evse_id: int
    site_id: str | None
    started_at: datetime
    ended_at: datetime | None = None
    drew_power: bool = False
    charging_finished_at: datetime | None = None
    low_power_since: datetime | None = None
    unplugged_at: datetime | None = None
    last_occupied_at: datetime | None = None
    stated_departure: datetime | None = None
    overstay_phase: str = "ok"  # ok | warning | overstaying (the last phase announced)
    finalised: bool = False
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    """A stored invoice: amounts are exact decimal strings, as printed; `data` is Invoice.to_dict()."""

    tx_key: str
    station_id: str
    charger_tx_id: str
    evse_id: int
    site_id: str | None
    id_token: str | None
    group: str | None
    currency: str
    session_start: datetime
    session_end: datetime
    finalised_at: datetime
    reason: str  # unplugged | timeout
    energy_wh: str
    subtotal: str
    tax: str
    total: str
    overstay_minutes: int
    overstay_fee: str
    lines: tuple[JsonObject, ...]
    anomalies: tuple[JsonObject, ...]
    data: JsonObject


@dataclass(frozen=True, slots=True)
class SiteLoadBucket:
    """Mean charging load of a site over [start, end), with the grid limit in force then (W)."""

    site_id: str
    start: datetime
    end: datetime
    mean_power_w: float
    limit_w: float | None
