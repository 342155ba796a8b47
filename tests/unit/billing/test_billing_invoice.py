import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from csms.billing import (
    AnomalyKind,
    CurrencyMismatch,
    DemandTier,
    IntervalSource,
    LineKind,
    MeteredInterval,
    MeterReading,
    Money,
    OverstayInputs,
    OverstayPolicy,
    Tariff,
    TariffBook,
    TariffOverride,
    TimeFeeBasis,
    TouWindow,
    UtilisationSpan,
    meter_session,
    price_session,
    running_cost,
)

D = Decimal
MON = datetime(2024, 1, 15, tzinfo=UTC)  # a Monday in winter: Berlin is UTC+1
BASE = Tariff(
    currency="EUR",
    energy_price_per_kwh=D("0.30"),
    timezone="Europe/Berlin",
    tou_windows=(TouWindow(frozenset({1, 2, 3, 4, 5}), time(17), time(21), D("0.45"), "peak"),),
    demand_tiers=(DemandTier("medium", D("0.5"), D("1.2")), DemandTier("high", D("0.8"), D("1.5"))),
    tax_rate=D("0.19"),
)
BOOK = TariffBook(BASE, {"fleet": TariffOverride(energy_price_per_kwh=D("0.25"), tax_rate=D(0))})


def h(hours: float) -> datetime:
    return MON + timedelta(hours=hours)


def iv(start_h: float, end_h: float, wh: str | int) -> MeteredInterval:
    return MeteredInterval(h(start_h), h(end_h), D(wh), IntervalSource.REGISTER)


def lines(invoice) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    return [
        (line.kind, str(line.quantity), str(line.unit_price), str(line.amount.amount))
        for line in invoice.lines
    ]


