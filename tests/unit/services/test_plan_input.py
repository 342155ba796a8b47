"""Live state -> SchedulingInput: fixed draws account for what each charger may still draw."""

from datetime import UTC, datetime, timedelta

import pytest

from csms.config import SiteConfig, SmartChargingConfig
from csms.scheduling import ExpectedArrival, SitePlanner, check_limits
from csms.services.plan_input import ActiveSession, EvseState, build_input, evse_key

NOW = datetime(2026, 11, 27, 8, tzinfo=UTC)


def evse(sid: str, *, online: bool = True, accepted: float | None = 0.0, uncontrolled: bool = False) -> EvseState:
    return EvseState(evse_key(sid, 1), sid, 1, 32.0, 6.0, (1, 2, 3), 230.0, online, accepted, uncontrolled)


def session(sid: str, need_wh: float = 30_000, priority: float = 1.0) -> ActiveSession:
    return ActiveSession(f"{sid}/1", evse_key(sid, 1), NOW, 0.0, need_wh, NOW + timedelta(hours=4), None, priority)


def test_offline_and_rejecting_chargers_become_fixed_draws() -> None:
    site = SiteConfig(id="s", grid_limit_kw=50)
    evses = [evse("A"), evse("B", online=False, accepted=16.0), evse("C", uncontrolled=True, accepted=None),
             evse("D", accepted=None)]
    inp = build_input(site, evses, [session("A"), session("B"), session("C")], NOW, SmartChargingConfig(),
                      circuit_of={})
    draws = {f.evse_key: f.current_a for f in inp.fixed_draws}
    assert draws == {"B#1": 16.0, "C#1": 32.0, "D#1": 32.0}  # D is idle but never accepted a TxDefault
    assert [s.session_key for s in inp.sessions] == ["A/1"]


def test_plan_respects_fixed_draws() -> None:
    site = SiteConfig(id="s", grid_limit_kw=30)
    inp = build_input(site, [evse("A"), evse("B", online=False, accepted=20.0)], [session("A")], NOW,
                      SmartChargingConfig(), circuit_of={})
    sch = SitePlanner().plan(inp)
    assert check_limits(inp, sch) == []
    # 30 kW - 20 A x 690 W/A = 16.2 kW left for A -> at most 23.4 A
    assert 0 < sch.current_limit_a("A/1", 0) <= (30_000 - 20 * 690) / 690 + 1e-6


def test_an_unstated_need_is_not_a_cap() -> None:
    site = SiteConfig(id="s", grid_limit_kw=50, default_energy_kwh=20)
    unstated = ActiveSession("A/1", evse_key("A", 1), NOW, 25_000.0, None, None, None, 1.0)
    stated = ActiveSession("B/1", evse_key("B", 1), NOW, 25_000.0, 30_000.0, None, None, 1.0)
    inp = build_input(site, [evse("A"), evse("B")], [unstated, stated], NOW, SmartChargingConfig(), circuit_of={})
    needs = {s.session_key: s.energy_needed_wh for s in inp.sessions}
    assert needs["A/1"] == 32 * 690.0  # past the 20 kWh default, still an hour at 32 A
    assert needs["B/1"] == 5_000.0  # stated: the remainder, a hard cap


def test_a_charger_that_never_connected_does_not_hold_capacity() -> None:
    site = SiteConfig(id="s", grid_limit_kw=50)
    never = EvseState(evse_key("N", 1), "N", 1, 32.0, 6.0, (1, 2, 3), 230.0, False, None, ever_connected=False)
    gone = EvseState(evse_key("G", 1), "G", 1, 32.0, 6.0, (1, 2, 3), 230.0, False, None, ever_connected=True)
    inp = build_input(site, [evse("A"), never, gone], [session("A")], NOW, SmartChargingConfig(), circuit_of={})
    assert {f.evse_key: f.current_a for f in inp.fixed_draws} == {"G#1": 32.0}


def test_the_plan_starts_now_on_the_slot_grid_and_keeps_departures_exact() -> None:
    site = SiteConfig(id="s", grid_limit_kw=50)
    now = datetime(2026, 11, 27, 7, 3, 20, tzinfo=UTC)
    leaving = ActiveSession("A/1", evse_key("A", 1), now, 0.0, 10_000.0, datetime(2026, 11, 27, 7, 14, 46, tzinfo=UTC),
                            None, 1.0)
    later = ActiveSession("B/1", evse_key("B", 1), now, 0.0, 10_000.0, datetime(2026, 11, 27, 9, 40, tzinfo=UTC),
                          None, 1.0)
    inp = build_input(site, [evse("A"), evse("B")], [leaving, later], now, SmartChargingConfig(), circuit_of={})
    assert inp.start == now and inp.first_slot_s == 11 * 60 + 40  # slot 0: now -> 07:15, the next grid boundary
    assert inp.slot_start(1) == datetime(2026, 11, 27, 7, 15, tzinfo=UTC)
    assert inp.slot_start(2) == datetime(2026, 11, 27, 7, 30, tzinfo=UTC)
    deps = {s.session_key: s.departure for s in inp.sessions}
    # Never rounded to the grid; planned with the margin for early leavers: 15 % of the time left, <= 30 min.
    assert deps == {"A/1": leaving.departure - (leaving.departure - now) * 0.15,
                    "B/1": later.departure - min((later.departure - now) * 0.15, timedelta(minutes=30))}
    exact = build_input(site, [evse("A"), evse("B")], [leaving, later], now,
                        SmartChargingConfig(departure_margin_pct=0), circuit_of={})
    assert {s.session_key: s.departure for s in exact.sessions} == {"A/1": leaving.departure,
                                                                     "B/1": later.departure}
    sch = SitePlanner().plan(inp)
    assert sch.slot_start(1) == inp.slot_start(1)
    assert sch.current_limit_a("A/1", 0) > 0  # leaving within slot 0, it still charges for the seconds left


