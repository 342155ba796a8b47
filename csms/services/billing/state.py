"""Pure parts of the billing service: per-session occupancy tracking, site load buckets, occupancy spans,
and stored samples -> meter readings. No I/O, no clock reads: every instant is a parameter.

A session's life as billing sees it (docs/billing.md, "Service"):

    started ──EV draws──► charging ──EV stops drawing──► finished ──unplug──► unplugged
                 ▲                         │                          (and transaction ended) ─► invoice
                 └──── resumes (only before the overstay has started) ┘

"EV stops drawing" is, first seen of: a charging state SuspendedEV / EVConnected / Idle (1.6 status
words or 2.0.1 chargingState) after the EV has drawn power; power below a threshold for a confirmation
time while the charger still says Charging (SuspendedEVSE, a pause the CSMS asked for, never counts);
the transaction ending while the EV is still plugged in.
A CSMS pause (SuspendedEVSE) counts only once the EV's stated energy need is delivered.
"Unplug" is the connector reported Available, or a transaction ended with stop reason EVDisconnected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from csms.billing import MeterReading
from csms.domain.enums import ChargingState, ConnectorStatus, Measurand
from csms.domain.model import MeterSample, SampledValue, Transaction
from csms.domain.records import BillingSession, StatusChange, StoredValue

NOT_DRAWING = frozenset({ChargingState.SUSPENDED_EV, ChargingState.EV_CONNECTED, ChargingState.IDLE})
#: Stop reasons (1.6 Reason, 2.0.1 stoppedReason) that are the driver's or the car's doing: a transaction
#: ended so, still plugged in, makes the car "finished" (idle time from then on is the driver's). Any other
#: reason (Remote: an operator; faults, resets, power loss, emergency stop, DeAuthorized, Other, ...) does
#: not; a missing reason is 1.6's default, Local. docs/billing.md, "Overstay is the driver's".
DRIVER_STOP_REASONS = frozenset({None, "Local", "EVDisconnected", "StoppedByEV", "SOCLimitReached",
                                 "EnergyLimitReached", "TimeLimitReached"})
#: Connector states that take the bay out of service: not the driver's doing.
OUT_OF_SERVICE = frozenset({ConnectorStatus.FAULTED, ConnectorStatus.UNAVAILABLE})
BUSY_STATUSES = frozenset({ConnectorStatus.OCCUPIED.value, ConnectorStatus.RESERVED.value})
OVERSTAYING = "overstaying"


@dataclass
class SessionTrack:
    """What billing knows about one transaction's use of the bay. Persisted as billing_sessions."""

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
    # Not persisted (rebuilt from the transaction and the stored charging needs):
    energy_need_wh: float | None = field(default=None, metadata={"persist": False})
    delivered_wh: float = field(default=0.0, metadata={"persist": False})
    # Rebuilt from the connector status history at start (not persisted):
    #: A fault or an unavailable connector interrupted charging: until the car draws again, nothing that
    #: follows (not drawing, the end) makes it "finished".
    held: bool = field(default=False, metadata={"persist": False})
    #: The bay went out of service after the car was done: overstay counts up to here, not to the unplug.
    overstay_counted_until: datetime | None = field(default=None, metadata={"persist": False})

    @classmethod
    def for_tx(cls, tx: Transaction, site_id: str | None) -> SessionTrack:
        return cls(tx.key, tx.station_id, tx.evse.evse_id, site_id, tx.started_at)

    @classmethod
    def from_record(cls, r: BillingSession) -> SessionTrack:
        return cls(**{name: getattr(r, name) for name in _PERSISTED})

    def to_fields(self) -> dict[str, Any]:
        """The persisted fields (compared with what was last saved: services.billing.service._same_state)."""
        return {name: getattr(self, name) for name in _PERSISTED}

    def to_record(self, updated_at: datetime, *, finalised: bool | None = None) -> BillingSession:
        r = BillingSession(**self.to_fields(), updated_at=updated_at)
        return r if finalised is None else replace(r, finalised=finalised)

    def need_met(self) -> bool:
        """The stated energy need is delivered (95 %: plans are made in slots, not to the watt-hour).
        A CSMS pause (SuspendedEVSE) then means charging is over, not load management."""
        return self.energy_need_wh is not None and self.delivered_wh >= 0.95 * self.energy_need_wh

    @property
    def overstaying(self) -> bool:
        return self.overstay_phase == OVERSTAYING

    # --- what the EV does ---------------------------------------------------------------------------
    def drawing(self) -> None:
        self.drew_power = True
        self.held = False
        self.low_power_since = None
        # A car that resumes before the overstay started was not full; once billing minutes, a top-up
        # by the car's battery management does not reset the meter.
        if self.charging_finished_at is not None and not self.overstaying and self.ended_at is None:
            self.charging_finished_at = None

    def not_drawing(self, at: datetime) -> None:
        self.low_power_since = None
        if self.drew_power and self.charging_finished_at is None and not self.held:
            self.charging_finished_at = at

    def on_state(self, state: ChargingState | None, at: datetime) -> None:
        if state is ChargingState.CHARGING:
            self.drawing()
        elif state in NOT_DRAWING:
            self.not_drawing(at)
        elif state is ChargingState.SUSPENDED_EVSE:
            if self.need_met():
                self.not_drawing(at)
            else:
                self.low_power_since = None  # paused by load management: never the EV being full

    def on_reading(self, state: ChargingState | None, power_w: float | None, at: datetime, threshold_w: float,
                   confirm: timedelta) -> None:
        """A transaction update: the power decides while the charger says Charging (or nothing), since
        some chargers never leave Charging when the EV is full; otherwise the reported state does."""
        if power_w is None or threshold_w <= 0 or state not in (None, ChargingState.CHARGING):
            self.on_state(state, at)
        else:
            self.on_power(power_w, state, at, threshold_w, confirm)

    def on_power(self, power_w: float, state: ChargingState | None, at: datetime, threshold_w: float,
                 confirm: timedelta) -> None:
        """A power reading while the transaction runs (state as last reported)."""
        if threshold_w <= 0 or state in NOT_DRAWING or state is ChargingState.SUSPENDED_EVSE:
            return
        if self.held and power_w < threshold_w:
            return  # out of service, not the car
        if power_w >= threshold_w:
            self.drawing()
            return
        if not self.drew_power or self.charging_finished_at is not None:
            return
        if self.low_power_since is None:
            self.low_power_since = at
        self.confirm_low_power(at, confirm)

    def confirm_low_power(self, now: datetime, confirm: timedelta) -> None:
        if self.low_power_since is not None and now - self.low_power_since >= confirm:
            self.charging_finished_at = self.charging_finished_at or self.low_power_since
            self.low_power_since = None

    # --- the bay ------------------------------------------------------------------------------------
    def occupied(self, at: datetime) -> None:
        if at >= self.started_at and (self.last_occupied_at is None or at > self.last_occupied_at):
            self.last_occupied_at = at

    def unplugged(self, at: datetime) -> None:
        if at >= self.started_at and (self.unplugged_at is None or at < self.unplugged_at):
            self.unplugged_at = at

    def on_status(self, status: ConnectorStatus, charging_state: ChargingState | None, at: datetime) -> None:
        if at < self.started_at:
            return  # a late notification from before this session
        if status is ConnectorStatus.AVAILABLE:
            self.unplugged(at)
            return
        self.occupied(at)
        if status in OUT_OF_SERVICE:
            if self.charging_finished_at is None:
                self.held, self.low_power_since = True, None
            elif self.overstay_counted_until is None or at < self.overstay_counted_until:
                self.overstay_counted_until = at
            return
        if self.ended_at is None:
            self.on_state(charging_state, at)

    def on_ended(self, ended_at: datetime, stop_reason: str | None) -> None:
        self.ended_at = self.ended_at or ended_at
        self.occupied(ended_at)
        if (self.drew_power and self.charging_finished_at is None and not self.held
                and stop_reason in DRIVER_STOP_REASONS):
            self.charging_finished_at = ended_at  # the EV cannot draw after the driver ended it
        self.low_power_since = None
        if stop_reason == "EVDisconnected":
            self.unplugged(ended_at)

    # --- when to invoice ----------------------------------------------------------------------------
    def finalisation(self, now: datetime, timeout: timedelta) -> tuple[datetime, str] | None:
        """(session end, reason) once the invoice is due, else None.

        Due when the transaction ended and the connector was freed (session end = the unplug). Safety
        net: `timeout` after the end without an unplug (or after an unplug without an end), invoice with
        the occupancy observed (session end = the last instant the bay was seen occupied), so a lost
        StatusNotification never costs the driver minutes nobody saw.
        """
        if self.finalised:
            return None
        if self.ended_at is not None and self.unplugged_at is not None:
            return max(self.unplugged_at, self.started_at), "unplugged"
        if self.ended_at is not None and now >= self.ended_at + timeout:
            return max(self.ended_at, self.last_occupied_at or self.ended_at), "timeout"
        if self.unplugged_at is not None and now >= self.unplugged_at + timeout:
            return self.unplugged_at, "timeout"
        return None


