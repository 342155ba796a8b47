"""Tariffs: base energy price, time-of-use windows, demand tiers, fees and tax; per-group overrides.

Prices are unit prices in the tariff's currency, excluding tax, and are *not* rounded: a price
such as 0.3499 EUR/kWh is legal. Rounding happens per invoice line (see invoice.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from itertools import pairwise
from zoneinfo import ZoneInfo

from csms.billing._time import require_aware, seconds
from csms.billing.money import minor_units, to_decimal
from csms.billing.utilisation import to_fraction
from csms.domain.daily_window import DailyWindow

STANDARD_PERIOD = "standard"  # name of the base price outside every TOU window
_SLOT_PRICE_QUANTUM = Decimal("0.000001")


def _non_negative(value: Decimal | int | str, name: str) -> Decimal:
    result = to_decimal(value, name)
    if result < 0:
        raise ValueError(f"{name} must be >= 0, got {result}")
    return result


class TimeFeeBasis(StrEnum):
    # CHARGING is the default: idle time after charging is priced by the overstay policy, and a
    # CONNECTED basis would bill the same idle minutes twice unless the operator wants exactly that.
    CHARGING = "charging"  # time of metered intervals with energy > 0
    CONNECTED = "connected"  # plug-in to unplug (session start to end)


@dataclass(frozen=True, slots=True)
class TouWindow:
    """A time-of-use price, in the tariff's local timezone.

    The window is a `DailyWindow` (csms/domain/daily_window.py, shared with the limit schedule and base
    load): `days` are ISO weekdays (1 = Monday ... 7 = Sunday) on which it *starts*; it covers [start, end)
    local time; end < start runs past midnight into the next day (22:00-06:00), and end == start means 24
    hours. Where windows overlap, the first listed wins.
    """

    days: frozenset[int]
    start: time
    end: time
    price_per_kwh: Decimal
    name: str = ""
    window: DailyWindow = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", frozenset(self.days))
        object.__setattr__(self, "price_per_kwh", _non_negative(self.price_per_kwh, "price_per_kwh"))
        try:
            object.__setattr__(self, "window", DailyWindow(self.start, self.end, self.days))
        except ValueError as e:
            raise ValueError(f"TouWindow: {e}") from None
        if not self.name:
            object.__setattr__(self, "name", f"{self.start:%H:%M}-{self.end:%H:%M}")

    def covers(self, local: datetime) -> bool:
        return self.window.contains(local)


@dataclass(frozen=True, slots=True)
class DemandTier:
    """Multiplier on the energy price while site utilisation >= `from_utilisation` (a fraction)."""

    name: str
    from_utilisation: Decimal
    multiplier: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "from_utilisation", _non_negative(self.from_utilisation, "from_utilisation"))
        object.__setattr__(self, "multiplier", _non_negative(self.multiplier, "multiplier"))


# Applies below the lowest tier and whenever utilisation is unknown: missing site data must never
# make a customer pay a surcharge.
BASE_TIER = DemandTier("base", Decimal(0), Decimal(1))


@dataclass(frozen=True, slots=True)
class Tariff:
    currency: str
    energy_price_per_kwh: Decimal
    tou_windows: tuple[TouWindow, ...] = ()
    timezone: str = "UTC"  # zoneinfo name the TOU windows are written in
    session_fee: Decimal = Decimal(0)
    time_fee_per_hour: Decimal = Decimal(0)
    time_fee_basis: TimeFeeBasis = TimeFeeBasis.CHARGING
    tax_rate: Decimal = Decimal(0)  # e.g. Decimal("0.19"); prices above exclude it
    demand_tiers: tuple[DemandTier, ...] = ()  # ascending from_utilisation
    name: str = "default"

    def __post_init__(self) -> None:
        minor_units(self.currency)
        for name in ("energy_price_per_kwh", "session_fee", "time_fee_per_hour", "tax_rate"):
            object.__setattr__(self, name, _non_negative(getattr(self, name), name))
        object.__setattr__(self, "tou_windows", tuple(self.tou_windows))
        object.__setattr__(self, "demand_tiers", tuple(self.demand_tiers))
        object.__setattr__(self, "time_fee_basis", TimeFeeBasis(self.time_fee_basis))
        ZoneInfo(self.timezone)  # raises ZoneInfoNotFoundError on a bad name, at configuration time
        bounds = [t.from_utilisation for t in self.demand_tiers]
        if bounds != sorted(set(bounds)):
            raise ValueError("demand_tiers must have strictly ascending from_utilisation")

    def window_at(self, at: datetime) -> TouWindow | None:
        local = require_aware(at, "at").astimezone(ZoneInfo(self.timezone))
        return next((w for w in self.tou_windows if w.covers(local)), None)

    def price_at(self, at: datetime) -> Decimal:
        """Energy price per kWh (excl. tax, before demand tiers) in force at instant `at`."""
        window = self.window_at(at)
        return self.energy_price_per_kwh if window is None else window.price_per_kwh

    def period_at(self, at: datetime) -> tuple[str, Decimal]:
        """(period name, price per kWh) at `at`; the name is STANDARD_PERIOD outside all windows."""
        window = self.window_at(at)
        return (
            (STANDARD_PERIOD, self.energy_price_per_kwh)
            if window is None
            else (window.name, window.price_per_kwh)
        )

    def tier_for(self, utilisation: Decimal | None) -> DemandTier:
        """Tier whose band [from_utilisation, next tier's from) contains `utilisation`."""
        if utilisation is None:
            return BASE_TIER
        matching = [t for t in self.demand_tiers if utilisation >= t.from_utilisation]
        return matching[-1] if matching else BASE_TIER

    def tou_boundaries(self, start: datetime, end: datetime) -> list[datetime]:
        """Instants strictly inside (start, end) where a TOU window opens or closes, in UTC.

        Exact with DST: both folds of a repeated hour, and an edge inside a spring-forward gap (the window
        opens at the jump).
        """
        start, end = require_aware(start, "start"), require_aware(end, "end")
        zone = ZoneInfo(self.timezone)
        return sorted({t for w in self.tou_windows for t in w.window.changes(start, end, zone)})


@dataclass(frozen=True, slots=True)
class TariffOverride:
    """Fields a customer group replaces in the default tariff; None means "inherit".

    The currency cannot be overridden: one site bills in one currency.
    """

    energy_price_per_kwh: Decimal | None = None
    tou_windows: tuple[TouWindow, ...] | None = None
    timezone: str | None = None
    session_fee: Decimal | None = None
    time_fee_per_hour: Decimal | None = None
    time_fee_basis: TimeFeeBasis | None = None
    tax_rate: Decimal | None = None
    demand_tiers: tuple[DemandTier, ...] | None = None
    name: str | None = None

    def apply(self, base: Tariff) -> Tariff:
        changes = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(base, **changes)


@dataclass(frozen=True, slots=True)
class TariffBook:
    """The default tariff plus per-group overrides (e.g. "fleet", "staff", "public")."""

    default: Tariff
    by_group: Mapping[str, TariffOverride | Tariff] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for group, entry in self.by_group.items():
            if isinstance(entry, Tariff) and entry.currency != self.default.currency:
                raise ValueError(
                    f"tariff for group {group!r} is in {entry.currency}, not {self.default.currency}"
                )

    def for_group(self, group: str | None) -> Tariff:
        """The effective tariff of `group`; unknown groups and None get the default."""
        entry = self.by_group.get(group) if group is not None else None
        if entry is None:
            return self.default
        return entry if isinstance(entry, Tariff) else entry.apply(self.default)


def prices_per_slot(
    tariff: Tariff,
    start: datetime,
    slot_s: int,
    n_slots: int,
    expected_utilisation: Sequence[Decimal | float | None] | None = None,
    *,
    include_tax: bool = False,
) -> list[Decimal]:
    """Energy price per kWh for each of `n_slots` slots of `slot_s` seconds from `start`.

    For the optimizer's cost term. A slot that straddles a TOU edge gets the time-weighted mean
    price; the demand multiplier comes from `expected_utilisation[k]` (None or no list: base tier).
    Results are quantised to 1e-6. Tax is excluded by default: it scales every slot alike, so it
    does not change which schedule is cheapest.
    """
    start = require_aware(start, "start")
    if slot_s <= 0 or n_slots < 0:
        raise ValueError("slot_s must be > 0 and n_slots >= 0")
    if expected_utilisation is not None and len(expected_utilisation) != n_slots:
        raise ValueError("expected_utilisation needs one entry per slot")
    prices: list[Decimal] = []
    for k in range(n_slots):
        slot_start = start + timedelta(seconds=slot_s * k)
        slot_end = slot_start + timedelta(seconds=slot_s)
        edges = [slot_start, *tariff.tou_boundaries(slot_start, slot_end), slot_end]
        weighted = sum(
            (tariff.price_at(a + (b - a) / 2) * seconds(b - a) for a, b in pairwise(edges)), Decimal(0)
        )
        raw = None if expected_utilisation is None else expected_utilisation[k]
        tier = tariff.tier_for(None if raw is None else to_fraction(raw))
        price = weighted / Decimal(slot_s) * tier.multiplier
        if include_tax:
            price *= 1 + tariff.tax_rate
        prices.append(price.quantize(_SLOT_PRICE_QUANTUM, rounding=ROUND_HALF_UP))
    return prices
