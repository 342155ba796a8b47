"""The fallback path: forced, or when the solver fails, plan() still returns a schedule within every limit."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from csms.scheduling import (
    BaseLoad, CircuitSpec, FixedDraw, SchedulingInput, SitePlanner, SolverOptions, check_limits, edf, equal_share,
    llf, uncontrolled,
)


class BrokenSolver:
    """A persistent-solver stand-in that raises while the model is loaded, as appsi-HiGHS does on infeasible
    models (#2920)."""

    def available(self) -> bool:
        return True

    def _reinit(self) -> None:
        pass

    def add_block(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("HiGHS exploded")


class MissingSolver(BrokenSolver):
    def available(self) -> bool:
        return False


def tricky_site(b: SimpleNamespace) -> SchedulingInput:
    evses = [b.evse("A", phases=(1, 2, 3)), b.evse("B", phases=(2,)), b.evse("C", phases=(3,)),
             b.evse("D", phases=(1,)), b.evse("E", phases=(2, 3, 1), min_current_a=8)]
    circuits = [CircuitSpec("site", max_current_a=50, max_power_w=25_000, evse_keys=("A",),
                            current_limit_a_by_slot=(50, 50, 20, 50)),
                CircuitSpec("left", parent="site", max_current_a=20, evse_keys=("B", "C")),
                CircuitSpec("right", parent="site", max_power_w=9_000, evse_keys=("D", "E"))]
    sessions = [b.session("a", "A", 30.0, dep=8), b.session("b", "B", 10.0, dep=6, priority=2.0),
                b.session("c", "C", 4.0, dep=5), b.session("e", "E", 12.0, arr=1, dep=8, max_current_a=16)]
    return b.site(evses, sessions, circuits=circuits, fixed_draws=(FixedDraw("D", 10.0),),
                  base_loads=(BaseLoad("left", (0.0, 5.0, 2.0)),))


@pytest.mark.parametrize("planner", [
    SitePlanner(solver_factory=BrokenSolver),
    SitePlanner(solver_factory=MissingSolver),
    SitePlanner(SolverOptions(force_fallback=True)),
], ids=["solver-raises", "solver-missing", "forced"])
def test_fallback_keeps_hard_limits(planner: SitePlanner, b: SimpleNamespace) -> None:
    inp = tricky_site(b)
    s = planner.plan(inp)
    assert s.status == "fallback" and s.reason
    assert "exploded" in s.reason or "available" in s.reason or "forced" in s.reason
    assert check_limits(inp, s) == []
    assert s.objective_terms["delivered_kwh"] > 0


def test_planner_recovers_after_a_failure(b: SimpleNamespace) -> None:
    calls = {"n": 0}

    def flaky() -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            return BrokenSolver()
        from pyomo.contrib.solver.common.factory import SolverFactory
        return SolverFactory("highs")

    planner = SitePlanner(solver_factory=flaky)
    inp = tricky_site(b)
    assert planner.plan(inp).status == "fallback"
    assert planner.plan(inp).status == "optimal"


def test_tiny_time_limit_never_raises(b: SimpleNamespace) -> None:
    s = SitePlanner(SolverOptions(time_limit_s=1e-9)).plan(tricky_site(b))
    assert s.status in ("optimal", "fallback")
    assert check_limits(tricky_site(b), s) == []


@pytest.mark.parametrize("heuristic", [equal_share, edf, llf])
def test_baselines_keep_hard_limits(heuristic: Any, b: SimpleNamespace) -> None:
    inp = tricky_site(b)
    assert check_limits(inp, heuristic(inp)) == []


def test_check_limits_catches_uncontrolled_overload(b: SimpleNamespace) -> None:
    inp = tricky_site(b)
    kinds = {v.kind for v in check_limits(inp, uncontrolled(inp))}
    assert "limit_current" in kinds or "limit_power" in kinds


def test_check_limits_catches_session_rule_breaks(b: SimpleNamespace) -> None:
    import dataclasses

    inp = b.site([b.evse("A")], [b.session("s", "A", 1.0, dep=2, arr=1)], limit_a=32, horizon=4)
    good = equal_share(inp)
    plan = good.sessions[0]
    bad = dataclasses.replace(good, sessions=(dataclasses.replace(plan, current_a=(3.0, 40.0, 0.0, 10.0)),))
    kinds = sorted(v.kind for v in check_limits(inp, bad))
    assert kinds == ["energy", "limit_current", "max_current", "min_current", "window", "window"]


def test_a_plan_leaves_the_process_output_alone(b: SimpleNamespace) -> None:
    """Pyomo's solve and set_instance point file descriptors 1 and 2 at a pipe of their own while they run
    (``capture_output(capture_fd=True)``): in the CSMS every log line other threads wrote meanwhile was lost, and
    two planner threads at once raised in Pyomo's reader threads. A planner must leave both alone."""
    def targets() -> tuple[int, int]:
        return os.fstat(1).st_ino, os.fstat(2).st_ino

    before, seen, done = targets(), set(), threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.add(targets())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(3):                      # a new planner each time: a cold load and solve
            assert SitePlanner().plan(tricky_site(b)).status == "optimal"
    finally:
        done.set()
        watcher.join()
    assert seen == {before}
