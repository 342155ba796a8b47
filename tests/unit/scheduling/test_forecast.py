"""The arrival forecast (csms.scheduling.forecast) and what the planner does with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from csms.scheduling import (
    CircuitSpec, EvseSpec, ExpectedArrival, ObjectiveWeights, SchedulingInput, SessionSpec, plan,
)
from csms.scheduling.forecast import PastSession, expected_arrivals

NOW = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)        # a Tuesday, 08:00
V = 230.0


def edges(n: int = 16, slot_min: int = 15, start: datetime = NOW) -> list[datetime]:
    return [start + timedelta(minutes=slot_min * k) for k in range(n + 1)]


def day_of(d: int, hour: float, stay_h: float, energy_wh: float) -> PastSession:
    start = datetime(2026, 3, d, tzinfo=UTC) + timedelta(hours=hour)
    return PastSession(start, start + timedelta(hours=stay_h), energy_wh)


def test_groups_of_later_arrivals_on_days_of_the_same_kind() -> None:
    # Mon 2, Fri 27 Feb, Thu 26 Feb: 10 kWh over 09:00-11:00; on Monday also 4 kWh from 10:00 for 2 h.
    history = [day_of(2, 9, 2, 10_000), day_of(2, 10, 2, 4_000),
               PastSession(datetime(2026, 2, 27, 9, tzinfo=UTC), datetime(2026, 2, 27, 11, tzinfo=UTC), 10_000),
               PastSession(datetime(2026, 2, 26, 9, 30, tzinfo=UTC), datetime(2026, 2, 26, 13, 30, tzinfo=UTC),
                           10_000),
               # Sunday 1 March: a weekend day, not counted for a Tuesday
               day_of(1, 9, 2, 50_000),
               # an arrival before now on that day's clock (07:00): already here today, not expected
               day_of(2, 7, 3, 30_000)]
    got = expected_arrivals(history, NOW, NOW + timedelta(hours=12), UTC)
    assert len(got) == 2
    nine, ten = got
    # 09:00-10:00: three sessions over three days (09:00, 09:00, 09:30): one car, 10 kWh a day on average
    assert nine.arrival == NOW + timedelta(minutes=70)                     # their mean arrival, 09:10
    # Their energy-weighted mean stay (2 h, 2 h, 4 h at 10 kWh each), not the median (2 h): the group's
    # energy comes with the long stay's flexibility too.
    assert nine.departure - nine.arrival == timedelta(hours=2, minutes=40)
    assert nine.energy_wh == pytest.approx(10_000)
    assert nine.cars == pytest.approx(1.0)
    # 10:00-11:00: Monday's 4 kWh, one day in three
    assert ten.arrival == NOW + timedelta(hours=2)
    assert ten.energy_wh == pytest.approx(4_000 / 3)
    assert ten.cars == pytest.approx(1 / 3)
    # With a 24 h horizon, the 07:00 arrival comes back tomorrow, in the horizon's last hour: one hour of its
    # three-hour stay is inside. It counts only what it could not take in the two hours after the horizon at
    # the car's power (11 kW: 30 - 22 = 8 kWh, one day in three), not a third of its energy at its mean rate,
    # which forced tomorrow's energy before the horizon's end and made tomorrow look busier than it is.
    tomorrow = expected_arrivals(history, NOW, NOW + timedelta(hours=24), UTC, car_power_w=11_000)[-1]
    assert tomorrow.arrival == NOW + timedelta(hours=23) and tomorrow.departure == NOW + timedelta(hours=24)
    assert tomorrow.energy_wh == pytest.approx(8_000 / 3)
    assert tomorrow.cars == pytest.approx(1 / 3)
    # A car that can take it all after the horizon is not expected inside it (power unknown: none can).
    assert expected_arrivals(history, NOW, NOW + timedelta(hours=24), UTC, car_power_w=15_000)[-1] == ten
    assert expected_arrivals(history, NOW, NOW + timedelta(hours=24), UTC)[-1] == ten


def test_no_forecast_without_enough_days_of_history() -> None:
    two_days = [day_of(2, 9, 2, 10_000), PastSession(datetime(2026, 2, 27, 9, tzinfo=UTC),
                                                     datetime(2026, 2, 27, 11, tzinfo=UTC), 10_000)]
    assert expected_arrivals(two_days, NOW, NOW + timedelta(hours=24), UTC) == ()
    assert expected_arrivals([], NOW, NOW + timedelta(hours=24), UTC) == ()


def test_the_next_morning_is_forecast_past_midnight_in_site_time() -> None:
    tz = ZoneInfo("America/Los_Angeles")
    late = datetime(2026, 3, 3, 22, 0, tzinfo=tz)                           # Tuesday 22:00 local
    history = [PastSession(datetime(2026, 2, d, 7, tzinfo=tz), datetime(2026, 2, d, 9, tzinfo=tz), 10_000)
               for d in (24, 25, 26)]
    got = expected_arrivals(history, late, late + timedelta(hours=12), tz)
    assert [(g.arrival, g.departure, g.energy_wh, g.cars) for g in got] == [
        (late + timedelta(hours=9), late + timedelta(hours=11), pytest.approx(10_000), pytest.approx(1.0))]
    assert expected_arrivals(history, late, late + timedelta(hours=8), tz) == ()   # beyond the horizon


def test_quiet_days_are_left_out_of_the_mean() -> None:
    """Four weekdays with four cars from 10:00 (5 kWh each) and a holiday with one car (10 kWh): with the
    holiday averaged in, every normal day's 10:00 group is under-forecast (18 kWh, 3.4 cars); left out as a
    day with fewer than half the median day's sessions, the group is the normal day's (20 kWh, 4 cars)."""
    normal = [PastSession(datetime(2026, 2, d, 10, tzinfo=UTC), datetime(2026, 2, d, 12, tzinfo=UTC), 5_000)
              for d in (23, 24, 25, 26) for _ in range(4)]                  # Monday to Thursday
    holiday = [day_of(2, 10, 2, 10_000)]                                   # Monday 2 March
    horizon = NOW + timedelta(hours=12)
    averaged, = expected_arrivals(normal + holiday, NOW, horizon, UTC)
    assert (averaged.energy_wh, averaged.cars) == (pytest.approx(18_000), pytest.approx(3.4))
    kept, = expected_arrivals(normal + holiday, NOW, horizon, UTC, quiet_day_fraction=0.5)
    assert (kept.energy_wh, kept.cars) == (pytest.approx(20_000), pytest.approx(4.0))
    assert kept.departure - kept.arrival == timedelta(hours=2)
    # A day with half the median's sessions or more is an ordinary quieter day and counts.
    two_cars = [PastSession(datetime(2026, 3, 2, 10, tzinfo=UTC), datetime(2026, 3, 2, 12, tzinfo=UTC),
                            5_000)] * 2
    counted, = expected_arrivals(normal + two_cars, NOW, horizon, UTC, quiet_day_fraction=0.5)
    assert (counted.energy_wh, counted.cars) == (pytest.approx(90_000 / 5), pytest.approx(18 / 5))
    # Quiet days do not count towards the days of history a forecast needs (two normal days of four).
    sparse = normal[:8] + holiday + [PastSession(datetime(2026, 2, 27, 10, tzinfo=UTC),
                                                 datetime(2026, 2, 27, 12, tzinfo=UTC), 1_000)]
    assert expected_arrivals(sparse, NOW, horizon, UTC) != ()
    assert expected_arrivals(sparse, NOW, horizon, UTC, quiet_day_fraction=0.5) == ()


def site(n: int) -> tuple[list[EvseSpec], CircuitSpec]:
    evses = [EvseSpec(k, 32.0, 6.0, (1,), V) for k in "ABCDEFGH"[:n]]
    return evses, CircuitSpec("site", max_power_w=None, evse_keys=tuple(e.evse_key for e in evses))


def test_cars_here_charge_sooner_when_many_are_expected_later() -> None:
    """Two cars staying 8 h with 8 kWh each on an uncapped site: alone they are spread thinly (the lowest peak);
    with three cars expected from the second hour that need 60 kWh by 7 h later, they charge in the first
    hour, before them, and the site's peak with those cars charged is lower. Energy is the same either way,
    and the expected cars never appear in the schedule."""
    evses, circuit = site(2)
    sessions = tuple(SessionSpec(k, k.upper(), 8_000, departure=NOW + timedelta(hours=8)) for k in "ab")
    base = SchedulingInput(start=NOW, circuits=(circuit,), evses=tuple(evses), sessions=sessions, slot_s=900,
                           horizon_slots=40)
    alone = plan(base)
    later = (ExpectedArrival(NOW + timedelta(hours=1), NOW + timedelta(hours=4), 60_000, 3.0),)
    told = plan(SchedulingInput(start=NOW, circuits=(circuit,), evses=tuple(evses), sessions=sessions,
                                slot_s=900, horizon_slots=40, expected_arrivals=later))
    assert [p.session_key for p in told.sessions] == ["a", "b"]
    for s in (alone, told):
        assert sum(p.energy_wh for p in s.sessions) == pytest.approx(16_000, abs=1.0)
    first_hour_kwh = [sum(s.site_power_w[t] for t in range(4)) / 4000 for s in (alone, told)]
    assert first_hour_kwh[1] > first_hour_kwh[0] + 5.0
    # The expected 60 kWh over 3 h need 20 kW from 09:00 to 12:00: the cars here finish before it or charge
    # beside it without raising the peak above that (but for one admission at the 6 A minimum, 1.38 kW).
    assert max(told.site_power_w[4:16]) / 1000 <= 1.38 + 1e-6
    assert told.objective_terms["expected_kwh"] == pytest.approx(60.0, abs=0.1)


def test_expected_cars_never_take_energy_from_cars_that_are_here() -> None:
    """A 5 kW site limit with shaving below it (the forecast applies) and 50 kWh expected: the car that is here
    still gets all it can take."""
    evses, _ = site(2)
    circuit = CircuitSpec("site", max_power_w=5_000, evse_keys=("A", "B"))
    sessions = (SessionSpec("a", "A", 30_000, departure=NOW + timedelta(hours=4)),)
    later = (ExpectedArrival(NOW + timedelta(minutes=30), NOW + timedelta(hours=4), 50_000, 4.0),)
    told = plan(SchedulingInput(start=NOW, circuits=(circuit,), evses=tuple(evses), sessions=sessions,
                                slot_s=900, horizon_slots=40, expected_arrivals=later,
                                weights=ObjectiveWeights(shave_below_limit=True)))
    assert told.session("a").energy_wh == pytest.approx(min(30_000, 5_000 * 4), rel=1e-3)


def test_a_site_with_a_limit_ignores_the_forecast() -> None:
    """With a site limit (and no shaving below it, the default) the peak term only counts load above the
    limit, which the cars to come cannot draw either: the plan is the same with or without the forecast
    (reshaping it around them displaced least-laxity order and cost energy on capped ACN runs)."""
    evses = [EvseSpec(k, 32.0, 6.0, (1,), V) for k in "AB"]
    circuit = CircuitSpec("site", max_power_w=10_000, evse_keys=("A", "B"))
    sessions = (SessionSpec("a", "A", 8_000, departure=NOW + timedelta(hours=3)),
                SessionSpec("b", "B", 20_000, departure=NOW + timedelta(hours=8)))
    def run(expected: tuple[ExpectedArrival, ...]) -> list[list[float]]:
        s = plan(SchedulingInput(start=NOW, circuits=(circuit,), evses=tuple(evses), sessions=sessions,
                                 slot_s=900, horizon_slots=40, expected_arrivals=expected))
        return [list(s.session(k).current_a) for k in "ab"]
    assert run((ExpectedArrival(NOW + timedelta(hours=1), NOW + timedelta(hours=6), 90_000, 5.0),)) == run(())
