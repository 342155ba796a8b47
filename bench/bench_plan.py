"""Plan-time benchmark: a whole ``SitePlanner.plan`` against HiGHS's own solve time inside it.

    .venv/bin/python bench/bench_plan.py [--sizes 10,54,100,1000] [--slots 96] [--repeat 3]

For each fleet size: cold build + solve, re-plan after one arrival, re-plan after a site limit change (median
of --repeat runs for the re-plans). The baseline, measured in the same call, is the time HiGHS itself spent
in its solves (both lexicographic stages); the ratio plan/HiGHS is what the Pyomo model, the array compile,
the bound/parameter pushes and the min-current post-pass add around the solver.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from csms.scheduling import (  # noqa: E402
    CircuitSpec, EvseSpec, SchedulingInput, SessionSpec, SitePlanner, check_limits,
)

T0 = datetime(2025, 1, 6, 6, 0, tzinfo=timezone.utc)
PHASE_SETS = [(1, 2, 3), (2, 3, 1), (3, 1, 2), (1,), (2,), (3,)]


def fleet(n: int, slots: int, seed: int = 1) -> SchedulingInput:
    """n EVSEs in rows of 10 (80 A/phase each) under a site at ~35 % of the fleet's max, 70 % occupied."""
    rng = random.Random(seed)
    evses = tuple(EvseSpec(f"E{i}", 32.0 if i % 3 else 16.0, phases=PHASE_SETS[i % len(PHASE_SETS)])
                  for i in range(n))
    rows = [tuple(e.evse_key for e in evses[r : r + 10]) for r in range(0, n, 10)]
    site_a = max(32.0, 0.35 * sum(e.max_current_a * len(e.phases) for e in evses) / 3)
    circuits = (CircuitSpec("site", max_current_a=site_a, max_power_w=site_a * 3 * 230 * 0.95),) + tuple(
        CircuitSpec(f"row{j}", parent="site", max_current_a=80.0, evse_keys=keys) for j, keys in enumerate(rows))
    sessions = tuple(
        SessionSpec(f"s{i}", e.evse_key, rng.uniform(5_000, 45_000),
                    departure=T0 + timedelta(minutes=rng.randint(60, slots * 15)), priority=rng.choice([1, 1, 1, 2]))
        for i, e in enumerate(evses) if rng.random() < 0.7)
    prices = tuple(0.35 if 16 <= (6 + t // 4) % 24 < 21 else 0.18 for t in range(slots))
    return SchedulingInput(start=T0, circuits=circuits, evses=evses, sessions=sessions, price_per_kwh=prices,
                           horizon_slots=slots)


def with_arrival(inp: SchedulingInput) -> SchedulingInput:
    used = {s.evse_key for s in inp.sessions}
    free = next(e.evse_key for e in inp.evses if e.evse_key not in used)
    return dataclasses.replace(inp, sessions=inp.sessions + (SessionSpec("new", free, 20_000.0,
                                                                           departure=T0 + timedelta(hours=5)),))


def with_limit_drop(inp: SchedulingInput) -> SchedulingInput:
    site = inp.circuits[0]
    drop = tuple(0.6 * float(site.max_current_a or 0) if 8 <= t < 24 else float(site.max_current_a or 0)
                 for t in range(inp.horizon_slots))
    return dataclasses.replace(inp, circuits=(dataclasses.replace(site, current_limit_a_by_slot=drop),)
                               + inp.circuits[1:])


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    tick = time.perf_counter()
    out = fn()
    return time.perf_counter() - tick, out


def bench(n: int, slots: int, repeat: int) -> list[tuple[str, float, float, int]]:
    base = fleet(n, slots)
    out = []
    for label, change in (("cold build+solve", None), ("re-plan: arrival", with_arrival),
                          ("re-plan: limit change", with_limit_drop)):
        total: list[float] = []
        highs: list[float] = []
        stages = 1
        for _ in range(1 if change is None else repeat):
            planner = SitePlanner()
            if change is None:
                dt, sched = timed(lambda: planner.plan(base))
            else:
                planner.plan(base)
                changed = change(base)
                dt, sched = timed(lambda: planner.plan(changed))
            assert sched.status == "optimal", sched.reason          # type: ignore[attr-defined]
            terms = sched.objective_terms                           # type: ignore[attr-defined]
            total.append(dt)
            highs.append(terms.get("stage1_s", 0.0) + terms.get("stage2_s", 0.0))
            stages = 2 if "stage2_s" in terms else 1
        if n <= 100:   # the independent checker is O(circuits·EVSEs·slots): only on the small sizes
            assert check_limits(change(base) if change else base, sched) == []  # type: ignore[arg-type]
        out.append((label, statistics.median(total), statistics.median(highs), stages))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10,54,100,1000")
    ap.add_argument("--slots", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'EVSEs':>6} {'case':<24} {'plan s':>9} {'HiGHS s':>9} {'plan/HiGHS':>11} {'stages':>7}")
    for n in (int(s) for s in args.sizes.split(",")):
        for label, t_plan, t_highs, stages in bench(n, args.slots, args.repeat if n < 1000 else 1):
            print(f"{n:>6} {label:<24} {t_plan:>9.3f} {t_highs:>9.3f} {t_plan / max(t_highs, 1e-9):>11.1f} "
                  f"{stages:>7}", flush=True)


if __name__ == "__main__":
    main()
