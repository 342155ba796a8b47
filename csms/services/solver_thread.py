"""One worker thread for every optimizer call in the process.

Pyomo captures solver output by redirecting process-wide file descriptors, so two HiGHS solves in
different threads can deadlock (seen in a fleet scenario: a solve that overran its timeout plus the next
one). All plans - every site's, and booking admission what-ifs - therefore run here, one at a time,
off the event loop so OCPP traffic is never blocked.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from csms.scheduling import Schedule, SchedulingInput, SitePlanner, SolverOptions, plan

from .warm_planners import WarmPlanners

T = TypeVar("T")


class SolverThread:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="planner")
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: object) -> "asyncio.Future[T]":
        """The solve as a future. After shutdown the future is cancelled: a plan requested while the CSMS
        stops ends quietly, instead of "cannot schedule new futures after shutdown" from the pool and a
        "Task exception was never retrieved" at exit."""
        loop = asyncio.get_running_loop()
        if self._closed:
            fut: asyncio.Future[T] = loop.create_future()
            fut.cancel()
            return fut
        return loop.run_in_executor(self._pool, fn, *args)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await self.submit(fn, *args)

    def shutdown(self) -> None:
        # Do not wait: a solve in progress ends at its own HiGHS time limit.
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)


class ThreadPlanners:
    """`smart_charging.planner_processes: 0`: every site's `SitePlanner` in the one solver thread of this
    process (tests, tiny sites). Same interface as `planner_process.PlannerProcesses`."""

    def __init__(self, solver: SolverThread | None = None,
                 planner_factory: Callable[[SolverOptions], SitePlanner] = SitePlanner, warm_evses: int = 0,
                 dormant_evses: int = 0) -> None:
        self.solver = solver or SolverThread()
        self._planners = WarmPlanners(warm_evses, planner_factory, dormant_evses)

    async def start(self) -> None:
        pass

    async def ready(self, site_id: str) -> None:
        pass

    async def ready_all(self) -> None:
        pass

    def submit(self, site_id: str, options: SolverOptions, inp: SchedulingInput,
               started: asyncio.Future[None] | None = None) -> asyncio.Future[Schedule]:
        # All of it in the solver's thread: a planner is not thread-safe, and trimming hibernates planners.
        loop = asyncio.get_running_loop()
        return self.solver.submit(self._plan, site_id, options, inp, loop, started)

    def _plan(self, site_id: str, options: SolverOptions, inp: SchedulingInput, loop: asyncio.AbstractEventLoop,
              started: asyncio.Future[None] | None) -> Schedule:
        if started is not None:
            loop.call_soon_threadsafe(lambda: started.done() or started.set_result(None))
        planner = self._planners.get(site_id, options, len(inp.evses))
        builds = planner.builds
        schedule = planner.plan(inp)
        if self._planners.trim() or planner.builds != builds:
            gc.collect()  # the dropped Pyomo model (reference cycles), in this thread, not on the event loop
        return schedule

    async def what_if(self, site_id: str, inp: SchedulingInput) -> Schedule:
        return await self.solver.run(plan, inp)

    def restart(self, site_id: str) -> None:
        """A thread cannot be killed: its plan ends at HiGHS's own time limit."""

    def stats(self) -> list[Any]:
        return []

    def pids(self) -> list[int]:
        return []

    async def shutdown(self) -> None:
        self.solver.shutdown()
