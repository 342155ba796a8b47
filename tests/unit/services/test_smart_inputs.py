"""What a session is planned with: stated needs merged field by field, a learned dwell, and the rate the car
really draws (phases included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.config import parse_config
from csms.domain.enums import ChargingState
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import ChargingNeeds
from csms.services.limits import Piecewise
from csms.services.smart.control import ControlState
from csms.services.smart.dwell import dwell_quantile_s
from csms.services.smart.live import Live
from csms.services.smart.snapshot import merge_needs

T0 = datetime(2026, 11, 27, 8, tzinfo=UTC)


def needs(minutes: int, source: str = "ev", **kw: object) -> ChargingNeeds:
    return ChargingNeeds(StationId("CP"), EvseRef(1), T0 + timedelta(minutes=minutes), source=source, **kw)  # type: ignore[arg-type]


def test_needs_merge_field_by_field_latest_first() -> None:
    ev = needs(0, energy_amount_wh=30_000.0, departure_time=T0 + timedelta(hours=8), ev_max_current_a=16.0,
               ev_phases=1)
    driver = needs(5, "driver", departure_time=T0 + timedelta(hours=2))  # the driver only sets a departure
    m = merge_needs([ev, driver])
    assert (m.energy_wh, m.departure, m.departure_source, m.ev_max_current_a, m.ev_phases) == (
        30_000.0, T0 + timedelta(hours=2), "driver", 16.0, 1)
    again = merge_needs([ev, driver, needs(9, energy_amount_wh=12_000.0)])  # the EV restates its energy only
    assert (again.energy_wh, again.departure_source) == (12_000.0, "driver")
    assert merge_needs([]).departure is None


def test_a_learned_dwell_is_a_low_quantile_of_enough_real_stays() -> None:
    hours = [h * 3600.0 for h in (1, 2, 3, 4, 5, 6)]
    assert dwell_quantile_s(hours, 0.2, 5) == 2 * 3600.0  # 20 % of the stays were shorter
    assert dwell_quantile_s(hours[:4], 0.2, 5) is None  # too little history: unknown
    assert dwell_quantile_s([*hours, 30.0, 60.0], 0.2, 5) == 2 * 3600.0  # failed starts are not stays


def state(phases: int = 3) -> ControlState:
    cfg = parse_config(f"chargers: [{{id: CP, phases: {phases}, max_current_a: 32}}]", env={})
    return ControlState(Live(cfg))


def allowed(s: ControlState, key: str, a: float) -> None:
    ctl = s.ctl(key)
    ctl.accepted = Piecewise.constant(a, T0 - timedelta(hours=1), T0 + timedelta(days=1))
    ctl.accepted_at = T0 - timedelta(minutes=1)


def test_rate_feedback_counts_a_one_phase_car_on_its_phase() -> None:
    s = state()
    allowed(s, "CP#1", 32.0)
    s.measured["CP#1"] = (T0, 1_380.0)  # 1,380 W
    assert s.ev_limit_a("CP#1", None, T0) == 6.0  # read over 3 phases: 2 A, planned at the 6 A minimum
    s.ev_phases["CP#1"] = 1
    assert s.watts_per_amp("CP#1") == 230.0
    assert s.ev_limit_a("CP#1", None, T0) == 7.0  # on one phase it draws 6 A: planned at 6 + 1 A
    s.measured["CP#1"] = (T0, 7_360.0)  # 32 A on its one phase: at its limit, no cap
    assert s.ev_limit_a("CP#1", None, T0) is None


def test_rate_feedback_cap_holds_while_the_car_draws_just_under_it() -> None:
    s = state()
    allowed(s, "CP#1", 32.0)
    s.measured["CP#1"] = (T0, 10.0 * 690)
    cap = s.ev_limit_a("CP#1", None, T0)
    assert cap == 11.0
    s.caps_used["CP#1"] = cap  # the plan used it, and the charger now allows 11 A
    allowed(s, "CP#1", 11.0)
    assert s.ev_limit_a("CP#1", None, T0) == 11.0  # drawing 10 A under an 11 A cap: keep it, no flip-flop
    s.measured["CP#1"] = (T0, 10.8 * 690)  # it takes what it is allowed: it may want more, lift
    assert s.ev_limit_a("CP#1", None, T0) is None


def test_rate_feedback_cap_holds_until_the_car_is_measured_under_the_limit_it_was_sent() -> None:
    """The plan that used a cap sends the car a profile; until a sample taken after the car accepted it, the
    next plan (any other car's meter value) keeps that cap. Dropping it planned the car at its full limit
    again, the next sample capped it again: a re-plan and two profiles per session per meter value in the
    load run (issue 10)."""
    s = state()
    allowed(s, "CP#1", 32.0)
    s.measured["CP#1"] = (T0, 10.0 * 690)
    cap = s.ev_limit_a("CP#1", None, T0)
    assert cap == 11.0
    s.caps_used["CP#1"] = cap  # the plan used it and sent 11 A, which the charger accepted after that sample
    ctl = s.ctl("CP#1")
    ctl.accepted = Piecewise.constant(11.0, T0, T0 + timedelta(days=1))
    ctl.accepted_at = T0 + timedelta(seconds=1)
    later = T0 + timedelta(seconds=2)
    assert s.ev_limit_a("CP#1", None, later) == 11.0  # no sample under the 11 A yet: the cap stands
    assert s.ev_limit_a("CP#1", 8.0, later) == 8.0  # a lower stated limit still wins
    assert not s.cap_moved("CP#1", later)  # so no re-plan either
    s.caps_used["CP#1"] = None  # never capped: a sample older than the limit caps nothing
    assert s.ev_limit_a("CP#1", None, later) is None


def test_a_stated_need_lifts_the_full_mark() -> None:
    s = state()
    s.ev_full["CP#1"] = True
    s.measured["CP#1"] = (T0, 0.0)
    s.note_needs("CP#1")
    assert "CP#1" not in s.ev_full and "CP#1" not in s.measured


def test_suspended_ev_means_full_only_while_current_is_offered() -> None:
    """A charger may report SuspendedEV as a transaction starts, before the car had anything to draw; at 0 A
    offered that must not mark the car full (the plan would then never offer it current again)."""
    s = state()
    allowed(s, "CP#1", 0.0)  # a full site: the idle EVSE's TxDefault was 0 A when the car arrived
    assert s.note_charging_state("CP#1", ChargingState.SUSPENDED_EV, T0) is False
    assert not s.ev_full.get("CP#1")
    allowed(s, "CP#1", 16.0)  # offered 16 A and still not drawing: full
    assert s.note_charging_state("CP#1", ChargingState.SUSPENDED_EV, T0) is True
    assert s.ev_full["CP#1"]
    assert s.note_charging_state("CP#1", ChargingState.SUSPENDED_EVSE, T0) is False and s.ev_full["CP#1"]
    assert s.note_charging_state("CP#1", ChargingState.CHARGING, T0) is True and not s.ev_full["CP#1"]
    # An EVSE that never accepted a limit from us may offer anything: SuspendedEV there means full.
    assert s.note_charging_state("CP#2", ChargingState.SUSPENDED_EV, T0) is True
