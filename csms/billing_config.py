"""Schema of the `billing:` section of config.yaml, and its conversion to `csms.billing` values.

Strict like the rest of the configuration (unknown keys are errors naming the key). Prices are
read as Decimals (a YAML 0.30 is exactly 0.30), exclude tax, and are in `currency`.

Defaults (an embedded CSMS that nobody configured for billing): EUR, 0.30 per kWh, no fees, no tax,
no TOU windows, no demand tiers, and **no overstay penalty** — idle fees are only charged when the
operator writes an `overstay:` section (its `fee_per_minute` is then mandatory). Invoices are still
produced for every session.

This module must not import `csms.config` at import time: `csms.config.Config` embeds `BillingConfig`.
"""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from csms.billing import (
    AllottedBy,
    DemandTier,
    Money,
    OverstayPolicy,
    Tariff,
    TariffBook,
    TariffOverride,
    TimeFeeBasis,
    TouWindow,
    minor_units,
)
from csms.domain.daily_window import time_of_day


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DAY_NAMES = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
_DAY_SETS = {"all": list(range(1, 8)), "weekdays": [1, 2, 3, 4, 5], "weekend": [6, 7]}
NonNeg = Field(ge=0)


def _time(v: Any) -> Any:
    return time_of_day(v)  # the same reading as the limit schedule's windows


class TouWindowConfig(_Strict):
    """A time-of-use price in the tariff's local time; end <= start runs past midnight."""

    #: ISO weekdays (1 = Monday) or mon..sun, or one of all | weekdays | weekend; the day the window starts.
    days: list[int] | Literal["all", "weekdays", "weekend"] = "all"
    start: time
    end: time
    price_per_kwh: Decimal = Field(ge=0)
    name: str = ""

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, v: Any) -> Any:
        if isinstance(v, str):
            return _DAY_SETS.get(v.lower(), v)
        if isinstance(v, list):
            return [_DAY_NAMES.get(d.lower()[:3], d) if isinstance(d, str) else d for d in v]
        return v

    @field_validator("days")
    @classmethod
    def _day_range(cls, v: Any) -> Any:
        if isinstance(v, list) and (not v or any(not 1 <= d <= 7 for d in v)):
            raise ValueError("days must be ISO weekdays 1..7 (or mon..sun)")
        return v

    _t = field_validator("start", "end", mode="before")(classmethod(lambda cls, v: _time(v)))

    def to_window(self) -> TouWindow:
        days = self.days if isinstance(self.days, list) else _DAY_SETS[self.days]
        return TouWindow(frozenset(days), self.start, self.end, self.price_per_kwh, self.name)


class DemandTierConfig(_Strict):
    """Energy price × `multiplier` while site utilisation (load / grid limit) >= `from_utilisation`."""

    name: str = Field(min_length=1)
    from_utilisation: Decimal = Field(ge=0)
    multiplier: Decimal = Field(ge=0)

    @field_validator("from_utilisation")
    @classmethod
    def _fraction(cls, v: Decimal) -> Decimal:
        # Utilisation is load / limit, at most 1: a percentage typed here would never apply.
        if v > 1:
            raise ValueError(f"is a fraction of the site's limit (0.5 for 50 %), not a percentage: {v} would "
                             f"never be reached; write {v / 100} for {v} %")
        return v

    def to_tier(self) -> DemandTier:
        return DemandTier(self.name, self.from_utilisation, self.multiplier)


def _check_tiers(tiers: list[DemandTierConfig] | None) -> None:
    if tiers is None:
        return
    bounds = [t.from_utilisation for t in tiers]
    if bounds != sorted(set(bounds)):
        raise ValueError("demand_tiers: from_utilisation must be strictly ascending")


def _check_zone(v: str | None) -> str | None:
    if v is not None:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {v!r}") from None
    return v


