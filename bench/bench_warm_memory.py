"""What a planner worker's warm site models cost (memory and plan time), by how they are kept between plans.

    .venv/bin/python bench/bench_warm_memory.py [--sites 20] [--evses 100] [--slots 96] [--rounds 3]
        [--hot-evses 1500] [--dormant-evses 20000] [--modes pyomo,hot,dormant]

Each mode runs in its own child process (a clean heap): `--sites` sites of `--evses` EVSEs (bench_plan.fleet)
are planned in turn, `--rounds` times round-robin (each re-plan: a car arrives or leaves), through the
worker's own `WarmPlanners`:

- `pyomo`: as before 2026-12-07: every planner keeps its Pyomo model; beyond `--hot-evses` the least recent
  are given up (planned cold next time);
- `hot`: Pyomo dropped once loaded, HiGHS instances kept, the same bound, no dormant models;
- `dormant`: the same, and beyond `--hot-evses` the least recent go dormant (LP and bases) up to
  `--dormant-evses` (the shipped defaults: 1,500 and 20,000).

Printed per mode: RSS growth over the run per EVSE held, plans that were cold, and plan wall time (mean, p95)
of the re-plans, with the ratio of each mode's re-plan time to `pyomo`'s.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss_mb() -> float:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)   # freed memory back to the OS: RSS then shows what is held
    except OSError:
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def run_mode(args: argparse.Namespace) -> dict[str, float]:
    from bench_plan import fleet, with_arrival

    from csms.scheduling import SitePlanner, SolverOptions
    from csms.services.warm_planners import WarmPlanners

    keep = args.mode == "pyomo"
    planners = WarmPlanners(args.hot_evses, lambda o: SitePlanner(o, keep_model=keep),
                            max_dormant_evses=args.dormant_evses if args.mode == "dormant" else 0)
    if args.mode != "dormant":   # no dormant models: a planner past the hot bound is given up, as before
        planners.max_dormant_evses = 1
    SitePlanner().plan(fleet(4, args.slots))      # imports and HiGHS's first instance outside the figure
    base = rss_mb()
    opts = SolverOptions(time_limit_s=30.0)
    inputs = [fleet(args.evses, args.slots, seed=i) for i in range(args.sites)]
    times: list[float] = []
    cold = 0
    for r in range(args.rounds + 1):
        for i in range(args.sites):
            inp = inputs[i] if r % 2 == 0 else with_arrival(inputs[i])
            planner = planners.get(f"s{i}", opts, args.evses)
            t0 = time.perf_counter()
            s = planner.plan(inp)
            dt = time.perf_counter() - t0
            if planners.trim() or s.objective_terms.get("lp_cold"):
                gc.collect()
            if r:
                times.append(dt)
                cold += int(s.objective_terms.get("lp_cold", 0.0))
    held = planners.warm_evses + planners.dormant_evses
    grown = rss_mb() - base
    times.sort()
    return {"rss_mb": grown, "held_evses": held, "kb_per_evse": grown * 1024 / max(1, held),
            "hot_evses": planners.warm_evses, "dormant_evses": planners.dormant_evses,
            "replans": len(times), "cold": cold, "mean_ms": 1000 * statistics.fmean(times),
            "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--evses", type=int, default=100)
    ap.add_argument("--slots", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hot-evses", type=int, default=1500)
    ap.add_argument("--dormant-evses", type=int, default=20000)
    ap.add_argument("--modes", default="pyomo,hot,dormant")
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args)))
        return
    print(f"{args.sites} sites x {args.evses} EVSEs x {args.slots} slots, {args.rounds} rounds of re-plans, "
          f"hot bound {args.hot_evses} EVSEs, dormant bound {args.dormant_evses}")
    results: dict[str, dict[str, float]] = {}
    for mode in args.modes.split(","):
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--mode", mode], capture_output=True,
                             text=True, check=True)
        results[mode] = r = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = r["mean_ms"] / results["pyomo"]["mean_ms"] if "pyomo" in results else float("nan")
        print(f"{mode:8s} RSS +{r['rss_mb']:6.0f} MB for {r['held_evses']:5.0f} EVSEs held "
              f"({r['hot_evses']:.0f} hot, {r['dormant_evses']:.0f} dormant): {r['kb_per_evse']:4.0f} KB/EVSE; "
              f"re-plans {r['replans']:.0f}, cold {r['cold']:.0f}; mean {r['mean_ms']:6.1f} ms "
              f"p95 {r['p95_ms']:6.1f} ms ({ratio:.2f} x pyomo's mean)")


if __name__ == "__main__":
    main()
