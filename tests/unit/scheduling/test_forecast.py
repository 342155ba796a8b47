"""The arrival forecast (csms.scheduling.forecast) and what the planner does with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from csms.scheduling import CircuitSpec, EvseSpec, SchedulingInput, SessionSpec, plan
from csms.scheduling.forecast import PastSession, expected_arrivals_kw

NOW = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)        # a Tuesday, 08:00
V = 230.0


def edges(n: int = 16, slot_min: int = 15, start: datetime = NOW) -> list[datetime]:
    return [start + timedelta(minutes=slot_min * k) for k in range(n + 1)]


def day_of(d: int, hour: float, stay_h: float, energy_wh: float) -> PastSession:
    start = datetime(2026, 3, d, tzinfo=UTC) + timedelta(hours=hour)
    return PastSession(start, start + timedelta(hours=stay_h), energy_wh)


def test_mean_flat_power_of_later_arrivals_on_days_of_the_same_kind() -> None:
    # Mon 2, Fri 27 Feb, Thu 26 Feb: 10 kWh over 09:00-11:00 (5 kW); on Monday also 4 kWh from 10:00 for 2 h.
    history = [day_of(2, 9, 2, 10_000), day_of(2, 10, 2, 4_000),
               PastSession(datetime(2026, 2, 27, 9, tzinfo=UTC), datetime(2026, 2, 27, 11, tzinfo=UTC), 10_000),
               PastSession(datetime(2026, 2, 26, 9, tzinfo=UTC), datetime(2026, 2, 26, 11, tzinfo=UTC), 10_000),
               # Sunday 1 March: a weekend day, not counted for a Tuesday
               day_of(1, 9, 2, 50_000),
               # an arrival before now on that day's clock (07:00): already here today, not expected
               day_of(2, 7, 3, 30_000)]
    kw = expected_arrivals_kw(history, edges(), UTC)
    assert kw[:4] == pytest.approx([0.0] * 4)                            # 08:00-09:00
    assert kw[4:8] == pytest.approx([5.0] * 4)                           # 09:00-10:00: 5 kW each day
    assert kw[8:12] == pytest.approx([5.0 + 2.0 / 3] * 4)                # 10:00-11:00: + 2 kW one day in three
    assert kw[12:16] == pytest.approx([2.0 / 3] * 4)


def test_no_forecast_without_enough_days_of_history() -> None:
    two_days = [day_of(2, 9, 2, 10_000), PastSession(datetime(2026, 2, 27, 9, tzinfo=UTC),
                                                     datetime(2026, 2, 27, 11, tzinfo=UTC), 10_000)]
    assert expected_arrivals_kw(two_days, edges(), UTC) == ()
    assert expected_arrivals_kw([], edges(), UTC) == ()


def test_the_next_morning_is_forecast_past_midnight_in_site_time() -> None:
    tz = ZoneInfo("America/Los_Angeles")
    late = datetime(2026, 3, 3, 22, 0, tzinfo=tz)                           # Tuesday 22:00 local
    history = [PastSession(datetime(2026, 2, d, 7, tzinfo=tz), datetime(2026, 2, d, 9, tzinfo=tz), 10_000)
               for d in (24, 25, 26)]
    kw = expected_arrivals_kw(history, edges(n=48, start=late), tz)
    assert max(kw[:36]) == 0.0                                             # until 07:00 tomorrow
    assert kw[36:44] == pytest.approx([5.0] * 8)                           # 07:00-09:00


def site(n: int) -> tuple[list[EvseSpec], CircuitSpec]:
    evses = [EvseSpec(k, 32.0, 6.0, (1,), V) for k in "ABCDEFGH"[:n]]
    return evses, CircuitSpec("site", max_power_w=None, evse_keys=tuple(e.evse_key for e in evses))


def test_cars_here_charge_sooner_when_many_are_expected_later() -> None:
    """Two cars staying 8 h with 8 kWh each on an uncapped site: alone they are spread thinly (the lowest peak);
    with 20 kW of arrivals expected from the second hour, they charge in the first hour, before them, and the
    site's peak (theirs plus the expected) is lower. Energy is the same either way."""
    evses, circuit = site(2)
    sessions = tuple(SessionSpec(k, k.upper(), 8_000, departure=NOW + timedelta(hours=8)) for k in "ab")
    base = SchedulingInput(start=NOW, circuits=(circuit,), evses=tuple(evses), sessions=sessions, slot_s=900,
                           horizon_slots=40)
    alone = plan(base)
    expected = (0.0,) * 4 + (20.0,) * 28 + (0.0,) * 8
    told = plan(SchedulingInput(start=NOW, circuits=(circuit,), evses=tuple(evses), sessions=sessions,
                                slot_s=900, horizon_slots=40, expected_arrivals_kw=expected))
    for s in (alone, told):
        assert sum(p.energy_wh for p in s.sessions) == pytest.approx(16_000, abs=1.0)
    first_hour_kw = [sum(s.session(k).current_a[t] for k in "ab") * V / 1000 for s in (alone, told)
                     for t in (0,)]
    assert first_hour_kw[1] > first_hour_kw[0] + 5.0
    peak_with = max(w / 1000 + e for w, e in zip(told.site_power_w, expected))
    peak_alone = max(w / 1000 + e for w, e in zip(alone.site_power_w, expected))
    # Flat at the expected 20 kW but for one admission at the 6 A minimum (1.38 kW), against 22 kW alone.
    assert peak_with <= 20.0 + 6 * V / 1000 + 1e-6 < peak_alone


def test_a_site_with_a_limit_ignores_the_forecast() -> None:
    """With a site limit (and no shaving below it, the default) the peak term only counts load above the
    limit, which the cars to come cannot draw either: the plan is the same with or without the forecast
    (reshaping it around them displaced least-laxity order and cost energy on capped ACN runs)."""
    evses = [EvseSpec(k, 32.0, 6.0, (1,), V) for k in "AB"]
    circuit = CircuitSpec("site", max_power_w=10_000, evse_keys=("A", "B"))
    sessions = (SessionSpec("a", "A", 8_000, departure=NOW + timedelta(hours=3)),
                SessionSpec("b", "B", 20_000, departure=NOW + timedelta(hours=8)))
    def run(expected: tuple[float, ...]) -> list[list[float]]:
        s = plan(SchedulingInput(start=NOW, circuits=(circuit,), evses=tuple(evses), sessions=sessions,
                                 slot_s=900, horizon_slots=40, expected_arrivals_kw=expected))
        return [list(s.session(k).current_a) for k in "ab"]
    assert run((0.0,) * 4 + (30.0,) * 36) == run(())
