from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.domain.enums import Measurand
from csms.ocpp.common import BadPayload, format_ts, identity_from_path, measurand, parse_ts, to_si


@pytest.mark.parametrize("raw, expected", [
    ("2026-11-27T05:15:13Z", datetime(2026, 11, 27, 5, 15, 13, tzinfo=UTC)),
    ("2026-11-27T05:15:13.5Z", datetime(2026, 11, 27, 5, 15, 13, 500000, tzinfo=UTC)),
    ("2026-11-27T05:15:13.123456789Z", datetime(2026, 11, 27, 5, 15, 13, 123456, tzinfo=UTC)),  # ns: truncated
    ("13:00", None),
    ("2026-11-27T07:15:13+02:00", datetime(2026, 11, 27, 5, 15, 13, tzinfo=UTC)),
    ("2026-11-27T05:15:13", datetime(2026, 11, 27, 5, 15, 13, tzinfo=UTC)),  # naive -> UTC
    ("2026-11-27T05:15:13.123", datetime(2026, 11, 27, 5, 15, 13, 123000, tzinfo=UTC)),
])
def test_parse_ts(raw: str, expected: datetime | None) -> None:
    if expected is None:
        with pytest.raises(BadPayload):
            parse_ts(raw)
        return
    got = parse_ts(raw)
    assert got == expected and got.tzinfo is not None and got.utcoffset() == timedelta(0)


def test_parse_ts_garbage_is_a_type_violation() -> None:
    with pytest.raises(BadPayload) as e:
        parse_ts("yesterday")
    assert e.value.kind == "type"
    assert parse_ts(None) is None


@pytest.mark.parametrize("dt, text", [
    (datetime(2026, 11, 27, 5, 15, 13, 123456, tzinfo=UTC), "2026-11-27T05:15:13.123Z"),
    (datetime(2026, 11, 27, 5, 15, 13, tzinfo=UTC), "2026-11-27T05:15:13.000Z"),
    (datetime(2026, 11, 27, 6, 15, 13, 999999, tzinfo=timezone(timedelta(hours=1))), "2026-11-27T05:15:13.999Z"),
    (datetime(2026, 11, 27, 5, 15, 13), "2026-11-27T05:15:13.000Z"),  # naive is UTC
])
def test_format_ts(dt: datetime, text: str) -> None:
    assert format_ts(dt) == text


@given(st.datetimes(timezones=st.just(UTC)))
def test_format_then_parse_round_trips_to_the_millisecond(dt: datetime) -> None:
    back = parse_ts(format_ts(dt))
    assert back is not None and abs(back - dt) < timedelta(milliseconds=1)


@pytest.mark.parametrize("path, expected", [
    ("/ocpp/CP-1", (0, "CP-1")),
    ("/ocpp/CP%201", (0, "CP 1")),
    ("/ocpp/CP-1?x=1", (0, "CP-1")),
    ("/ocpp/" + "a" * 48, (0, "a" * 48)),
    ("/ocpp/" + "a" * 49, 400),
    ("/ocpp/", 400),
    ("/ocpp/CP%3A1", 400),
    ("/ocpp/CP:1", 400),
    ("/ocpp/CP%2F1", 400),
    ("/ocpp/CP%0A1", 400),
    ("/ocpp/%FF", 400),
    ("/other/CP-1", 404),
    ("/ocpp/a/b", 404),
    ("/ocppCP", 404),
])
def test_identity_from_path(path: str, expected: object) -> None:
    got = identity_from_path(path, "/ocpp")
    if isinstance(expected, int):
        assert got[0] == expected
    else:
        assert got == expected


@pytest.mark.parametrize("m, value, unit, mult, si", [
    (Measurand.ENERGY_IMPORT_WH, 12.5, "kWh", 0, 12500.0),
    (Measurand.ENERGY_IMPORT_WH, 12.5, None, 0, 12.5),
    (Measurand.ENERGY_IMPORT_WH, 12.5, "Wh", 3, 12500.0),
    (Measurand.ENERGY_IMPORT_WH, 12.5, "kWh", -3, 12.5),
    (Measurand.POWER_IMPORT_W, 7.4, "kW", 0, 7400.0),
    (Measurand.POWER_OFFERED_W, 11, "W", 0, 11.0),
    (Measurand.CURRENT_IMPORT_A, 16, "A", 0, 16.0),
    (Measurand.CURRENT_OFFERED_A, 160, "A", -1, 16.0),
    (Measurand.VOLTAGE_V, 230.1, "V", 0, 230.1),
    (Measurand.SOC_PCT, 55, "Percent", 0, 55.0),
    (Measurand.SOC_PCT, 55, None, 0, 55.0),
    (Measurand.ENERGY_IMPORT_WH, 1, "A", 0, None),  # unit does not fit the measurand
    (Measurand.CURRENT_IMPORT_A, 1, "kW", 0, None),
])
def test_to_si(m: Measurand, value: float, unit: str | None, mult: int, si: float | None) -> None:
    assert to_si(m, value, unit, mult) == si


def test_measurand_default_and_unknown() -> None:
    assert measurand(None) is Measurand.ENERGY_IMPORT_WH
    assert measurand("Temperature") is None
    assert all(measurand(m.value) is m for m in Measurand)