# --- site load -> utilisation ---------------------------------------------------------------------------
@dataclass
class SiteLoad:
    """The site's summed charging power as a step function, folded into fixed buckets of mean power.

    Closed buckets are returned to the caller to persist; the open one is `partial()`. Time never goes
    backwards: a reading stamped before the last one applies from the last one on. A transaction's end cuts
    the open bucket (`cut`): a session is priced with the utilisation measured up to its end, never with load
    that came after it, so its invoice is what its live cost said when it ended (`as_of`).
    """

    bucket_s: int
    power_w: dict[tuple[str, int], float] = field(default_factory=dict)
    last: datetime | None = None
    observed_from: datetime | None = None
    energy_ws: float = 0.0

    def _bucket_end(self, t: datetime) -> datetime:
        epoch = int(t.timestamp())
        return datetime.fromtimestamp(epoch - epoch % self.bucket_s + self.bucket_s, UTC)

    def advance(self, at: datetime) -> list[tuple[datetime, datetime, float]]:
        closed: list[tuple[datetime, datetime, float]] = []
        if self.last is None:
            self.last = self.observed_from = at
            return closed
        t = max(at, self.last)
        total = sum(self.power_w.values())
        end = self._bucket_end(self.last)
        if t >= end:
            assert self.observed_from is not None
            self.energy_ws += total * (end - self.last).total_seconds()
            span = (end - self.observed_from).total_seconds()
            closed.append((self.observed_from, end, self.energy_ws / span if span > 0 else total))
            whole = int((t - end).total_seconds() // self.bucket_s)
            if whole:  # constant power over whole buckets: one row
                closed.append((end, end + timedelta(seconds=whole * self.bucket_s), total))
            self.observed_from = end + timedelta(seconds=whole * self.bucket_s)
            self.energy_ws = 0.0
            self.last = self.observed_from
        self.energy_ws += total * (t - self.last).total_seconds()
        self.last = t
        return closed

    def set_power(self, key: tuple[str, int], power_w: float, at: datetime
                  ) -> list[tuple[datetime, datetime, float]]:
        closed = self.advance(at)
        if power_w > 0:
            self.power_w[key] = power_w
        else:
            self.power_w.pop(key, None)
        return closed

    def cut(self, at: datetime) -> list[tuple[datetime, datetime, float]]:
        """Advance to `at` and close the open bucket there (a transaction of the site ended at `at`)."""
        closed = self.advance(at)
        part = self.partial()
        if part is not None:
            closed.append(part)
            self.observed_from, self.energy_ws = part[1], 0.0
        return closed

    def as_of(self, now: datetime) -> list[tuple[datetime, datetime, float]]:
        """The rows not stored yet as they stand at `now` (the load since the last reading held until now),
        the open one last; this meter is left unchanged. What a transaction ending now would be priced with."""
        ahead = SiteLoad(self.bucket_s, dict(self.power_w), self.last, self.observed_from, self.energy_ws)
        rows = ahead.advance(now)
        part = ahead.partial()
        return rows + ([part] if part is not None else [])

    def partial(self) -> tuple[datetime, datetime, float] | None:
        if self.last is None or self.observed_from is None or self.last <= self.observed_from:
            return None
        span = (self.last - self.observed_from).total_seconds()
        return self.observed_from, self.last, self.energy_ws / span


#: SessionTrack's fields that billing_sessions keeps (the others are rebuilt at start).
_PERSISTED = tuple(f.name for f in fields(SessionTrack) if f.metadata.get("persist", True))


def utilisation_spans(rows: Iterable[tuple[datetime, datetime, float, float | None]]
                      ) -> list[tuple[datetime, datetime, Decimal]]:
    """(start, end, mean W, limit W in force) -> (start, end, fraction of the limit); a span without a limit
    is left out (unknown: base tier)."""
    return [(a, b, Decimal(str(round(w / limit_w, 6)))) for a, b, w, limit_w in rows if b > a and limit_w]


# --- occupancy -> busy intervals -------------------------------------------------------------------------
def occupancy_spans(rows: Sequence[StatusChange], connectors: Iterable[tuple[str, int, int]],
                    since: datetime, until: datetime) -> list[tuple[datetime, datetime, float]]:
    """Fraction of the site's connectors Occupied or Reserved, as spans within [since, until).

    `rows` are status changes in time order, starting with each connector's last one before `since`
    (StoreSession.status_changes). The denominator is every connector known for the site's stations.
    """
    known = set(connectors) | {(r.station_id, r.evse_id or 0, r.connector_id or 1) for r in rows}
    if not known or until <= since:
        return []
    state: dict[tuple[str, int, int], str] = {}
    spans: list[tuple[datetime, datetime, float]] = []
    t = since
    for r in rows:
        at = max(r.at, since)
        if at >= until:
            break
        if at > t:
            spans.append((t, at, _busy_fraction(state, len(known))))
            t = at
        state[(r.station_id, r.evse_id or 0, r.connector_id or 1)] = r.status
    spans.append((t, until, _busy_fraction(state, len(known))))
    return [s for s in spans if s[1] > s[0]]


def _busy_fraction(state: dict[tuple[str, int, int], str], total: int) -> float:
    return sum(1 for s in state.values() if s in BUSY_STATUSES) / total


# --- stored samples -> meter readings -------------------------------------------------------------------
def readings_from_samples(samples: Sequence[StoredValue], tx: Transaction) -> list[MeterReading]:
    """One MeterReading per instant: the energy register and power (phase-less value, else the sum of
    L1..L3, as MeterSample.get). 1.6 meterStart/meterStop fill the register at the start/end instants."""
    by_at: dict[datetime, list[SampledValue]] = {}
    for s in samples:
        try:
            m = Measurand(s.measurand)
        except ValueError:
            continue
        if m in (Measurand.ENERGY_IMPORT_WH, Measurand.POWER_IMPORT_W):
            by_at.setdefault(s.at, []).append(SampledValue(m, s.value, s.phase, s.context))
    values: dict[datetime, tuple[float | None, float | None]] = {}
    for at, vals in by_at.items():
        ms = MeterSample(at, tuple(vals))
        values[at] = (ms.get(Measurand.ENERGY_IMPORT_WH), ms.get(Measurand.POWER_IMPORT_W))
    for at, reg in ((tx.started_at, tx.meter_start_wh), (tx.ended_at, tx.meter_stop_wh)):
        if at is not None and reg is not None:
            old_reg, power = values.get(at, (None, None))
            values[at] = (old_reg if old_reg is not None else reg, power)
    return [MeterReading(at, _dec(reg), _dec(power)) for at, (reg, power) in sorted(values.items())
            if reg is not None or power is not None]


def _dec(v: float | None) -> Decimal | None:
    return None if v is None else Decimal(str(v))
