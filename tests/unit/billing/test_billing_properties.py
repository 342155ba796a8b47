"""Properties: whatever the meter sends, the bill is non-negative, bounded and adds up."""

from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.billing import (
    DemandTier,
    LineKind,
    MeterReading,
    Money,
    OverstayInputs,
    OverstayPolicy,
    Tariff,
    TariffBook,
    TouWindow,
    UtilisationSpan,
    meter_session,
    price_session,
)

D = Decimal
T0 = datetime(2024, 3, 30, 20, 0, tzinfo=UTC)  # spans the Europe/Berlin DST change

step = st.one_of(
    st.tuples(st.just("inc"), st.decimals(0, 20000, places=3)),
    st.tuples(st.just("reset"), st.decimals(0, 500, places=3)),  # meter restarted near zero
    st.tuples(st.just("jump"), st.decimals(0, 10_000_000, places=3)),  # anything at all
    st.tuples(st.just("none"), st.none()),
)
sample = st.tuples(
    st.integers(0, 3600),  # seconds since the previous reading; 0 makes duplicates
    step,
    st.one_of(st.none(), st.decimals(-2000, 60000, places=1)),  # power, may be negative/absurd
)


@st.composite
def readings(draw: st.DrawFn) -> list[MeterReading]:
    at, register, out = T0, D(draw(st.integers(0, 10**6))), []
    for gap_s, (kind, value), power in draw(st.lists(sample, max_size=25)):
        at += timedelta(seconds=gap_s)
        if kind == "inc":
            register += value
        elif kind in ("reset", "jump"):
            register = value
        out.append(MeterReading(at, None if kind == "none" else register, power))
    return draw(st.permutations(out)) if draw(st.booleans()) else out


TARIFF = Tariff(
    currency="EUR",
    energy_price_per_kwh=D("0.3333"),
    timezone="Europe/Berlin",
    tou_windows=(TouWindow(frozenset(range(1, 8)), time(22), time(2, 30), D("0.1999"), "night"),),
    session_fee=D("0.35"),
    time_fee_per_hour=D("0.777"),
    tax_rate=D("0.19"),
    demand_tiers=(DemandTier("medium", D("0.5"), D("1.2")), DemandTier("high", D("0.8"), D("1.5"))),
)
POLICY = OverstayPolicy(fee_per_minute=Money(D("0.15"), "EUR"), cap=Money(D("12"), "EUR"))


@settings(max_examples=200, deadline=None)
@given(
    readings(),
    st.integers(1000, 50000),
    st.sampled_from([D(1), D("1.1"), D("1.5")]),
    st.lists(st.decimals(0, D("1.2"), places=2), min_size=1, max_size=12),
)
def test_any_readings_give_a_sane_bill(
    rs: list[MeterReading], max_w: int, tolerance: Decimal, util: list[Decimal]
) -> None:
    metered = meter_session(rs, max_power_w=D(max_w), tolerance=tolerance)

    assert metered.total_energy_wh >= 0
    assert all(iv.energy_wh >= 0 and iv.end > iv.start for iv in metered.intervals)
    assert metered.total_energy_wh == sum((iv.energy_wh for iv in metered.intervals), D(0))
    if rs:
        span = max(r.at for r in rs) - min(r.at for r in rs)
        assert metered.total_energy_wh <= D(max_w) * tolerance * D(span.total_seconds()) / 3600

    start = min((r.at for r in rs), default=T0)
    end = max((r.at for r in rs), default=T0) + timedelta(minutes=45)
    hour = timedelta(hours=1)
    series = [UtilisationSpan(T0 + k * hour, T0 + (k + 1) * hour, u) for k, u in enumerate(util)]
    invoice = price_session(
        metered.intervals,
        TariffBook(TARIFF),
        "public",
        session_start=start,
        session_end=end,
        utilisation=series,
        overstay=OverstayInputs(POLICY),
        anomalies=metered.anomalies,
    )

    assert all(line.amount.amount >= 0 and line.quantity >= 0 for line in invoice.lines)
    assert invoice.subtotal == sum((line.amount for line in invoice.lines), Money.zero("EUR"))
    assert invoice.total == invoice.subtotal + invoice.tax
    assert invoice.tax.amount >= 0 and invoice.total.amount >= 0
    energy_kwh = sum((line.quantity for line in invoice.lines if line.kind is LineKind.ENERGY), D(0))
    assert energy_kwh == (metered.total_energy_wh / 1000).quantize(D("0.001"), ROUND_HALF_UP)
    assert invoice.to_dict()["total"] == str(invoice.total.amount)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 60))
def test_overstay_minutes_never_exceed_the_wall_clock(finished_s: int, unplug_s: int, grace_min: int) -> None:
    from csms.billing import overstay_minutes

    grace = timedelta(minutes=grace_min)
    minutes = overstay_minutes(T0 + timedelta(seconds=finished_s), T0 + timedelta(seconds=unplug_s), grace)
    assert 0 <= minutes * 60 <= max(0, unplug_s - finished_s - grace_min * 60)
