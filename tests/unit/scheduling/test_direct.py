"""The raw-highspy backend solves the same LP as the Pyomo model (cold and after incremental updates)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from types import SimpleNamespace

import pytest

from csms.scheduling import BaseLoad, CircuitSpec, FixedDraw, SchedulingInput, SitePlanner, check_limits
from csms.scheduling.direct import DirectPlanner


def site(b: SimpleNamespace) -> SchedulingInput:
    evses = [b.evse(k, phases=p) for k, p in zip("ABCDE", [(1,), (2,), (3,), (1, 2, 3), (2, 3, 1)])]
    circuits = [CircuitSpec("site", max_current_a=40, max_power_w=24_000, evse_keys=("A", "B")),
                CircuitSpec("row", parent="site", max_current_a=25, evse_keys=("C", "D", "E"))]
    sessions = [b.session("a", "A", 8.0, dep=10), b.session("b", "B", 12.0, dep=14, priority=2.0),
                b.session("d", "D", 20.0, dep=16), b.session("e", "E", 5.0, arr=3, dep=9)]
    return b.site(evses, sessions, circuits=circuits, horizon=16, price_per_kwh=(0.3,) * 8 + (0.1,) * 8,
                  base_loads=(BaseLoad("row", (3.0, 0.0, 1.0)),), fixed_draws=(FixedDraw("C", 6.0),))


def test_direct_matches_pyomo_through_a_sequence_of_changes(b: SimpleNamespace) -> None:
    first = site(b)
    arrival = dataclasses.replace(first, fixed_draws=(), sessions=first.sessions + (b.session("c", "C", 9.0),))
    drop = dataclasses.replace(arrival, circuits=(dataclasses.replace(arrival.circuits[0],
                                                                      current_limit_a_by_slot=(40, 12, 12, 40)),
                                                  arrival.circuits[1]))
    rolled = dataclasses.replace(drop, start=drop.start + timedelta(seconds=drop.slot_s), price_per_kwh=(0.2,))
    pyomo_planner, direct = SitePlanner(), DirectPlanner()
    for inp in (first, arrival, drop, rolled):
        a, d = pyomo_planner.plan(inp), direct.plan(inp)
        assert a.status == d.status == "optimal", (a.reason, d.reason)
        assert d.objective_terms["lp_objective"] == pytest.approx(a.objective_terms["lp_objective"], rel=1e-6)
        assert check_limits(inp, d) == []
    assert direct.builds == 1 and d.objective_terms["lp_cold"] == 0.0
