"""Table-driven behaviour of ``plan()``: each case is an input and a claim about the optimal schedule."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest

from csms.scheduling import (
    BaseLoad, CircuitSpec, FixedDraw, ObjectiveWeights, Schedule, SchedulingInput, check_limits, plan,
)

Case = Callable[[SimpleNamespace], tuple[SchedulingInput, Callable[[Schedule], None]]]


def amps(s: Schedule, key: str) -> list[float]:
    return [round(a, 6) for a in s.session(key).current_a]


def kwh(s: Schedule, key: str) -> float:
    return s.session(key).energy_wh / 1000.0


def single_evse(b: SimpleNamespace):
    inp = b.site([b.evse("A")], [b.session("s", "A", b.kwh_per_slot(32) * 3, dep=6)], limit_a=63)

    def claim(s: Schedule) -> None:
        assert amps(s, "s") == [32, 32, 32, 0, 0, 0, 0, 0]          # full rate, as early as possible
    return inp, claim


def two_evs_share_a_limit(b: SimpleNamespace):
    need = b.kwh_per_slot(16) * 6
    inp = b.site([b.evse("A"), b.evse("B")], [b.session("a", "A", need, dep=8), b.session("b", "B", need, dep=8)],
                 limit_a=32)

    def claim(s: Schedule) -> None:
        assert kwh(s, "a") == pytest.approx(need) and kwh(s, "b") == pytest.approx(need)
        assert all(x + y <= 32 + 1e-6 for x, y in zip(amps(s, "a"), amps(s, "b")))
    return inp, claim


def priority_wins(b: SimpleNamespace):
    need = b.kwh_per_slot(32) * 4
    inp = b.site([b.evse("A"), b.evse("B")],
                 [b.session("lo", "A", need, dep=4), b.session("hi", "B", need, dep=4, priority=2.0)], limit_a=32)

    def claim(s: Schedule) -> None:
        assert kwh(s, "hi") == pytest.approx(need)
        assert kwh(s, "lo") == pytest.approx(0.0)
    return inp, claim


def earlier_departure_served_first(b: SimpleNamespace):
    need = b.kwh_per_slot(32) * 4
    inp = b.site([b.evse("A"), b.evse("B")],
                 [b.session("late", "A", need, dep=8), b.session("early", "B", need, dep=4)], limit_a=32)

    def claim(s: Schedule) -> None:
        assert amps(s, "early")[:4] == [32] * 4
        assert kwh(s, "late") == pytest.approx(need) and kwh(s, "early") == pytest.approx(need)
    return inp, claim


def price_shifts_to_cheap_slots(b: SimpleNamespace):
    inp = b.site([b.evse("A")], [b.session("s", "A", b.kwh_per_slot(32) * 2, dep=8)], limit_a=32,
                 price_per_kwh=(0.40, 0.40, 0.40, 0.40, 0.10, 0.10, 0.40, 0.40))

    def claim(s: Schedule) -> None:
        assert amps(s, "s") == [0, 0, 0, 0, 32, 32, 0, 0]
    return inp, claim


def phase_rotation_per_phase_circuit(b: SimpleNamespace):
    # Three single-phase EVSEs on one 16 A/phase circuit: two land on L1, one on L2 (rotated wiring).
    evses = [b.evse("A", phases=(1,)), b.evse("B", phases=(1,)), b.evse("C", phases=(2,))]
    circuits = [CircuitSpec("site", max_current_a=100, evse_keys=()),
                CircuitSpec("row", parent="site", max_current_a=16, evse_keys=("A", "B", "C"))]
    sessions = [b.session(k.lower(), k, 100.0, dep=4) for k in "ABC"]
    inp = b.site(evses, sessions, circuits=circuits, horizon=4)

    def claim(s: Schedule) -> None:
        for t in range(4):
            assert amps(s, "a")[t] + amps(s, "b")[t] <= 16 + 1e-6
            assert amps(s, "c")[t] == 16                              # alone on L2
        assert kwh(s, "a") == pytest.approx(kwh(s, "b"), abs=0.01)   # L1 shared fairly over the horizon
    return inp, claim


def three_phase_rotation(b: SimpleNamespace):
    # A three-phase EVSE and a single-phase one wired to L3: L3 carries both. Priority is per kWh, and an amp
    # on L3 gives A three times the kWh it gives B, so A (priority 1) beats B (priority 2) for L3.
    evses = [b.evse("A", phases=(1, 2, 3)), b.evse("B", phases=(3,))]
    inp = b.site(evses, [b.session("a", "A", 100.0, dep=2), b.session("b", "B", 100.0, dep=2, priority=2.0)],
                 limit_a=32, horizon=2)

    def claim(s: Schedule) -> None:
        assert all(x + y <= 32 + 1e-6 for x, y in zip(amps(s, "a"), amps(s, "b")))
        assert amps(s, "a") == [32, 32] and amps(s, "b") == [0, 0]
    return inp, claim


def base_load_reduces_headroom(b: SimpleNamespace):
    inp = b.site([b.evse("A")], [b.session("s", "A", 100.0, dep=4)], limit_a=32, horizon=4,
                 base_loads=(BaseLoad("site", (20.0, 0.0, 0.0)),))

    def claim(s: Schedule) -> None:
        assert amps(s, "s") == [12, 12, 12, 12]
        assert s.binding_limit == ("site:L1",) * 4
    return inp, claim


def time_varying_limit(b: SimpleNamespace):
    circuits = [CircuitSpec("site", max_current_a=32, evse_keys=("A",), current_limit_a_by_slot=(32, 32, 0, 10, 32))]
    inp = b.site([b.evse("A")], [b.session("s", "A", 100.0, dep=6)], circuits=circuits, horizon=6)

    def claim(s: Schedule) -> None:
        assert amps(s, "s") == [32, 32, 0, 10, 32, 32]
    return inp, claim


def min_current_is_zero_or_more(b: SimpleNamespace):
    # 16 A for three cars with a 6 A minimum: at most two can charge in any slot.
    evses = [b.evse(k) for k in "ABC"]
    inp = b.site(evses, [b.session(k.lower(), k, 100.0, dep=8) for k in "ABC"], limit_a=16)

    def claim(s: Schedule) -> None:
        for t in range(8):
            slot = [amps(s, k)[t] for k in "abc"]
            assert all(a == 0 or a >= 6 - 1e-6 for a in slot)
            assert sum(slot) <= 16 + 1e-6
    return inp, claim


def fixed_draw_respected(b: SimpleNamespace):
    evses = [b.evse("A"), b.evse("B"), b.evse("C")]
    inp = b.site(evses, [b.session("a", "A", 100.0, dep=4), b.session("c", "C", 100.0, dep=4)], limit_a=32,
                 horizon=4, fixed_draws=(FixedDraw("B", 20.0),))

    def claim(s: Schedule) -> None:
        for t in range(4):
            assert amps(s, "a")[t] + amps(s, "c")[t] <= 12 + 1e-6
    return inp, claim


def infeasible_demand_by_priority(b: SimpleNamespace):
    # Room for 8 slot-loads of 32 A; demand is 3 x 4 slot-loads. Priorities 3 > 2 > 1 decide who gets it.
    need = b.kwh_per_slot(32) * 4
    evses = [b.evse(k) for k in "ABC"]
    sessions = [b.session("p1", "A", need, dep=8, priority=1.0), b.session("p3", "B", need, dep=8, priority=3.0),
                b.session("p2", "C", need, dep=8, priority=2.0)]
    inp = b.site(evses, sessions, limit_a=32)

    def claim(s: Schedule) -> None:
        assert kwh(s, "p3") == pytest.approx(need) and kwh(s, "p2") == pytest.approx(need)
        assert kwh(s, "p1") == pytest.approx(0.0, abs=1e-6)
        assert s.status == "optimal"
    return inp, claim


def equal_drivers_equal_shares(b: SimpleNamespace):
    need = b.kwh_per_slot(32) * 8
    evses = [b.evse(k) for k in "ABC"]
    inp = b.site(evses, [b.session(k.lower(), k, need, dep=8) for k in "ABC"], limit_a=32)

    def claim(s: Schedule) -> None:
        got = [kwh(s, k) for k in "abc"]
        assert sum(got) == pytest.approx(b.kwh_per_slot(32) * 8)
        assert max(got) - min(got) <= 0.05 * need / 3
    return inp, claim


def overloaded_by_base_load_plans_zero(b: SimpleNamespace):
    inp = b.site([b.evse("A")], [b.session("s", "A", 100.0, dep=4)], limit_a=32, horizon=4,
                 base_loads=(BaseLoad("site", (40.0, 0.0, 0.0)),))

    def claim(s: Schedule) -> None:
        assert amps(s, "s") == [0, 0, 0, 0]
        assert "site:L1" in s.overloaded_limits
    return inp, claim


def future_arrival_and_ev_limit(b: SimpleNamespace):
    inp = b.site([b.evse("A")], [b.session("s", "A", 100.0, dep=5, arr=2, max_current_a=16)], limit_a=32)

    def claim(s: Schedule) -> None:
        assert amps(s, "s") == [0, 0, 16, 16, 16, 0, 0, 0]
    return inp, claim


def power_limit_in_watts(b: SimpleNamespace):
    circuits = [CircuitSpec("site", max_power_w=11_040, evse_keys=("A", "B"))]     # 16 A x 3 x 230 V
    evses = [b.evse("A", phases=(1, 2, 3)), b.evse("B", phases=(1, 2, 3))]
    inp = b.site(evses, [b.session("a", "A", 1000.0, dep=4), b.session("b", "B", 1000.0, dep=4)],
                 circuits=circuits, horizon=4)

    def claim(s: Schedule) -> None:
        for t in range(4):
            assert s.site_power_w[t] <= 11_040 + 1e-3
        assert s.binding_limit[0] == "site:power"
    return inp, claim


CASES: list[Case] = [
    single_evse, two_evs_share_a_limit, priority_wins, earlier_departure_served_first, price_shifts_to_cheap_slots,
    phase_rotation_per_phase_circuit, three_phase_rotation, base_load_reduces_headroom, time_varying_limit, min_current_is_zero_or_more,
    fixed_draw_respected, infeasible_demand_by_priority, equal_drivers_equal_shares,
    overloaded_by_base_load_plans_zero, future_arrival_and_ev_limit, power_limit_in_watts,
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_plan_case(case: Case, b: SimpleNamespace) -> None:
    inp, claim = case(b)
    schedule = plan(inp)
    assert schedule.status == "optimal", schedule.reason
    assert check_limits(inp, schedule) == []
    claim(schedule)


def test_no_sessions_is_all_zero_without_solving(b: SimpleNamespace) -> None:
    inp = b.site([b.evse("A")], [], limit_a=32)
    s = plan(inp)
    assert s.status == "optimal" and s.sessions == () and s.site_power_w == (0.0,) * 8


def test_peak_weight_flattens(b: SimpleNamespace) -> None:
    need = b.kwh_per_slot(16) * 8
    inp = b.site([b.evse("A")], [b.session("s", "A", need, dep=8)], limit_a=32,
                 weights=ObjectiveWeights(peak_per_kw=1.0, shave_below_limit=True))
    s = plan(inp)
    assert amps(s, "s") == [16] * 8
