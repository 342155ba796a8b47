"""Incremental re-planning on the persistent model gives what a cold solve of the same input gives."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from types import SimpleNamespace

import pytest

from csms.scheduling import CircuitSpec, InvalidInput, Schedule, SchedulingInput, SitePlanner, check_limits


def busy_site(b: SimpleNamespace) -> SchedulingInput:
    evses = [b.evse(k, phases=p) for k, p in zip("ABCDEF", [(1,), (2,), (3,), (1, 2, 3), (1,), (2,)])]
    circuits = [CircuitSpec("site", max_current_a=40, max_power_w=20_000, evse_keys=("A", "B")),
                CircuitSpec("row", parent="site", max_current_a=25, evse_keys=("C", "D", "E", "F"))]
    sessions = [b.session("a", "A", 8.0, dep=10), b.session("b", "B", 12.0, dep=14, priority=2.0),
                b.session("d", "D", 20.0, dep=16), b.session("e", "E", 5.0, dep=6)]
    return b.site(evses, sessions, circuits=circuits, horizon=16, price_per_kwh=(0.3,) * 8 + (0.1,) * 8)


def assert_same_plan(warm: Schedule, cold: Schedule) -> None:
    assert warm.status == cold.status == "optimal"
    assert warm.objective_terms["lp_objective"] == pytest.approx(cold.objective_terms["lp_objective"], rel=1e-6)
    for p in cold.sessions:
        assert warm.session(p.session_key).energy_wh == pytest.approx(p.energy_wh, abs=1.0)
        assert warm.session(p.session_key).current_a == pytest.approx(p.current_a, abs=1e-3)


def replan_vs_cold(first: SchedulingInput, second: SchedulingInput) -> tuple[Schedule, Schedule, SitePlanner]:
    planner = SitePlanner()
    planner.plan(first)
    warm = planner.plan(second)
    cold = SitePlanner().plan(second)
    assert check_limits(second, warm) == []
    return warm, cold, planner


def test_replan_after_arrival_equals_cold_solve(b: SimpleNamespace) -> None:
    before = busy_site(b)
    after = dataclasses.replace(before, sessions=before.sessions + (b.session("c", "C", 15.0, dep=12),))
    warm, cold, planner = replan_vs_cold(before, after)
    assert planner.builds == 1 and warm.objective_terms["lp_cold"] == 0.0
    assert_same_plan(warm, cold)


def test_replan_after_departure_and_need_change(b: SimpleNamespace) -> None:
    before = busy_site(b)
    after = dataclasses.replace(before, sessions=(b.session("a", "A", 3.0, dep=10),) + before.sessions[2:])
    assert_same_plan(*replan_vs_cold(before, after)[:2])


def test_replan_after_limit_drop_and_price_change(b: SimpleNamespace) -> None:
    before = busy_site(b)
    circuits = (dataclasses.replace(before.circuits[0], current_limit_a_by_slot=(40, 40, 10, 10, 40)),
                before.circuits[1])
    after = dataclasses.replace(before, circuits=circuits, price_per_kwh=(0.1,) * 8 + (0.3,) * 8)
    warm, cold, _ = replan_vs_cold(before, after)
    assert_same_plan(warm, cold)
    assert warm.site_current_a[2][0] <= 10 + 1e-6


def test_rolling_horizon_forward(b: SimpleNamespace) -> None:
    before = busy_site(b)
    after = dataclasses.replace(before, start=before.start + timedelta(seconds=before.slot_s))
    warm, cold, planner = replan_vs_cold(before, after)
    assert planner.builds == 1
    assert_same_plan(warm, cold)
    # the EV that leaves at slot 6 now has 5 slots left
    assert all(a == 0 for a in warm.session("e").current_a[5:])


def test_unchanged_input_pushes_nothing(b: SimpleNamespace) -> None:
    planner = SitePlanner()
    planner.plan(busy_site(b))
    again = planner.plan(busy_site(b))
    assert again.objective_terms["bounds_pushed"] == 0.0


def test_topology_change_rebuilds(b: SimpleNamespace) -> None:
    planner = SitePlanner()
    first = busy_site(b)
    planner.plan(first)
    extra = dataclasses.replace(first, evses=first.evses + (b.evse("G"),),
                                circuits=(dataclasses.replace(first.circuits[0], evse_keys=("A", "B", "G")),
                                          first.circuits[1]))
    warm = planner.plan(extra)
    assert planner.builds == 2 and warm.objective_terms["lp_cold"] == 1.0
    assert check_limits(extra, warm) == []


@pytest.mark.parametrize("mutate, message", [
    (lambda i, b: dataclasses.replace(i, circuits=(CircuitSpec("site", evse_keys=("A",)),)), "in no circuit"),
    (lambda i, b: dataclasses.replace(i, circuits=i.circuits + (CircuitSpec("x", parent="y"),)), "unknown parent"),
    (lambda i, b: dataclasses.replace(i, sessions=i.sessions + (b.session("z", "A", 1.0),)), "two sessions"),
    (lambda i, b: dataclasses.replace(i, sessions=(b.session("z", "Q", 1.0),)), "unknown EVSE"),
])
def test_invalid_input_raises(mutate, message: str, b: SimpleNamespace) -> None:
    with pytest.raises(InvalidInput, match=message):
        SitePlanner().plan(mutate(busy_site(b), b))
