"""Live state -> SchedulingInput: fixed draws account for what each charger may still draw."""

from datetime import UTC, datetime, timedelta

from csms.config import SiteConfig, SmartChargingConfig
from csms.scheduling import SitePlanner, check_limits
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


def test_a_car_leaving_within_the_current_slot_still_charges() -> None:
    site = SiteConfig(id="s", grid_limit_kw=50)
    now = datetime(2026, 11, 27, 7, 3, tzinfo=UTC)
    leaving = ActiveSession("A/1", evse_key("A", 1), now, 0.0, 10_000.0, datetime(2026, 11, 27, 7, 14, 46, tzinfo=UTC),
                            None, 1.0)
    inp = build_input(site, [evse("A")], [leaving], now, SmartChargingConfig(), circuit_of={})
    assert inp.sessions[0].departure == datetime(2026, 11, 27, 7, 15, tzinfo=UTC)
    assert SitePlanner().plan(inp).current_limit_a("A/1", 0) > 0
