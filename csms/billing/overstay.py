"""Overstay (idle) fees: a car that stays plugged in after its allotted time blocks the bay.

Pure functions of timestamps. The rule, in one line: minutes after (allotted end + grace) until
unplug, counted in *whole completed minutes* (floor), optionally only while the site was busy,
times the group's per-minute fee, capped, zero for exempt groups.

Floor, not ceil: an EV that stays 40 min after it is full with a 10 min grace pays exactly 30
minutes, and 30 min 59 s also pays 30. A customer is never charged for a minute not fully used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from csms.billing._time import require_aware
from csms.billing.money import CurrencyMismatch, Money

BusyIntervals = Sequence[tuple[datetime, datetime]]


class AllottedBy(StrEnum):
    """What ends the time a session may occupy the bay without paying overstay.

    BOOKING_END and STATED_DEPARTURE fall back to CHARGING_FINISHED when the session has no
    booking / no stated departure (walk-in drivers), so a full car cannot squat for free.
    """

    BOOKING_END = "booking_end"  # end of the reserved slot
    STATED_DEPARTURE = "stated_departure"  # the departure the driver entered in the app
    CHARGING_FINISHED = "charging_finished"  # when the EV stopped drawing energy (full / SuspendedEV)
    EARLIEST = "earliest"  # strictest: the earliest of the known instants
    LATEST = "latest"  # most lenient: the latest of the known instants


class OverstayPhase(StrEnum):
    OK = "ok"
    WARNING = "warning"  # within policy.warn_before of the billable start: notify the driver
    OVERSTAYING = "overstaying"


@dataclass(frozen=True, slots=True)
class OverstayPolicy:
    fee_per_minute: Money
    allotted_by: AllottedBy = AllottedBy.CHARGING_FINISHED
    grace: timedelta = timedelta(minutes=10)
    cap: Money | None = None  # per session; None = uncapped
    exempt_groups: frozenset[str] = frozenset()
    only_when_busy: bool = False  # bill only minutes in which the site was busy
    busy_occupancy_threshold: float = 0.8  # the caller's bar for "busy" (see busy_intervals_from_occupancy)
    warn_before: timedelta = timedelta(minutes=10)
    fee_per_minute_by_group: Mapping[str, Money] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exempt_groups", frozenset(self.exempt_groups))
        object.__setattr__(self, "allotted_by", AllottedBy(self.allotted_by))
        currency = self.fee_per_minute.currency
        others = [self.cap, *self.fee_per_minute_by_group.values()]
        if any(m is not None and m.currency != currency for m in others):
            raise CurrencyMismatch("overstay fees and cap must share one currency")
        if any(m is not None and m.amount < 0 for m in [self.fee_per_minute, *others]):
            raise ValueError("overstay fees and cap must be >= 0")
        if self.grace < timedelta(0) or self.warn_before < timedelta(0):
            raise ValueError("grace and warn_before must be >= 0")
        if not 0 <= self.busy_occupancy_threshold <= 1:
            raise ValueError("busy_occupancy_threshold must be within 0..1")

    def rate_for(self, group: str | None) -> Money:
        """Per-minute fee for `group`: its override if any, else the default."""
        if group is not None and group in self.fee_per_minute_by_group:
            return self.fee_per_minute_by_group[group]
        return self.fee_per_minute

    def is_exempt(self, group: str | None) -> bool:
        return group is not None and group in self.exempt_groups


@dataclass(frozen=True, slots=True)
class OverstayAssessment:
    allotted_end: datetime | None
    billable_from: datetime | None  # allotted_end + grace
    minutes: int
    fee_per_minute: Money
    fee: Money  # rounded, capped, zero when exempt
    capped: bool
    exempt: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "allotted_end": _iso(self.allotted_end),
            "billable_from": _iso(self.billable_from),
            "minutes": self.minutes,
            "fee_per_minute": self.fee_per_minute.to_dict(),
            "fee": self.fee.to_dict(),
            "capped": self.capped,
            "exempt": self.exempt,
        }


@dataclass(frozen=True, slots=True)
class OverstayState:
    phase: OverstayPhase
    allotted_end: datetime | None
    billable_from: datetime | None
    minutes_so_far: int
    fee_so_far: Money


def allotted_end(
    policy: OverstayPolicy,
    booking_end: datetime | None,
    stated_departure: datetime | None,
    charging_finished_at: datetime | None,
) -> datetime | None:
    """End of the free occupancy per `policy.allotted_by`; None means "not (yet) determined"."""
    finished = _aware(charging_finished_at, "charging_finished_at")
    booking, stated = _aware(booking_end, "booking_end"), _aware(stated_departure, "stated_departure")
    match policy.allotted_by:
        case AllottedBy.BOOKING_END:
            return booking if booking is not None else finished
        case AllottedBy.STATED_DEPARTURE:
            return stated if stated is not None else finished
        case AllottedBy.CHARGING_FINISHED:
            return finished
        case AllottedBy.EARLIEST:
            known = [t for t in (booking, stated, finished) if t is not None]
            return min(known) if known else None
        case AllottedBy.LATEST:
            known = [t for t in (booking, stated, finished) if t is not None]
            return max(known) if known else None
    raise AssertionError(policy.allotted_by)  # pragma: no cover - exhaustive match


def overstay_minutes(
    allotted_end: datetime | None,
    unplugged_at: datetime,
    grace: timedelta,
    busy_intervals: BusyIntervals | None = None,
) -> int:
    """Whole minutes (floor) overstayed between allotted_end + grace and unplug.

    With `busy_intervals` (UTC-aware [start, end) pairs, may overlap), only time inside them
    counts, summed before flooring. None means every minute counts.
    """
    if allotted_end is None:
        return 0
    start = require_aware(allotted_end, "allotted_end") + grace
    end = require_aware(unplugged_at, "unplugged_at")
    if end <= start:
        return 0
    if busy_intervals is None:
        counted = end - start
    else:
        counted = sum(
            (min(b, end) - max(a, start) for a, b in _merge(busy_intervals) if a < end and b > start),
            timedelta(0),
        )
    return int(counted // timedelta(minutes=1))


def overstay_fee(policy: OverstayPolicy, minutes: int, group: str | None = None) -> Money:
    """Fee for `minutes` of overstay: group rate × minutes, capped, rounded; 0 for exempt groups."""
    return _fee(policy, minutes, group)[0]


def assess_overstay(
    policy: OverstayPolicy,
    *,
    group: str | None,
    unplugged_at: datetime,
    booking_end: datetime | None = None,
    stated_departure: datetime | None = None,
    charging_finished_at: datetime | None = None,
    busy_intervals: BusyIntervals | None = None,
) -> OverstayAssessment:
    """Everything an invoice needs about a session's overstay, given when the car was unplugged.

    With `policy.only_when_busy` the caller must pass `busy_intervals` ([] = never busy); a missing
    list raises rather than silently billing (or waiving) every minute.
    """
    if policy.only_when_busy and busy_intervals is None:
        raise ValueError("policy.only_when_busy needs busy_intervals (pass [] if the site was never busy)")
    end = allotted_end(policy, booking_end, stated_departure, charging_finished_at)
    busy = busy_intervals if policy.only_when_busy else None
    minutes = overstay_minutes(end, unplugged_at, policy.grace, busy)
    fee, capped = _fee(policy, minutes, group)
    return OverstayAssessment(
        allotted_end=end,
        billable_from=None if end is None else end + policy.grace,
        minutes=minutes,
        fee_per_minute=policy.rate_for(group),
        fee=fee,
        capped=capped,
        exempt=policy.is_exempt(group),
    )


def overstay_state(
    now: datetime,
    policy: OverstayPolicy,
    *,
    group: str | None,
    booking_end: datetime | None = None,
    stated_departure: datetime | None = None,
    charging_finished_at: datetime | None = None,
    busy_intervals: BusyIntervals | None = None,
) -> OverstayState:
    """Live overstay state of a still-plugged session at `now`, for warnings and live display.

    OK until `warn_before` ahead of the billable start, then WARNING, then OVERSTAYING with the
    minutes and fee accrued so far (as if unplugged now). Exempt groups go through the same
    phases (the bay is still blocked) but accrue a zero fee.
    """
    now = require_aware(now, "now")
    a = assess_overstay(
        policy,
        group=group,
        unplugged_at=now,
        booking_end=booking_end,
        stated_departure=stated_departure,
        charging_finished_at=charging_finished_at,
        busy_intervals=busy_intervals,
    )
    if a.billable_from is None or now < a.billable_from - policy.warn_before:
        phase = OverstayPhase.OK
    elif now < a.billable_from:
        phase = OverstayPhase.WARNING
    else:
        phase = OverstayPhase.OVERSTAYING
    return OverstayState(phase, a.allotted_end, a.billable_from, a.minutes, a.fee)


def busy_intervals_from_occupancy(
    occupancy: Sequence[tuple[datetime, datetime, float]], threshold: float
) -> list[tuple[datetime, datetime]]:
    """Merged [start, end) spans where occupancy (fraction of bays in use) >= `threshold`."""
    return _merge([(a, b) for a, b, fraction in occupancy if fraction >= threshold])


def _fee(policy: OverstayPolicy, minutes: int, group: str | None) -> tuple[Money, bool]:
    if minutes < 0:
        raise ValueError("minutes must be >= 0")
    rate = policy.rate_for(group)
    if policy.is_exempt(group):
        return Money.zero(rate.currency).rounded(), False
    fee = rate * minutes
    if policy.cap is not None and fee > policy.cap:
        return policy.cap.rounded(), True
    return fee.rounded(), False


def _merge(intervals: BusyIntervals) -> list[tuple[datetime, datetime]]:
    aware = [(require_aware(a, "busy start"), require_aware(b, "busy end")) for a, b in intervals]
    spans = sorted((a, b) for a, b in aware if b > a)
    merged: list[tuple[datetime, datetime]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _aware(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else require_aware(value, name)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