def test_an_unknown_or_passed_departure_is_unknown_to_the_planner() -> None:
    site = SiteConfig(id="s", grid_limit_kw=50)
    unknown = ActiveSession("A/1", evse_key("A", 1), NOW - timedelta(hours=9), 0.0, None, None, None, 1.0)
    passed = ActiveSession("B/1", evse_key("B", 1), NOW - timedelta(hours=2), 0.0, None, NOW - timedelta(minutes=1),
                           None, 1.0)
    inp = build_input(site, [evse("A"), evse("B")], [unknown, passed], NOW, SmartChargingConfig(), circuit_of={})
    assert [s.departure for s in inp.sessions] == [None, None]  # no invented dwell, no departure in the past


def test_phases_the_car_draws_on_reach_the_planner() -> None:
    site = SiteConfig(id="s", grid_limit_kw=50)
    one = ActiveSession("A/1", evse_key("A", 1), NOW, 0.0, None, None, None, 1.0, ev_phases=1)
    unknown = ActiveSession("B/1", evse_key("B", 1), NOW, 0.0, None, None, None, 1.0)
    inp = build_input(site, [evse("A"), evse("B")], [one, unknown], NOW, SmartChargingConfig(), circuit_of={})
    assert [s.ev_phases for s in inp.sessions] == [1, None]


def test_idle_evses_count_at_their_reserve_or_at_their_max_when_not_controlled() -> None:
    site = SiteConfig(id="s", grid_limit_kw=50)
    evses = [evse("A"), evse("B"), evse("C", accepted=None)]
    inp = build_input(site, evses, [], NOW, SmartChargingConfig(), circuit_of={}, idle_reserve_a={"A#1": 6.0})
    assert {f.evse_key: f.current_a for f in inp.fixed_draws} == {"A#1": 6.0, "C#1": 32.0}


def test_the_arrival_forecast_reaches_the_plan_only_where_it_shaves_below_the_limit() -> None:
    """The site's history becomes the plan's expected arrivals where the plan shaves the peak below the site's
    limit (shave_below_limit); by default the limit is the peak's floor and the planner would ignore them
    (scheduling.expected.applies), so they are not computed."""
    from csms.scheduling.forecast import PastSession

    # NOW is a Friday 08:00 UTC: three weekdays before it, a car from 10:00 to 12:00 taking 10 kWh (5 kW).
    history = [PastSession(NOW - timedelta(days=d) + timedelta(hours=2), NOW - timedelta(days=d) + timedelta(hours=4),
                           10_000) for d in (1, 2, 3)]
    site = SiteConfig(id="s", grid_limit_kw=50)

    def expected(cfg: SmartChargingConfig) -> tuple[ExpectedArrival, ...]:
        inp = build_input(site, [evse("A")], [session("A")], NOW, cfg, circuit_of={}, history=history)
        return inp.expected_arrivals

    shaving = expected(SmartChargingConfig(shave_below_limit=True))
    assert [(x.arrival, x.departure, x.energy_wh, x.cars) for x in shaving] == [
        (NOW + timedelta(hours=2), NOW + timedelta(hours=4), 10_000, 1.0)]
    assert expected(SmartChargingConfig()) == ()
    assert expected(SmartChargingConfig(shave_below_limit=True, arrival_forecast_days=0)) == ()
    # Four more days with four such cars each: the three one-car days are quiet (under half the median's four
    # cars) and left out by default, so the forecast is the busy days' four cars, not 19 cars over 7 days.
    history += [PastSession(NOW - timedelta(days=d) + timedelta(hours=2),
                            NOW - timedelta(days=d) + timedelta(hours=4), 10_000)
                for d in (4, 7, 8, 9) for _ in range(4)]
    (busy,) = expected(SmartChargingConfig(shave_below_limit=True))
    assert (busy.energy_wh, busy.cars) == (40_000, 4.0)
    (averaged,) = expected(SmartChargingConfig(shave_below_limit=True, arrival_forecast_quiet_fraction=0))
    assert (averaged.energy_wh, averaged.cars) == (pytest.approx(190_000 / 7), pytest.approx(19 / 7))


