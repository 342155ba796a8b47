from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from csms.billing import AnomalyKind as K
from csms.billing import IntervalSource, MeterReading, meter_session, to_wh

D = Decimal
T0 = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
MAX_W = D(11000)  # 16 A three-phase: 15 min can deliver at most 2750 Wh


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def reg(minutes: float, wh: str | int, power_w: str | int | None = None) -> MeterReading:
    return MeterReading(at(minutes), D(wh), None if power_w is None else D(power_w))


def pwr(minutes: float, w: str | int) -> MeterReading:
    return MeterReading(at(minutes), None, D(w))


def kinds(result) -> list[K]:  # type: ignore[no-untyped-def]
    return [a.kind for a in result.anomalies]


@pytest.mark.parametrize(
    "readings, energies, total, anomaly_kinds",
    [
        # plain register
        ([reg(0, 1000), reg(15, 2000), reg(30, 4500)], ["1000", "2500"], "3500", []),
        # register backwards, not from ~0 -> 0 Wh, flagged
        (
            [reg(0, 50000), reg(15, 51000), reg(30, 40000), reg(45, 41000)],
            ["1000", "0", "1000"],
            "2000",
            [K.REGISTER_BACKWARDS],
        ),
        # meter restarted from 0 (reboot): the new reading is what was counted since
        (
            [reg(0, 50000), reg(15, 51000), reg(30, 300), reg(45, 1300)],
            ["1000", "300", "1000"],
            "2300",
            [K.METER_RESET],
        ),
        # impossible jump: 10 kWh in 15 min on an 11 kW connector -> clamped to 2750 Wh
        ([reg(0, 0), reg(15, 10000), reg(30, 11000)], ["2750", "1000"], "3750", [K.IMPOSSIBLE_JUMP]),
        # just above physical max but within the 10 % tolerance: accepted, not flagged
        ([reg(0, 0), reg(15, 3000)], ["3000"], "3000", []),
        # power-integration fallback (trapezoid): 0 -> 7 kW over 30 min, then 7 kW for 30 min
        ([pwr(0, 0), pwr(30, 7000), pwr(60, 7000)], ["1750", "3500"], "5250", []),
        # negative power sample treated as 0
        ([pwr(0, -200), pwr(30, 2000)], ["500"], "500", [K.NEGATIVE_POWER]),
        # absurd power sample clamped
        ([pwr(0, 100000), pwr(15, 100000)], ["2750"], "2750", [K.IMPOSSIBLE_JUMP]),
        # a pair with neither register nor power: 0 Wh and flagged
        (
            [pwr(0, 7000), MeterReading(at(15)), pwr(30, 7000)],
            ["0", "0"],
            "0",
            [K.MISSING_DATA, K.MISSING_DATA],
        ),
    ],
)
def test_metering_table(readings, energies, total, anomaly_kinds) -> None:  # type: ignore[no-untyped-def]
    result = meter_session(readings, max_power_w=MAX_W)
    assert [iv.energy_wh for iv in result.intervals] == [D(e) for e in energies]
    assert result.total_energy_wh == D(total)
    assert kinds(result) == anomaly_kinds
    assert all(iv.energy_wh >= 0 for iv in result.intervals)


def test_kwh_and_multiplier_readings_meter_like_wh() -> None:
    # 1.6 station in kWh, 2.0.1 station in Wh with multiplier 1 (value x 10): same energy.
    in_kwh = [MeterReading(at(0), to_wh("10.000", "kWh")), MeterReading(at(60), to_wh("17.4", "kWh"))]
    in_x10 = [MeterReading(at(0), to_wh(1000, "Wh", 1)), MeterReading(at(60), to_wh(1740, "Wh", 1))]
    assert meter_session(in_kwh, max_power_w=MAX_W).total_energy_wh == D(7400)
    assert meter_session(in_x10, max_power_w=MAX_W).total_energy_wh == D(7400)


def test_flags_are_on_the_interval_and_sources_are_reported() -> None:
    result = meter_session([reg(0, 50000), reg(15, 40000), pwr(30, 4000)], max_power_w=MAX_W)
    first, second = result.intervals
    assert first.flags == {K.REGISTER_BACKWARDS} and first.source is IntervalSource.REGISTER
    assert second.source is IntervalSource.NONE  # only one end has power


def test_out_of_order_samples_are_sorted_and_flagged() -> None:
    ordered = [reg(0, 0), reg(15, 1000), reg(30, 2500), reg(45, 3000)]
    shuffled = [ordered[0], ordered[2], ordered[1], ordered[3]]
    result = meter_session(shuffled, max_power_w=MAX_W)
    assert result.intervals == meter_session(ordered, max_power_w=MAX_W).intervals
    assert kinds(result) == [K.OUT_OF_ORDER]
    assert result.anomalies[0].at == at(15)


def test_duplicate_timestamps_are_merged_latest_wins() -> None:
    readings = [reg(0, 0), reg(15, 1000), MeterReading(at(15), D(1100), D(4000)), reg(30, 2000)]
    result = meter_session(readings, max_power_w=MAX_W)
    assert [(iv.start, iv.end) for iv in result.intervals] == [(at(0), at(15)), (at(15), at(30))]
    assert [iv.energy_wh for iv in result.intervals] == [D(1100), D(900)]
    assert kinds(result) == [K.DUPLICATE_TIMESTAMP]


def test_register_gap_is_shared_by_power_and_keeps_the_register_total() -> None:
    # 1.6 style: meterStart and meterStop registers, power-only MeterValues in between.
    readings = [reg(0, 0, 10000), pwr(15, 10000), pwr(30, 0), reg(45, 2500, 0)]
    result = meter_session(readings, max_power_w=MAX_W)
    # trapezoid weights 2500 : 1250 : 0 of a 2500 Wh register delta
    assert [iv.energy_wh for iv in result.intervals] == [D("1666.666"), D("833.334"), D(0)]
    assert result.total_energy_wh == D(2500)
    assert {iv.source for iv in result.intervals} == {IntervalSource.REGISTER}
    assert kinds(result) == [K.MISSING_DATA]


def test_register_gap_without_power_is_shared_by_time() -> None:
    readings = [reg(0, 0), MeterReading(at(10)), reg(30, 3000)]
    result = meter_session(readings, max_power_w=MAX_W)
    assert [iv.energy_wh for iv in result.intervals] == [D(1000), D(2000)]


@pytest.mark.parametrize("readings", [[], [reg(0, 100)]])
def test_fewer_than_two_readings_is_missing_data(readings) -> None:  # type: ignore[no-untyped-def]
    result = meter_session(readings, max_power_w=MAX_W)
    assert result.intervals == () and result.total_energy_wh == 0 and kinds(result) == [K.MISSING_DATA]


def test_naive_datetimes_and_float_registers_are_refused() -> None:
    with pytest.raises(ValueError):
        MeterReading(datetime(2024, 1, 1), D(1))
    with pytest.raises(TypeError):
        MeterReading(T0, 1.5)  # type: ignore[arg-type]