class TariffConfig(_Strict):
    name: str = "default"
    energy_price_per_kwh: Decimal = Field(Decimal("0.30"), ge=0)
    tou_windows: list[TouWindowConfig] = []
    session_fee: Decimal = Field(Decimal(0), ge=0)
    time_fee_per_hour: Decimal = Field(Decimal(0), ge=0)
    #: charging: hours that delivered energy; connected: plug-in to unplug.
    time_fee_basis: Literal["charging", "connected"] = "charging"
    #: e.g. 0.19; every price above excludes it.
    tax_rate: Decimal = Field(Decimal(0), ge=0, le=1)
    demand_tiers: list[DemandTierConfig] = []

    @model_validator(mode="after")
    def _tiers(self) -> "TariffConfig":
        _check_tiers(self.demand_tiers)
        return self

    def to_tariff(self, currency: str, timezone: str) -> Tariff:
        return Tariff(
            currency=currency, energy_price_per_kwh=self.energy_price_per_kwh,
            tou_windows=tuple(w.to_window() for w in self.tou_windows), timezone=timezone,
            session_fee=self.session_fee, time_fee_per_hour=self.time_fee_per_hour,
            time_fee_basis=TimeFeeBasis(self.time_fee_basis), tax_rate=self.tax_rate,
            demand_tiers=tuple(t.to_tier() for t in self.demand_tiers), name=self.name,
        )


class TariffOverrideConfig(_Strict):
    """Per-group changes to the default tariff: only the keys given replace the default's."""

    name: str | None = None
    energy_price_per_kwh: Decimal | None = Field(None, ge=0)
    tou_windows: list[TouWindowConfig] | None = None
    session_fee: Decimal | None = Field(None, ge=0)
    time_fee_per_hour: Decimal | None = Field(None, ge=0)
    time_fee_basis: Literal["charging", "connected"] | None = None
    tax_rate: Decimal | None = Field(None, ge=0, le=1)
    demand_tiers: list[DemandTierConfig] | None = None

    @model_validator(mode="after")
    def _tiers(self) -> "TariffOverrideConfig":
        _check_tiers(self.demand_tiers)
        return self

    def to_override(self, group: str) -> TariffOverride:
        return TariffOverride(
            energy_price_per_kwh=self.energy_price_per_kwh,
            tou_windows=None if self.tou_windows is None else tuple(w.to_window() for w in self.tou_windows),
            session_fee=self.session_fee, time_fee_per_hour=self.time_fee_per_hour,
            time_fee_basis=None if self.time_fee_basis is None else TimeFeeBasis(self.time_fee_basis),
            tax_rate=self.tax_rate,
            demand_tiers=None if self.demand_tiers is None else tuple(t.to_tier() for t in self.demand_tiers),
            name=self.name or group,
        )