def test_the_peak_reserve_stands_in_for_a_forecast_the_site_does_not_have_yet() -> None:
    """Where the plan shaves the peak and there is no forecast (a new site: too few days of history), the
    configured share of the paid peak is kept free for unforeseen cars; with a forecast, or where the site's
    limit is the peak's floor, it is 0. Read from the network the planner builds: the planner decides."""
    from csms.scheduling.forecast import PastSession
    from csms.scheduling.network import compile_network, topology_of

    history = [PastSession(NOW - timedelta(days=d) + timedelta(hours=2), NOW - timedelta(days=d) + timedelta(hours=4),
                           10_000) for d in (1, 2, 3)]

    def reserve_kw(cfg: SmartChargingConfig, hist: list[PastSession]) -> float:
        site = SiteConfig(id="s", grid_limit_kw=50)
        inp = build_input(site, [evse("A"), evse("B")], [session("A")], NOW, cfg, circuit_of={}, history=hist,
                          peak_floor_kw=20.0)
        return compile_network(inp, topology_of(inp)).reserve_kw

    shaving = SmartChargingConfig(shave_below_limit=True)
    # 10 % of the paid peak, 3 % of idle B's power (32 A x 230 V x 3), as shipped
    shipped = pytest.approx(0.10 * 20.0 + 0.03 * 32 * 230 * 3 / 1000)
    assert reserve_kw(shaving, []) == shipped
    assert reserve_kw(shaving, history[:2]) == shipped             # two days: still no forecast
    assert reserve_kw(shaving, history) == 0.0                     # a forecast: no reserve
    assert reserve_kw(SmartChargingConfig(), []) == 0.0            # the limit is the floor
    assert reserve_kw(SmartChargingConfig(shave_below_limit=True, peak_reserve_without_forecast_pct=0,
                                          peak_reserve_idle_evse_pct=0), []) == 0.0


def test_a_forecast_stay_past_the_horizon_counts_what_the_evse_cannot_deliver_after_it() -> None:
    """An expected car whose stay runs past the horizon's end counts only the energy it could not take after
    the end at the site's EVSE power (here 32 A x 230 V x 3 = 22.08 kW): the rest can wait for later plans."""
    from csms.scheduling.forecast import PastSession

    # Three weekdays before NOW (Friday 08:00 UTC): a car from 07:00 for 3 h taking 60 kWh. With the 24 h
    # horizon it comes back tomorrow at 07:00, one hour before the horizon's end, two hours after it.
    history = [PastSession(NOW - timedelta(days=d, hours=1), NOW - timedelta(days=d, hours=1) + timedelta(hours=3),
                           60_000) for d in (1, 2, 3)]
    site = SiteConfig(id="s", grid_limit_kw=50)
    inp = build_input(site, [evse("A")], [session("A")], NOW, SmartChargingConfig(shave_below_limit=True),
                      circuit_of={}, history=history)
    assert inp.end == NOW + timedelta(hours=24)
    (tomorrow,) = inp.expected_arrivals
    assert tomorrow.arrival == NOW + timedelta(hours=23) and tomorrow.departure == inp.end
    assert tomorrow.energy_wh == pytest.approx(60_000 - 22_080 * 2)


@pytest.mark.parametrize("learned", ["auto", True, False])
def test_the_learned_margin_applies_where_the_plan_has_a_forecast(learned: bool | str) -> None:
    """A site whose drivers kept their word (learned margin 0). With ``auto`` the stated departure is planned as
    stated where the plan has a forecast of the cars to come (a site that shaves its peak, with history); the
    configured margin (15 % of the 4 h left, at most 30 min) stays where the site's own limit is the peak's
    floor (there its early finish serves more drivers in full) and where there is no history yet (there it
    keeps the peak down). ``true`` learns everywhere, ``false`` nowhere."""
    from csms.scheduling.forecast import PastSession

    stated = NOW + timedelta(hours=4)
    configured = stated - timedelta(minutes=30)
    site = SiteConfig(id="s", grid_limit_kw=50)
    # NOW is a Friday 08:00 UTC: three weekdays before it, a car from 10:00 to 12:00 taking 10 kWh.
    history = [PastSession(NOW - timedelta(days=d) + timedelta(hours=2), NOW - timedelta(days=d) + timedelta(hours=4),
                           10_000) for d in (1, 2, 3)]

    def departure(learned_margin_s: float | None, past: list[PastSession], **cfg: object) -> datetime | None:
        inp = build_input(site, [evse("A")], [session("A")], NOW,
                          SmartChargingConfig(departure_margin_learned=learned, **cfg), circuit_of={},
                          learned_margin_s=learned_margin_s, history=past)
        (s,) = inp.sessions
        assert bool(inp.expected_arrivals) == (bool(past) and cfg.get("shave_below_limit", False))
        return s.departure

    assert departure(0.0, history) == (stated if learned is True else configured)             # under the limit
    assert departure(0.0, history, shave_below_limit=True) == (configured if learned is False else stated)
    assert departure(0.0, [], shave_below_limit=True) == (stated if learned is True else configured)  # no history
    # Too little history of stated departures (None): the configured margin in every mode.
    assert departure(None, history, shave_below_limit=True) == configured
