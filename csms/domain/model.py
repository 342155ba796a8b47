"""Frozen domain values: Station -> EVSE -> Connector, Transaction, MeterSample, IdToken, ChargingNeeds.

These are what services, the store and the API exchange. Each OCPP version's adapter builds them from
its own payloads, so a 1.6 and a 2.0.1 charger doing the same things produce the same records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .enums import (
    AuthorizationStatus,
    ChargingState,
    ConnectorStatus,
    Measurand,
    ProfilePurpose,
    ProtocolVersion,
    RateUnit,
    RegistrationStatus,
    TxEventKind,
)
from .ids import EvseRef, StationId, TransactionKey


@dataclass(frozen=True, slots=True)
class StationInfo:
    """What a charger tells about itself at boot."""

    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None


@dataclass(frozen=True, slots=True)
class Station:
    id: StationId
    site_id: str
    registration: RegistrationStatus
    info: StationInfo | None = None
    protocol: ProtocolVersion | None = None
    online: bool = False
    last_seen: datetime | None = None
    max_current_a: float = 32.0
    phases: int = 3
    voltage_v: float = 230.0


@dataclass(frozen=True, slots=True)
class ConnectorState:
    station_id: StationId
    evse: EvseRef
    status: ConnectorStatus
    at: datetime
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class IdToken:
    value: str
    type: str = "ISO14443"  # 2.0.1 IdTokenEnumType; 1.6 idTags are plain strings
    status: AuthorizationStatus = AuthorizationStatus.ACCEPTED
    expires_at: datetime | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationResult:
    status: AuthorizationStatus
    expires_at: datetime | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class SampledValue:
    """One measured value, already converted to the SI unit its measurand names (Wh, W, A, V, %)."""

    measurand: Measurand
    value: float
    phase: str | None = None
    context: str | None = None  # Sample.Periodic, Transaction.Begin, ...
    location: str | None = None


@dataclass(frozen=True, slots=True)
class MeterSample:
    """Values sampled at one instant on one EVSE (a 1.6 MeterValue / a 2.0.1 MeterValueType)."""

    at: datetime
    values: tuple[SampledValue, ...]

    def phases_drawing(self, min_a: float = 1.0) -> int | None:
        """How many phases carry more than `min_a` of Current.Import, from per-phase values (L1, L2, L3,
        also L1-N ...); None without per-phase current or when no phase carries current (a car that draws
        nothing shows no phases)."""
        per_phase = {v.phase[:2]: v.value for v in self.values
                     if v.measurand is Measurand.CURRENT_IMPORT_A and v.location in (None, "Outlet")
                     and v.phase is not None and v.phase[:2] in ("L1", "L2", "L3")}
        n = sum(1 for a in per_phase.values() if a > min_a)
        return n or None

    def get(self, measurand: Measurand, phase: str | None = None) -> float | None:
        """The value of a measurand (the phase-less one if present, else the sum over phases for W/A/Wh)."""
        # SoC is the car's: chargers report it at location EV (the spec's default for it), which a filter on
        # the outlet dropped, so SoC was null everywhere although every sample carried it.
        where = (None, "Outlet", "EV") if measurand is Measurand.SOC_PCT else (None, "Outlet")
        matches = [v for v in self.values if v.measurand is measurand and v.location in where]
        exact = [v.value for v in matches if v.phase == phase]
        if exact:
            return exact[0]
        if phase is None and matches and measurand is not Measurand.SOC_PCT:
            per_phase = [v.value for v in matches if v.phase in ("L1", "L2", "L3")]
            if per_phase and measurand is not Measurand.VOLTAGE_V:
                return sum(per_phase)
        return None


@dataclass(frozen=True, slots=True)
class TxEvent:
    """A version-neutral transaction message.

    1.6 StartTransaction/StopTransaction/MeterValues(transactionId) and 2.0.1 TransactionEvent all map
    onto this. `charger_tx_id` is the charger's id for 2.0.1; for 1.6 StartTransaction it is None (the
    CSMS assigns one) and for later 1.6 messages it is the id we assigned.
    `seq_no` is 2.0.1's seqNo; 1.6 messages get a synthetic one (0 for start, None for meter values and
    a sentinel for stop) so duplicates are recognised the same way.
    """

    kind: TxEventKind
    station_id: StationId
    at: datetime
    charger_tx_id: str | None
    evse: EvseRef | None = None
    id_token: str | None = None
    seq_no: int | None = None
    trigger: str | None = None
    charging_state: ChargingState | None = None
    stop_reason: str | None = None
    meter_start_wh: float | None = None
    meter_stop_wh: float | None = None
    samples: tuple[MeterSample, ...] = ()
    offline: bool = False
    reservation_id: int | None = None
    remote_start_id: int | None = None
    phases_used: int | None = None  # 2.0.1 numberOfPhasesUsed


@dataclass(frozen=True, slots=True)
class TxReply:
    """What the CSMS answers to a transaction message."""

    transaction_key: TransactionKey | None
    charger_tx_id: str | None  # the id the charger must use (1.6 transactionId)
    authorization: AuthorizationResult | None = None
    total_cost: float | None = None  # cost if it ended now (2.0.1 totalCost; filled by that adapter)
    #: The transaction as committed by this message: the 2.0.1 adapter hands it back to `live_cost`,
    #: which then need not read it again in a transaction of its own (issue 10 profile).
    transaction: Transaction | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Transaction:
    key: TransactionKey
    station_id: StationId
    charger_tx_id: str
    evse: EvseRef
    id_token: str | None
    started_at: datetime
    ended_at: datetime | None = None
    meter_start_wh: float | None = None
    meter_stop_wh: float | None = None
    energy_wh: float = 0.0
    power_w: float | None = None
    soc_pct: float | None = None
    charging_state: ChargingState | None = None
    stop_reason: str | None = None
    last_seq_no: int | None = None
    group: str | None = None
    #: Phases the car draws on: per-phase Current.Import (phases above 1 A) or 2.0.1 numberOfPhasesUsed,
    #: the latest that said; None until known.
    ev_phases: int | None = None

    @property
    def active(self) -> bool:
        return self.ended_at is None


#: Needs received this long before a transaction started still belong to it: ISO 15118 EVs state them while the
#: transaction opens, and the charger's clock (transaction start) may run ahead of ours (needs received). The
#: planner's snapshot and the store's stated-departure history pair needs with sessions the same way.
NEEDS_BEFORE_START = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class ChargingNeeds:
    """What the EV or driver says it needs: the load balancer plans with it."""

    station_id: StationId
    evse: EvseRef
    received_at: datetime
    energy_amount_wh: float | None = None
    departure_time: datetime | None = None
    ev_max_current_a: float | None = None
    ev_min_current_a: float | None = None
    ev_max_power_w: float | None = None
    source: str = "ev"  # ev (NotifyEVChargingNeeds) | driver (API) | booking
    ev_phases: int | None = None  # 2.0.1 requestedEnergyTransfer AC_single_phase/two/three (None: DC, unknown)


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    start_offset_s: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """A version-neutral charging profile; adapters render it as 1.6 csChargingProfiles or 2.0.1 chargingProfile."""

    profile_id: int
    purpose: ProfilePurpose
    stack_level: int
    unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    start: datetime | None = None  # absolute schedule start; None means relative to the transaction start
    duration_s: int | None = None
    charger_tx_id: str | None = None  # TxProfile only
    valid_from: datetime | None = None
    valid_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a station supports for smart charging, discovered once it is ready (GetConfiguration /
    GetVariables SmartChargingCtrlr). The default is what every smart-charging station supports: amps."""

    rate_units: frozenset[RateUnit] = frozenset({RateUnit.AMPS})
    smart_charging: bool = True
    max_schedule_periods: int | None = None
    max_stack_level: int | None = None


@dataclass(frozen=True, slots=True)
class CommandResult:
    status: str  # a CommandStatus value, or the charger's own word when it has a finer one
    data: dict[str, object] = field(default_factory=dict)
    detail: str | None = None

    @property
    def accepted(self) -> bool:
        return str(self.status) == "Accepted"



@dataclass(frozen=True, slots=True)
class Booking:
    """A driver's reservation of an EVSE for [start, end), with the energy wanted and what was guaranteed.

    `id` doubles as the OCPP reservationId. Status: Confirmed -> Reserved (ReserveNow accepted) ->
    Active (the driver's session started) -> Completed; or Cancelled / Expired (no-show).
    """

    id: int
    site_id: str
    station_id: str
    evse_id: int
    id_token: str
    start: datetime
    end: datetime
    energy_wh: float | None
    guaranteed_energy_wh: float | None
    status: str
    created_at: datetime
    transaction_key: str | None = None

    @property
    def open(self) -> bool:
        return self.status in ("Confirmed", "Reserved", "Active")
