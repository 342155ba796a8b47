from datetime import UTC, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfoNotFoundError

import pytest

from csms.billing import DemandTier, Tariff, TariffBook, TariffOverride, TouWindow, prices_per_slot

D = Decimal
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
EVERY_DAY = frozenset(range(1, 8))
TIERS = (
    DemandTier("medium", D("0.5"), D("1.2")),
    DemandTier("high", D("0.8"), D("1.5")),
)
BERLIN = Tariff(
    currency="EUR",
    energy_price_per_kwh=D("0.30"),
    timezone="Europe/Berlin",
    tou_windows=(
        TouWindow(WEEKDAYS, time(17), time(21), D("0.45"), "peak"),
        TouWindow(EVERY_DAY, time(22), time(6), D("0.20"), "night"),  # wraps past midnight
    ),
    demand_tiers=TIERS,
    tax_rate=D("0.19"),
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "instant, price",
    [
        (utc(2024, 1, 15, 15, 59, 59), "0.30"),  # Mon 16:59:59 CET
        (utc(2024, 1, 15, 16, 0), "0.45"),  # Mon 17:00 CET: peak starts (inclusive)
        (utc(2024, 1, 15, 19, 59, 59), "0.45"),
        (utc(2024, 1, 15, 20, 0), "0.30"),  # 21:00: peak ends (exclusive)
        (utc(2024, 1, 15, 21, 0), "0.20"),  # 22:00: night
        (utc(2024, 1, 16, 4, 59), "0.20"),  # Tue 05:59: night window that started Monday
        (utc(2024, 1, 16, 5, 0), "0.30"),  # Tue 06:00
        (utc(2024, 1, 20, 16, 0), "0.30"),  # Saturday 17:00: peak is weekdays only
        (utc(2024, 1, 21, 23, 30), "0.20"),  # Mon 00:30 after Sunday night
        (utc(2024, 7, 15, 15, 0), "0.45"),  # summer: 17:00 CEST is 15:00 UTC
        (utc(2024, 7, 15, 14, 59), "0.30"),
    ],
)
def test_price_at_tou_boundaries(instant: datetime, price: str) -> None:
    assert BERLIN.price_at(instant) == D(price)


def test_wrapping_window_belongs_to_the_day_it_starts() -> None:
    friday_night = Tariff("EUR", D("0.30"), (TouWindow({5}, time(22), time(6), D("0.10")),))  # type: ignore[arg-type]
    assert friday_night.price_at(utc(2024, 1, 20, 5, 0)) == D("0.10")  # Saturday 05:00 UTC
    assert friday_night.price_at(utc(2024, 1, 21, 5, 0)) == D("0.30")  # Sunday 05:00 UTC


@pytest.mark.parametrize(
    "utilisation, tier, multiplier",
    [
        (None, "base", "1"),  # unknown utilisation never costs a surcharge
        (D("0"), "base", "1"),
        (D("0.4999"), "base", "1"),
        (D("0.5"), "medium", "1.2"),  # bands are [from, next from)
        (D("0.7999"), "medium", "1.2"),
        (D("0.8"), "high", "1.5"),
        (D("1.3"), "high", "1.5"),
    ],
)
def test_demand_tier_bands(utilisation: Decimal | None, tier: str, multiplier: str) -> None:
    chosen = BERLIN.tier_for(utilisation)
    assert (chosen.name, chosen.multiplier) == (tier, D(multiplier))


@pytest.mark.parametrize(
    "group, price, session_fee, tax",
    [
        ("fleet", "0.25", "0", "0.19"),  # overrides the price, inherits the rest
        ("staff", "0.30", "0", "0"),  # overrides only tax
        ("public", "0.30", "0.50", "0.19"),
        ("unknown", "0.30", "0", "0.19"),
        (None, "0.30", "0", "0.19"),
    ],
)
def test_group_overrides(group: str | None, price: str, session_fee: str, tax: str) -> None:
    book = TariffBook(
        BERLIN,
        {
            "fleet": TariffOverride(energy_price_per_kwh=D("0.25")),
            "staff": TariffOverride(tax_rate=D(0)),
            "public": TariffOverride(session_fee=D("0.50")),
        },
    )
    tariff = book.for_group(group)
    assert (tariff.energy_price_per_kwh, tariff.session_fee, tariff.tax_rate) == (
        D(price),
        D(session_fee),
        D(tax),
    )
    assert tariff.tou_windows == BERLIN.tou_windows


def test_full_tariff_override_must_share_currency() -> None:
    with pytest.raises(ValueError):
        TariffBook(BERLIN, {"x": Tariff("USD", D(1))})


@pytest.mark.parametrize(
    "utilisation, include_tax, expected",
    [
        # 16:50-17:05 CET is 10 min at 0.30 and 5 min at 0.45 -> 0.35; then peak slots
        (None, False, ["0.350000", "0.450000", "0.450000", "0.450000"]),
        ([None, D("0.6"), 0.9, D("0.1")], False, ["0.350000", "0.540000", "0.675000", "0.450000"]),
        (None, True, ["0.416500", "0.535500", "0.535500", "0.535500"]),
    ],
)
def test_prices_per_slot(utilisation, include_tax, expected) -> None:  # type: ignore[no-untyped-def]
    prices = prices_per_slot(BERLIN, utc(2024, 1, 15, 15, 50), 900, 4, utilisation, include_tax=include_tax)
    assert prices == [D(p) for p in expected]


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"energy_price_per_kwh": D("-0.1")}, ValueError),
        ({"energy_price_per_kwh": 0.3}, TypeError),  # floats refused
        ({"timezone": "Mars/Olympus"}, ZoneInfoNotFoundError),
        ({"demand_tiers": (TIERS[1], TIERS[0])}, ValueError),  # not ascending
    ],
)
def test_invalid_tariffs_are_rejected(kwargs, error) -> None:  # type: ignore[no-untyped-def]
    base = {"currency": "EUR", "energy_price_per_kwh": D("0.3")}
    with pytest.raises(error):
        Tariff(**(base | kwargs))