def price(intervals, group=None, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("session_start", intervals[0].start if intervals else h(12))
    kw.setdefault("session_end", intervals[-1].end if intervals else h(12))
    return price_session(intervals, kw.pop("book", BOOK), group, **kw)


E = LineKind.ENERGY


@pytest.mark.parametrize(
    "intervals, utilisation, expected_lines, subtotal, tax, total",
    [
        # 13:00-14:00 local, standard period
        ([iv(12, 13, 10000)], None, [(E, "10.000", "0.30", "3.00")], "3.00", "0.57", "3.57"),
        # 16:30-17:30 local crosses the 17:00 peak edge: split pro rata by time, 2.475 -> 2.48
        (
            [iv(15.5, 16.5, 11000)],
            None,
            [(E, "5.500", "0.30", "1.65"), (E, "5.500", "0.45", "2.48")],
            "4.13",
            "0.78",
            "4.91",
        ),
        # demand tier evaluated per metered interval
        (
            [iv(10, 11, 7000), iv(11, 12, 7000), iv(12, 13, 7000)],
            [
                UtilisationSpan(h(10), h(11), D("0.3")),
                UtilisationSpan(h(11), h(12), D("0.6")),
                UtilisationSpan(h(12), h(13), D("0.9")),
            ],
            [(E, "7.000", "0.30", "2.10"), (E, "7.000", "0.360", "2.52"), (E, "7.000", "0.450", "3.15")],
            "7.77",
            "1.48",
            "9.25",
        ),
        # a utilisation edge inside an interval splits it too
        (
            [iv(10, 11, 6000)],
            [(h(10), h(10.5), D("0.9")), (h(10.5), h(11), D("0.2"))],
            [(E, "3.000", "0.450", "1.35"), (E, "3.000", "0.30", "0.90")],
            "2.25",
            "0.43",
            "2.68",
        ),
        # callable utilisation
        ([iv(10, 11, 6000)], lambda _t: 0.85, [(E, "6.000", "0.450", "2.70")], "2.70", "0.51", "3.21"),
        # TOU edge and demand tier together
        (
            [iv(15.5, 16.5, 11000)],
            lambda _t: D("0.6"),
            [(E, "5.500", "0.360", "1.98"), (E, "5.500", "0.540", "2.97")],
            "4.95",
            "0.94",
            "5.89",
        ),
        # same period and tier in two intervals: one line
        ([iv(10, 11, 1000), iv(11, 12, 2500)], None, [(E, "3.500", "0.30", "1.05")], "1.05", "0.20", "1.25"),
        # no energy at all: empty invoice
        ([iv(10, 11, 0)], None, [], "0.00", "0.00", "0.00"),
    ],
)
def test_energy_lines_by_tou_and_tier(intervals, utilisation, expected_lines, subtotal, tax, total) -> None:  # type: ignore[no-untyped-def]
    invoice = price(intervals, utilisation=utilisation)
    assert lines(invoice) == expected_lines
    assert (str(invoice.subtotal.amount), str(invoice.tax.amount), str(invoice.total.amount)) == (
        subtotal,
        tax,
        total,
    )


def test_group_override_prices_and_taxes_differently() -> None:
    invoice = price([iv(12, 13, 10000)], group="fleet")
    assert lines(invoice) == [(E, "10.000", "0.25", "2.50")]
    assert invoice.total == Money(D("2.50"), "EUR")


@pytest.mark.parametrize(
    "override, intervals, end_h, expected",
    [
        ({"session_fee": D("0.50")}, [iv(12, 13, 0)], 13, [(LineKind.SESSION_FEE, "1", "0.50", "0.50")]),
        # connected 2 h 30 min at 1.20/h
        (
            {"time_fee_per_hour": D("1.20"), "time_fee_basis": TimeFeeBasis.CONNECTED},
            [iv(12, 13, 0)],
            14.5,
            [(LineKind.TIME_FEE, "2.5000", "1.20", "3.00")],
        ),
        # charging basis: only the interval that delivered energy counts
        (
            {"time_fee_per_hour": D("1.20")},
            [iv(12, 13, 1), iv(13, 14, 0)],
            14,
            [(E, "0.001", "0.30", "0.00"), (LineKind.TIME_FEE, "1.0000", "1.20", "1.20")],
        ),
        # 20 min = 0.3333 h printed; 0.3333 x 1.20 = 0.39996 -> 0.40
        (
            {"time_fee_per_hour": D("1.20"), "time_fee_basis": TimeFeeBasis.CONNECTED},
            [iv(12, 12 + 1 / 3, 0)],
            12 + 1 / 3,
            [(LineKind.TIME_FEE, "0.3333", "1.20", "0.40")],
        ),
    ],
)
def test_session_and_time_fees(override, intervals, end_h, expected) -> None:  # type: ignore[no-untyped-def]
    book = TariffBook(TariffOverride(**override).apply(BASE))
    invoice = price(intervals, book=book, session_start=h(12), session_end=h(end_h))
    assert lines(invoice) == expected


@pytest.mark.parametrize(
    "currency, price_per_kwh, wh, tax_rate, line_amount, tax, total",
    [
        ("JPY", "41", 7500, "0.10", "308", "31", "339"),  # 307.5 -> 308, 30.8 -> 31 (scale 0)
        ("EUR", "0.25", 100, "0.19", "0.03", "0.01", "0.04"),  # 0.025 -> 0.03 HALF_UP (HALF_EVEN: 0.02)
        ("GBP", "0.3499", 1500, "0.20", "0.52", "0.10", "0.62"),  # 0.52485 -> 0.52; 0.104 -> 0.10
        ("USD", "0.335", 1000, "0.075", "0.34", "0.03", "0.37"),  # 0.335 -> 0.34; 0.0255 -> 0.03
    ],
)
def test_rounding_per_line_half_up(currency, price_per_kwh, wh, tax_rate, line_amount, tax, total) -> None:  # type: ignore[no-untyped-def]
    book = TariffBook(Tariff(currency, D(price_per_kwh), tax_rate=D(tax_rate)))
    invoice = price([iv(12, 13, wh)], book=book)
    assert [str(line.amount.amount) for line in invoice.lines] == [line_amount]
    assert (str(invoice.tax.amount), str(invoice.total.amount)) == (tax, total)
    assert invoice.total == invoice.subtotal + invoice.tax


def test_lines_are_rounded_individually_then_summed() -> None:
    # two energy lines of 0.025 each: 0.03 + 0.03 = 0.06 (not round(0.05))
    book = TariffBook(
        Tariff("EUR", D("0.25"), (TouWindow(frozenset({1}), time(13), time(14), D("0.25"), "b"),))
    )
    invoice = price([iv(12, 13, 100), iv(13, 14, 100)], book=book)
    assert [str(line.amount.amount) for line in invoice.lines] == ["0.03", "0.03"]
    assert invoice.subtotal == Money(D("0.06"), "EUR")


FEE = OverstayPolicy(
    fee_per_minute=Money(D("0.10"), "EUR"), grace=timedelta(minutes=10), exempt_groups=frozenset({"staff"})
)


@pytest.mark.parametrize(
    "group, inputs, end_h, expected_line, total",
    [
        # full at 13:00 (derived from the last interval with energy), unplugged 13:40: exactly 30 min
        (None, OverstayInputs(FEE), 13 + 40 / 60, (LineKind.OVERSTAY, "30", "0.10", "3.00"), "7.14"),
        ("staff", OverstayInputs(FEE), 13 + 40 / 60, (LineKind.OVERSTAY, "30", "0", "0.00"), "3.57"),
        (None, OverstayInputs(FEE), 13 + 5 / 60, None, "3.57"),  # within grace: no line
        # an explicit charging-finished time beats the derived one
        (
            None,
            OverstayInputs(FEE, charging_finished_at=h(12.5)),
            13 + 40 / 60,
            (LineKind.OVERSTAY, "60", "0.10", "6.00"),
            "10.71",
        ),
        (
            None,
            OverstayInputs(FEE, busy_intervals=[]),
            13 + 40 / 60,
            (LineKind.OVERSTAY, "30", "0.10", "3.00"),
            "7.14",
        ),
    ],
)
def test_overstay_on_the_invoice(group, inputs, end_h, expected_line, total) -> None:  # type: ignore[no-untyped-def]
    invoice = price(
        [iv(12, 13, 10000)], group=group, session_start=h(12), session_end=h(end_h), overstay=inputs
    )
    assert lines(invoice)[0] == (E, "10.000", "0.30", "3.00")
    assert lines(invoice)[1:] == ([expected_line] if expected_line else [])
    assert str(invoice.total.amount) == total


def test_overstay_in_another_currency_is_refused() -> None:
    usd = OverstayInputs(OverstayPolicy(fee_per_minute=Money(D("0.10"), "USD")))
    with pytest.raises(CurrencyMismatch):
        price([iv(12, 13, 1000)], session_end=h(15), overstay=usd)


def test_invoice_serialises_and_is_deterministic() -> None:
    kwargs = {"session_start": h(12), "session_end": h(13 + 40 / 60), "overstay": OverstayInputs(FEE)}
    first = price([iv(12, 13, 10000)], **kwargs).to_dict()
    assert first == price([iv(12, 13, 10000)], **kwargs).to_dict()
    assert json.loads(json.dumps(first)) == first
    assert first["total"] == "7.14" and first["subtotal"] == "6.00" and first["tax"] == "1.14"
    assert first["lines"][1] == {
        "kind": "overstay",
        "description": "Overstay",
        "quantity": "30",
        "unit": "min",
        "unit_price": "0.10",
        "amount": "3.00",
    }
    assert first["overstay"]["minutes"] == 30


def test_running_cost_is_the_same_computation_on_the_samples_so_far() -> None:
    readings = [MeterReading(h(12), D(0)), MeterReading(h(12.5), D(5000)), MeterReading(h(12.25), D(9000))]
    live = running_cost(
        readings, max_power_w=D(11000), tariff_book=BOOK, group=None, session_start=h(12), now=h(12.5)
    )
    metered = meter_session(readings, max_power_w=D(11000))
    assert live == price_session(
        metered.intervals, BOOK, None, session_start=h(12), session_end=h(12.5), anomalies=metered.anomalies
    )
    assert [a.kind for a in live.anomalies] == [
        AnomalyKind.OUT_OF_ORDER,
        AnomalyKind.IMPOSSIBLE_JUMP,
        AnomalyKind.REGISTER_BACKWARDS,
    ]
    assert live.energy_wh == D(2750)  # 9000 Wh in 15 min clamped to 2750, then the register went backwards
    assert all(line.amount.amount >= 0 for line in live.lines)


def test_session_end_before_start_is_refused() -> None:
    with pytest.raises(ValueError):
        price([], session_start=h(13), session_end=h(12))


def test_docs_example() -> None:
    """The worked example in docs/billing.md."""
    book = TariffBook(TariffOverride(session_fee=D("0.50")).apply(BASE))
    invoice = price(
        [iv(15.5, 16.5, 11000)],
        book=book,
        session_start=h(15.5),
        session_end=h(17 + 10 / 60),
        overstay=OverstayInputs(FEE),
    )
    assert lines(invoice) == [
        (E, "5.500", "0.30", "1.65"),
        (E, "5.500", "0.45", "2.48"),
        (LineKind.SESSION_FEE, "1", "0.50", "0.50"),
        (LineKind.OVERSTAY, "30", "0.10", "3.00"),
    ]
    assert [str(m.amount) for m in (invoice.subtotal, invoice.tax, invoice.total)] == ["7.63", "1.45", "9.08"]
