"""A plan's time limit counts from when its planner starts it, not from the request: a worker (or the solver
thread) runs one plan at a time, so a plan may first wait behind other sites' plans. At 10,000 chargers every
plan that fell back to equal shares had waited so, none had overrun its own limit (docs/performance.md)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from csms.scheduling import SchedulingInput, SitePlanner, SolverOptions
from csms.services.planner_process import PlannerProcesses
from csms.services.smart.overrides import SiteOverrides
from csms.services.smart.planning import Planning
from csms.services.solver_thread import ThreadPlanners

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from bench_plan import fleet  # noqa: E402


async def test_a_worker_starts_each_plan_when_the_one_before_is_answered() -> None:
    procs = PlannerProcesses(1)
    try:
        await procs.ready("a")
        loop = asyncio.get_running_loop()
        started: dict[str, asyncio.Future[None]] = {}
        answered: dict[str, asyncio.Future[object]] = {}
        for site in "abc":        # each a cold plan of 60 EVSEs: a few hundred ms in the worker
            started[site] = loop.create_future()
            answered[site] = procs.submit(site, SolverOptions(), fleet(60, 24, seed=ord(site)), started[site])
        await asyncio.wait_for(started["a"], 30)
        assert not started["b"].done() and not started["c"].done()
        await answered["a"]
        assert started["b"].done() and not started["c"].done() and not answered["b"].done()
        await answered["b"]
        assert started["c"].done()
        assert all(f.result().status == "optimal" for f in answered.values() if f.done())  # type: ignore[attr-defined]
        await answered["c"]
    finally:
        await procs.shutdown()


class _SlowPlanner(SitePlanner):
    """A site whose plans take longer than another site's whole budget (a 1,000-EVSE site's, say)."""

    def plan(self, inp: SchedulingInput):  # type: ignore[no-untyped-def]
        time.sleep(2.5)
        return super().plan(inp)


async def test_a_plan_queued_behind_a_long_one_keeps_its_own_budget() -> None:
    slow_limit_s, quick_limit_s = 30.0, 0.2
    planners = ThreadPlanners(planner_factory=lambda o: _SlowPlanner(o) if o.time_limit_s == slow_limit_s
                              else SitePlanner(o))
    planning = Planning(SolverOptions(time_limit_s=quick_limit_s), planners, SiteOverrides())
    try:
        slow = asyncio.ensure_future(planning.solve(planning.site("big"), fleet(4, 24), time_limit_s=slow_limit_s))
        await asyncio.sleep(0.1)            # the big site's plan runs; the small site's waits behind it
        t0 = time.perf_counter()
        quick = await planning.solve(planning.site("small"), fleet(4, 24, seed=2))
        waited_s = time.perf_counter() - t0
        assert waited_s > 2.0 + quick_limit_s     # longer than its limit and the margin: it would have timed out
        assert quick.status == "optimal", quick.reason
        assert (await slow).status == "optimal"
        assert planning.site("small").fallbacks == 0
    finally:
        await planners.shutdown()
