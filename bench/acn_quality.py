"""Schedule quality on real ACN sessions (Caltech): MPC vs baselines vs the offline optimum.

    .venv/bin/python bench/acn_quality.py [--days 7] [--site caltech] [--fractions 0.25,0.5,0.75]

Online algorithms see, at every slot, only the cars plugged in now: arrival, remaining requested energy and the
driver's *estimated* departure (if that has passed while the car is still there, it is assumed to leave
``--overdue-slots`` slots later, default 1). They are scored on what really happened: charging ends at the
actual departure. The MPC re-plans
every 15-minute slot (so on every arrival and departure) with one persistent ``SitePlanner`` over a 24 h
horizon and applies slot 0. The offline optimum is the same LP given the real departures in advance (one EVSE
per session, whole window as horizon, fairness terms and per-slot shares off so that it maximises energy), then min-current
post-passed. Site limits are fractions of the uncontrolled peak. Assumptions: see bench/acn_data.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from acn_data import SLOT, AcnSession, load  # noqa: E402

from csms.scheduling import (  # noqa: E402
    CircuitSpec, EvseSpec, ObjectiveWeights, Schedule, SchedulingInput, SessionSpec, SitePlanner, edf,
    equal_share, llf,
)
from csms.scheduling.direct import DirectPlanner  # noqa: E402

MAX_A, MIN_A, VOLT = 32.0, 6.0, 208.0
KWH_PER_A = VOLT * SLOT.total_seconds() / 3600 / 1000
HORIZON = 96
MPC_WEIGHTS = ObjectiveWeights()    # set from --share-slots / --share-premium
OVERDUE_SLOTS = 1   # a car still plugged in after its estimated departure is assumed to leave this many slots later
Policy = Callable[[SchedulingInput], Schedule]


@dataclass
class Result:
    name: str
    delivered_kwh: float
    requested_kwh: float
    met_share: float
    peak_kw: float
    violations: int
    seconds: float


def site_input(start: datetime, stations: list[str], limit_kw: float | None, sessions: tuple[SessionSpec, ...],
               horizon: int = HORIZON, weights: ObjectiveWeights | None = None) -> SchedulingInput:
    evses = tuple(EvseSpec(k, MAX_A, MIN_A, phases=(1,), voltage_v=VOLT) for k in stations)
    site = CircuitSpec("site", max_power_w=None if limit_kw is None else limit_kw * 1000, evse_keys=tuple(stations))
    return SchedulingInput(start=start, circuits=(site,), evses=evses, sessions=sessions, horizon_slots=horizon,
                           weights=weights or MPC_WEIGHTS)


def simulate(name: str, policy: Policy, start: datetime, sessions: list[AcnSession], limit_kw: float | None,
             overdue_slots: int = OVERDUE_SLOTS) -> Result:
    stations = sorted({s.station for s in sessions})
    end = max(s.departure_slot for s in sessions)
    delivered = {s.key: 0.0 for s in sessions}
    site_kw = []
    tick = time.perf_counter()
    for t in range(end):
        now = start + t * SLOT
        present = [s for s in sessions if s.arrival_slot <= t < s.departure_slot
                   and s.requested_kwh - delivered[s.key] > 1e-6]
        if not present:
            site_kw.append(0.0)
            continue
        specs = tuple(SessionSpec(s.key, s.station, (s.requested_kwh - delivered[s.key]) * 1000,
                                  departure=start + max(s.est_departure_slot, t + overdue_slots) * SLOT) for s in present)
        sched = policy(site_input(now, stations, limit_kw, specs))
        kw = 0.0
        for s in present:                  # the car takes the offered current until it is full
            kwh = min(sched.current_limit_a(s.key, 0) * KWH_PER_A, s.requested_kwh - delivered[s.key])
            delivered[s.key] += kwh
            kw += kwh / (SLOT.total_seconds() / 3600)
        site_kw.append(kw)
    return score(name, sessions, delivered, site_kw, limit_kw, time.perf_counter() - tick)


def offline(start: datetime, sessions: list[AcnSession], limit_kw: float) -> Result:
    """Perfect hindsight: one EVSE per session, real departures, one LP over the whole window."""
    tick = time.perf_counter()
    end = max(s.departure_slot for s in sessions)
    specs = tuple(SessionSpec(s.key, s.key, s.requested_kwh * 1000, arrival=start + s.arrival_slot * SLOT,
                              departure=start + s.departure_slot * SLOT) for s in sessions)
    weights = ObjectiveWeights(fairness_decay=0.0, fairness_min_fraction=0.0, share_slots=0)
    inp = site_input(start, [s.key for s in sessions], limit_kw, specs, horizon=end, weights=weights)
    sched = DirectPlanner().plan(inp)
    assert sched.status == "optimal", sched.reason
    delivered = {p.session_key: p.energy_wh / 1000 for p in sched.sessions}
    site_kw = [w / 1000 for w in sched.site_power_w]
    return score("offline optimum", sessions, delivered, site_kw, limit_kw, time.perf_counter() - tick)


def score(name: str, sessions: list[AcnSession], delivered: dict[str, float], site_kw: list[float],
          limit_kw: float | None, seconds: float) -> Result:
    met = sum(delivered[s.key] >= s.requested_kwh - max(0.35, 0.01 * s.requested_kwh) for s in sessions)
    viol = 0 if limit_kw is None else sum(kw > limit_kw + 1e-6 for kw in site_kw)
    return Result(name, sum(delivered.values()), sum(s.requested_kwh for s in sessions), met / len(sessions),
                  max(site_kw), viol, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--site", default="caltech")
    ap.add_argument("--fractions", default="0.25,0.5,0.75")
    ap.add_argument("--overdue-slots", type=int, default=OVERDUE_SLOTS,
                    help="assumed remaining stay of a car past its estimated departure (all online algorithms)")
    ap.add_argument("--share-slots", type=int, default=ObjectiveWeights().share_slots,
                    help="MPC: slots with per-slot fair shares (0 = off)")
    ap.add_argument("--share-premium", type=float, default=ObjectiveWeights().share_premium,
                    help="MPC: extra early reward on current up to the fair share")
    args = ap.parse_args()
    global MPC_WEIGHTS
    MPC_WEIGHTS = ObjectiveWeights(share_slots=args.share_slots, share_premium=args.share_premium)
    start, sessions = load(args.site, days=args.days)
    unc_delivered, unc_kw = _uncontrolled_trace(sessions)     # independent of the limit: simulate once
    unc = score("uncontrolled", sessions, unc_delivered, unc_kw, None, 0.0)
    print(f"{args.site}: {len(sessions)} sessions over {args.days} days, {unc.requested_kwh:.0f} kWh requested, "
          f"uncontrolled peak {unc.peak_kw:.1f} kW")
    print(f"{'limit':>10} {'algorithm':<16} {'energy %':>9} {'met %':>6} {'peak kW':>8} {'viol':>5} {'time s':>7}")
    for frac in (float(f) for f in args.fractions.split(",")):
        limit = frac * unc.peak_kw
        mpc = SitePlanner()
        rows = [score("uncontrolled", sessions, unc_delivered, unc_kw, limit, 0.0)]
        for name, policy in (("equal share", equal_share), ("EDF", edf), ("LLF", llf), ("MPC (ours)", mpc.plan)):
            rows.append(simulate(name, policy, start, sessions, limit, args.overdue_slots))
        rows.append(offline(start, sessions, limit))
        for r in rows:
            print(f"{frac:>4.0%} {limit:>4.0f}kW {r.name:<16} {100 * r.delivered_kwh / r.requested_kwh:>9.2f} "
                  f"{100 * r.met_share:>6.1f} {r.peak_kw:>8.1f} {r.violations:>5d} {r.seconds:>7.1f}", flush=True)


def _uncontrolled_trace(sessions: list[AcnSession]) -> tuple[dict[str, float], list[float]]:
    """Every car at 32 A from arrival until full or gone (same physics as ``simulate``)."""
    delivered = {s.key: 0.0 for s in sessions}
    site_kw = []
    for t in range(max(s.departure_slot for s in sessions)):
        kw = 0.0
        for s in sessions:
            if s.arrival_slot <= t < s.departure_slot:
                kwh = min(MAX_A * KWH_PER_A, s.requested_kwh - delivered[s.key])
                delivered[s.key] += kwh
                kw += kwh * 4
        site_kw.append(kw)
    return delivered, site_kw


if __name__ == "__main__":
    main()
