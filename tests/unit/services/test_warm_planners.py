"""The planner worker keeps at most `planner_warm_evses` EVSEs' models hot and `planner_dormant_evses` dormant
(memory per EVSE bounded, issue 10): the sites planned least recently go dormant first, then are given up; the
site just planned always stays hot. Real HiGHS, through the worker's own request loop."""

from __future__ import annotations

import io
import pickle
from datetime import UTC, datetime

from csms.scheduling import CircuitSpec, EvseSpec, SchedulingInput, SessionSpec, SitePlanner, SolverOptions
from csms.services.planner_worker import HEADER, encode, serve
from csms.services.warm_planners import WarmPlanners

T0 = datetime(2026, 12, 7, 8, tzinfo=UTC)


def site_input(evses: int) -> SchedulingInput:
    keys = tuple(f"e{i}" for i in range(evses))
    return SchedulingInput(start=T0, circuits=(CircuitSpec("site", max_current_a=16.0 * evses, evse_keys=keys),),
                           evses=tuple(EvseSpec(k, 16.0) for k in keys),
                           sessions=(SessionSpec("s", keys[0], 5000.0),), horizon_slots=4)


def answers(requests: list[tuple[object, ...]], warm_evses: int, dormant_evses: int = 0) -> list[tuple[object, ...]]:
    out = io.BytesIO()
    serve(io.BytesIO(b"".join(encode(r) for r in requests)), out, warm_evses, dormant_evses)
    raw, got = out.getvalue(), []
    while raw:
        (n,) = HEADER.unpack(raw[:HEADER.size])
        got.append(pickle.loads(raw[HEADER.size:HEADER.size + n]))
        raw = raw[HEADER.size + n:]
    return got[1:]  # after "ready"


def test_the_worker_keeps_the_most_recent_sites_hot_and_the_rest_dormant() -> None:
    opts = SolverOptions()
    plans = [(i, "plan", site, opts, site_input(3)) for i, site in enumerate(["a", "b", "c", "a"], 1)]
    got = answers(plans, warm_evses=6)
    assert all(ok for _, ok, _, _ in got)
    assert [s["warm_evses"] for *_, s in got] == [3, 6, 6, 6]  # "a" went dormant for "c", "b" for "a"
    assert [s["dormant_evses"] for *_, s in got] == [0, 0, 3, 3]
    assert [s["sites"] for *_, s in got] == [1, 2, 3, 3]
    assert got[-1][3]["builds"] == 1 and got[-1][2].objective_terms["lp_cold"] == 0.0  # from "a"'s dormant LP
    unbounded = answers(plans, warm_evses=0)
    assert [s["warm_evses"] for *_, s in unbounded] == [3, 6, 9, 9]
    assert [s["dormant_evses"] for *_, s in unbounded] == [0, 0, 0, 0]


def test_dormant_models_beyond_their_bound_are_given_up() -> None:
    opts = SolverOptions()
    plans = [(i, "plan", site, opts, site_input(3)) for i, site in enumerate(["a", "b", "c", "d", "a"], 1)]
    got = answers(plans, warm_evses=3, dormant_evses=6)
    assert [s["warm_evses"] for *_, s in got] == [3, 3, 3, 3, 3]
    assert [s["dormant_evses"] for *_, s in got] == [0, 3, 6, 6, 6]  # "a" given up for "d"
    assert [s["sites"] for *_, s in got] == [1, 2, 3, 3, 3]
    assert got[-1][2].objective_terms["lp_cold"] == 1.0  # "a" planned cold again


def test_the_site_just_planned_stays_hot_even_above_the_bound() -> None:
    warm = WarmPlanners(max_evses=10, max_dormant_evses=10)
    big = warm.get("big", SolverOptions(), 50)
    big.plan(site_input(50))
    assert not warm.trim() and "big" in warm and warm.warm_evses == 50
    small = warm.get("small", SolverOptions(), 5)
    small.plan(site_input(5))
    warm.trim()
    assert big.dormant and warm.warm_evses == 5
    assert "big" not in warm  # 50 dormant EVSEs are above the dormant bound: given up
    assert warm.get("big", SolverOptions(), 50) is not big  # planned cold again
    assert isinstance(big, SitePlanner)
