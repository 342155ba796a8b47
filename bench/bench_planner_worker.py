"""Planner worker benchmark: plan time, memory per EVSE, and the event loop's lag while a site is planned, with
the plans in a worker process (smart_charging.planner_processes: 1) against the solver thread (0), same run.

    .venv/bin/python bench/bench_planner_worker.py [--sizes 100,1000] [--slots 96] [--replans 3]
        [--time-limit-s 5] [--modes process,thread]

For each size and mode: one site of that many EVSEs (bench_plan.fleet: rows of 10, 70 % occupied, a binding
site limit) is planned cold, then re-planned `--replans` times alternating an arrival and a limit drop
(warm). Printed per plan: wall time seen by the event loop, the plan's status (fallback = the time limit
was hit), and the loop's lag (a 10 ms timer, max and mean over the plan). For the process mode also the
worker's RSS after start-up (imports and a warm-up plan) and after the site's plans, and the difference
per EVSE: the memory a site's persistent model costs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_plan import fleet, with_arrival, with_limit_drop  # noqa: E402

from csms.scheduling import SolverOptions  # noqa: E402
from csms.services.planner_process import PlannerProcesses  # noqa: E402
from csms.services.solver_thread import ThreadPlanners  # noqa: E402

PROBE_S = 0.010


async def lag_during(coro: object) -> tuple[object, float, float, float]:
    """Await `coro` while a 10 ms timer measures how late it fires: (result, wall s, max lag s, mean lag s)."""
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            t = loop.time()
            await asyncio.sleep(PROBE_S)
            lags.append(max(0.0, loop.time() - t - PROBE_S))

    task = asyncio.create_task(probe())
    t0 = time.perf_counter()
    result = await coro  # type: ignore[misc]
    wall = time.perf_counter() - t0
    done.set()
    await task
    return result, wall, max(lags, default=0.0), statistics.fmean(lags) if lags else 0.0


async def run(mode: str, n: int, slots: int, replans: int, options: SolverOptions) -> None:
    planners = PlannerProcesses(1) if mode == "process" else ThreadPlanners()
    await planners.ready_all()
    ready_rss = planners.stats()[0].ready_rss_bytes if mode == "process" else 0
    base = fleet(n, slots)
    inputs = [base] + [(with_arrival if i % 2 == 0 else with_limit_drop)(base) for i in range(replans)]
    try:
        for i, inp in enumerate(inputs):
            sched, wall, lag_max, lag_mean = await lag_during(planners.submit("site", options, inp))
            kind = "cold" if i == 0 else ("arrival" if i % 2 == 1 else "limit drop")
            print(f"| {mode} | {n} | {slots} | {kind} | {wall:.2f} | {sched.status} "  # type: ignore[attr-defined]
                  f"| {lag_max * 1000:.0f} | {lag_mean * 1000:.1f} |", flush=True)
        if mode == "process":
            st = planners.stats()[0]
            print(f"worker RSS: {ready_rss / 2**20:.0f} MB after start-up, {st.rss_bytes / 2**20:.0f} MB with the "
                  f"site's model ({n} EVSEs, {slots} slots): {(st.rss_bytes - ready_rss) / n / 1024:.0f} kB per EVSE",
                  flush=True)
    finally:
        await planners.shutdown()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--slots", type=int, default=96)
    ap.add_argument("--replans", type=int, default=3)
    ap.add_argument("--time-limit-s", type=float, default=5.0, help="smart_charging.solver_time_limit_s")
    ap.add_argument("--modes", default="process,thread")
    args = ap.parse_args()
    options = SolverOptions(time_limit_s=args.time_limit_s)
    print("| mode | EVSEs | slots | plan | wall s | status | loop lag max ms | loop lag mean ms |")
    print("|---|---:|---:|---|---:|---|---:|---:|")
    for n in (int(x) for x in args.sizes.split(",")):
        for mode in args.modes.split(","):
            await run(mode, n, args.slots, args.replans, options)


if __name__ == "__main__":
    asyncio.run(main())