class OverstayConfig(_Strict):
    """Idle fee for a car left plugged in after its allotted time (docs/billing.md, Overstay)."""

    #: booking_end | stated_departure | charging_finished | earliest | latest
    allotted_by: Literal["booking_end", "stated_departure", "charging_finished", "earliest", "latest"] = (
        "charging_finished")
    grace_min: float = Field(10.0, ge=0)
    fee_per_minute: Decimal = Field(ge=0)
    fee_per_minute_by_group: dict[str, Decimal] = {}
    #: Per session; null = uncapped.
    cap: Decimal | None = Field(None, ge=0)
    exempt_groups: list[str] = []
    #: Bill only minutes in which the site's occupancy was >= busy_occupancy_threshold.
    only_when_busy: bool = False
    busy_occupancy_threshold: float = Field(0.8, ge=0, le=1)
    warn_before_min: float = Field(10.0, ge=0)

    @field_validator("fee_per_minute_by_group")
    @classmethod
    def _group_fees(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for g, fee in v.items():
            if fee < 0:
                raise ValueError(f"{g}: must be >= 0")
        return v

    def to_policy(self, currency: str) -> OverstayPolicy:
        return OverstayPolicy(
            fee_per_minute=Money(self.fee_per_minute, currency), allotted_by=AllottedBy(self.allotted_by),
            grace=timedelta(minutes=self.grace_min),
            cap=None if self.cap is None else Money(self.cap, currency),
            exempt_groups=frozenset(self.exempt_groups), only_when_busy=self.only_when_busy,
            busy_occupancy_threshold=self.busy_occupancy_threshold,
            warn_before=timedelta(minutes=self.warn_before_min),
            fee_per_minute_by_group={g: Money(f, currency) for g, f in self.fee_per_minute_by_group.items()},
        )


class BillingConfig(_Strict):
    enabled: bool = True
    #: ISO 4217; every price, fee and cap below is in it.
    currency: str = "EUR"
    #: Timezone the TOU windows are written in; null = each site's own `timezone`.
    timezone: str | None = None
    tariff: TariffConfig = TariffConfig()
    #: Per customer group (id token group): keys of `tariff` to replace.
    groups: dict[str, TariffOverrideConfig] = {}
    #: Absent (the default): no overstay fee.
    overstay: OverstayConfig | None = None
    #: The EV counts as finished when it draws less than this while the charger still says Charging,
    #: for charging_finished_confirm_s. 0 disables this fallback (status-based detection stays).
    charging_finished_power_w: float = Field(100.0, ge=0)
    charging_finished_confirm_s: float = Field(120.0, ge=0)
    #: Safety: a session whose transaction ended but whose unplug is never reported is invoiced this
    #: long after the end, with the occupancy that was observed.
    finalize_after_h: float = Field(24.0, gt=0)
    #: Width of the stored site-utilisation buckets used for demand tiers.
    utilisation_bucket_s: int = Field(300, ge=10, le=3600)
    #: How often overstay phases and timeouts are re-evaluated (seconds of CSMS time).
    tick_s: float = Field(15.0, gt=0)
    #: How often (seconds of CSMS time) billing compares the store with what it tracks: ended transactions
    #: without an invoice, running ones it does not follow, and repairs them (also once at start).
    reconcile_interval_s: float = Field(300.0, gt=0)
    #: Energy beyond max power × duration × this factor is an impossible jump (clamped, flagged).
    meter_tolerance: Decimal = Field(Decimal("1.10"), ge=1)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        try:
            minor_units(v)
        except Exception:  # noqa: BLE001 - UnknownCurrency / ValueError: say which key
            raise ValueError(f"unknown currency {v!r}") from None
        return v

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_zone(v)))

    def tariff_book(self, timezone: str = "UTC") -> TariffBook:
        """The tariffs in `timezone` (the site's) unless `billing.timezone` is set."""
        zone = self.timezone or timezone
        return TariffBook(self.tariff.to_tariff(self.currency, zone),
                          {g: o.to_override(g) for g, o in self.groups.items()})

    def overstay_policy(self) -> OverstayPolicy | None:
        return None if self.overstay is None else self.overstay.to_policy(self.currency)

    def unknown_groups(self, known: set[str]) -> list[str]:
        """Keys naming a group that is not configured (for Config's reference check)."""
        bad = [f"billing.groups.{g}" for g in self.groups if g not in known]
        if self.overstay is not None:
            bad += [f"billing.overstay.fee_per_minute_by_group.{g}"
                    for g in self.overstay.fee_per_minute_by_group if g not in known]
            bad += [f"billing.overstay.exempt_groups: {g!r}"
                    for g in self.overstay.exempt_groups if g not in known]
        return bad


def parse_billing(raw: dict[str, Any] | BillingConfig | None) -> BillingConfig:
    """Validate a raw `billing:` mapping. Raises csms.config.ConfigError naming the key ('billing.…')."""
    from csms.config import ConfigError, format_validation_error  # late: csms.config embeds this module

    if isinstance(raw, BillingConfig):
        return raw
    try:
        return BillingConfig.model_validate(raw or {})
    except ValidationError as e:
        msg = "; ".join(f"billing.{p}" if not p.startswith("billing") else p
                        for p in format_validation_error(e).split("; "))
        raise ConfigError(msg) from None
