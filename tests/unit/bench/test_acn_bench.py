"""bench/acn_quality.py on a tiny ACN window (half a day, 10 EVSEs): the bench itself must be sound.

Needs the bench extra (acnportal) and the shared ACN data; skipped with the reason otherwise.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("acnportal", reason="acnportal is not installed (bench extra): "
                                        ".venv/bin/pip install -c constraints.txt -e '.[bench]'")

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

import acn_data  # noqa: E402
import acn_quality as q  # noqa: E402

if not any(acn_data.DATA.glob("caltech_*.csv.gz")):
    pytest.skip(f"ACN data not found in {acn_data.DATA}", allow_module_level=True)

CAP_KW = 10.0          # 48 A for 10 EVSEs: congested (at most 8 cars at the 6 A minimum)


@pytest.fixture(scope="module")
def window() -> tuple:
    start, sessions, _ = acn_data.load("caltech", days=1)
    picked: list[str] = []
    for s in sessions:
        if s.station_id not in picked and len(picked) < 10:
            picked.append(s.station_id)
    half_day = [s for s in sessions if s.station_id in picked and s.arrival < q.PERIODS_PER_DAY // 2]
    assert len(half_day) >= 8
    return start, half_day


@pytest.fixture(scope="module")
def rows(window: tuple) -> dict[str, q.Row]:
    start, sessions = window
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        out = {name: q.simulate(name, sessions, start, CAP_KW) for name in ("llf", "edf", "ours")}
    out["offline"] = q.offline(sessions, CAP_KW)
    return out


def test_ours_and_llf_run_within_the_cap(rows: dict[str, q.Row]) -> None:
    for name in ("ours", "llf", "edf"):
        r = rows[name]
        assert r.calls > 0 and r.delivered_kwh > 0, name
        assert r.violations == 0, (name, r.peak_kw)
        assert r.peak_kw <= CAP_KW + q.VIOLATION_TOL_KW, name
    assert rows["ours"].plan_mean_ms is not None


def test_offline_optimum_bounds_every_online_algorithm(rows: dict[str, q.Row]) -> None:
    best = rows["offline"].delivered_kwh
    for name in ("ours", "llf", "edf"):
        assert rows[name].delivered_kwh <= best + 1e-6, (name, rows[name].delivered_kwh, best)


def test_offline_min_peak_is_the_smallest_cap_that_delivers_everything(window: tuple) -> None:
    _, sessions = window
    deliverable = q.offline_lp(sessions, None)[0].sum()
    peak = q.offline_min_peak(sessions)
    assert q.offline_lp(sessions, peak * (1 + 1e-9))[0].sum() == pytest.approx(deliverable, abs=1e-6)
    assert q.offline_lp(sessions, peak * 0.95)[0].sum() < deliverable - 1e-3


def test_schedulers_see_the_estimate_not_the_actual_departure(window: tuple) -> None:
    start, sessions = window
    est = {s.session_id: s.est_departure for s in sessions}
    seen: list[tuple[int, int, int]] = []

    class Spy(q.BaseAlgorithm):
        def __init__(self) -> None:
            super().__init__()
            self.max_recompute = 1

        def schedule(self, active_sessions):  # noqa: ANN001, ANN202
            now = self.interface.current_time
            seen.extend((s.departure, s.estimated_departure, q.known_departure(est[s.session_id], now))
                        for s in active_sessions)
            return {}

    net = q.build_network(acn_data.stations(sessions), CAP_KW)
    sim = q.acnsim.Simulator(net, Spy(), q.build_events(sessions), start, period=q.PERIOD_MIN, verbose=False,
                             interface_type=q.KnownInterface)
    sim.run()
    assert seen and all(dep == e == known for dep, e, known in seen)


def test_forecast_days_set_how_far_back_the_forecast_reads() -> None:
    """--forecast-days used to load that much history while the forecast kept its own 14-day lookback, so
    ``--forecast-days 28`` measured the 14-day forecast. Three weekdays of history 17-19 days before a Monday:
    a 14-day lookback sees none of them, a 28-day one forecasts from them."""
    from datetime import datetime, timedelta

    monday = datetime(2019, 6, 17, 6, tzinfo=q.SITE_TZ)
    past = [q.PastSession(monday - timedelta(days=d) + timedelta(hours=4),
                          monday - timedelta(days=d) + timedelta(hours=8), 10_000) for d in (17, 18, 19)]
    saved = q.HISTORY[:], q.FORECAST_DAYS[0]
    try:
        q.HISTORY[:] = past
        q.FORECAST_DAYS[0] = 14
        assert q.history_forecast(monday, monday + timedelta(hours=24)) == ()
        q.FORECAST_DAYS[0] = 28
        (group,) = q.history_forecast(monday, monday + timedelta(hours=24))
        assert group.energy_wh == pytest.approx(10_000) and group.cars == pytest.approx(1.0)
    finally:
        q.HISTORY[:], q.FORECAST_DAYS[0] = saved


def test_oracle_groups_pool_the_real_cars_as_the_history_forecast_does() -> None:
    """--forecast oracle-groups measures what grouping alone costs: the window's real cars, pooled per hour of
    arrival (energy summed, one car each, the energy-weighted stay), or per arrival hour and departure bin."""
    from datetime import datetime, timedelta

    now = datetime(2019, 5, 6, 6, tzinfo=q.SITE_TZ)
    at = lambda h: now + timedelta(hours=h)  # noqa: E731
    cars = [q.PastSession(at(1.1), at(3.1), 6_000), q.PastSession(at(1.5), at(9.5), 18_000),
            q.PastSession(at(2.2), at(5.2), 4_000), q.PastSession(at(-1), at(3), 9_000)]   # the last one is here
    saved = q.ORACLE_RULE[0], q.ORACLE_DEP_BIN_S[0]
    try:
        q.ORACLE_RULE[0] = "groups"
        first, second = q.oracle_arrivals(cars, now, at(24))
        assert first.cars == 2 and first.energy_wh == pytest.approx(24_000)
        assert first.arrival == at(1.3)
        assert (first.departure - first.arrival) == timedelta(hours=(2 * 6 + 8 * 18) / 24)   # energy-weighted
        assert second.cars == 1 and second.energy_wh == pytest.approx(4_000) and second.departure == at(5.2)
        q.ORACLE_DEP_BIN_S[0] = 3 * 3600.0           # leaving before and after 09:00 apart
        assert [g.cars for g in q.oracle_arrivals(cars, now, at(24))] == [1, 1, 1]
    finally:
        q.ORACLE_RULE[0], q.ORACLE_DEP_BIN_S[0] = saved
