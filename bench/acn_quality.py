"""Schedule quality of our site planner inside acnportal (Caltech's ACN-Sim) on real ACN sessions.

Install the bench extra once, then run (one week, all caps; ``--markdown``/``--json`` are optional)::

    .venv/bin/pip install -c constraints.txt -e '.[bench]'       # acnportal==0.3.3 (bench only)
    .venv/bin/python bench/acn_quality.py --site caltech --start 2019-05-06 --days 7 \\
        --caps 10,15,20,25,30,40,none --markdown /tmp/acn.md --json /tmp/acn.json

What runs, all inside ``acnportal.acnsim.Simulator`` with ``period=5`` minutes and every online algorithm
called every period (``max_recompute = 1``):

- ``uncontrolled``: ``acnportal.algorithms.UncontrolledCharging`` (32 A to every car; ignores the cap: it is
  simulated once and scored against every cap).
- ``llf`` / ``edf``: ``SortedSchedulingAlgo(least_laxity_first | earliest_deadline_first,
  uninterrupted_charging=True)``. ``uninterrupted_charging`` is how acnportal's sorted algorithms honour the
  EVSE minimum (``min_pilot``): each car first gets 6 A (in order of remaining time, while the cap allows),
  then the sorted order fills up to 32 A. Without it they offer 0..6 A, which the 6 A EVSE rejects.
- ``ours``: ``OursAlgorithm``, a ``BaseAlgorithm`` that keeps one ``csms.scheduling.SitePlanner`` for the run
  and, at every call, plans a 24 h horizon on the 15-minute grid (slot 0 = now .. next quarter hour, planned
  up to the next call) with the run's peak so far as the peak floor, and returns slot 0's current.
- ``offline``: the hindsight LP (``offline_lp``): real arrivals, real departures, real requests, per-period
  rates in [0, 32] A (no 6 A minimum: a relaxation), maximising energy under the cap; solved with highspy.
  Also the offline **minimum peak** (``offline_min_peak``): one LP minimising the constant cap at which every
  car still gets all the energy it could get uncapped (``min(request, 32 A * 208 V * stay)``).

Model (built here from the CSVs, see ``bench/acn_data.py``; acnportal's own loaders need the network):

- One EVSE per station id seen in the window: ``MinPilotDeadbandEVSE``, acnportal's ``DeadbandEVSE`` (accepts
  exactly 0 or [6, 32] A, continuous) reporting ``min_rate = 6`` so that ``interface.min_pilot_signal`` and
  ``InfrastructureInfo.min_pilot`` say 6 as their docstrings define it. Plain ``DeadbandEVSE`` reports 0, and
  ``EVSE(min_rate=6)`` rejects a 0 A pilot (raises ``InvalidRateError`` even when idle). 208 V, one phase.
- The site cap is one aggregate-current constraint over all EVSEs, ``cap_kw * 1000 / 208`` A (uncapped: a
  constraint of 32 A per EVSE, which never binds, because acnportal needs at least one constraint).
- Each car is an ``EV`` with acnportal's ideal ``Battery(capacity=requested kWh, init_charge=0,
  max_power=32 A * 208 V)``: it takes whatever pilot it is offered (up to the EVSE's 32 A) until it holds its
  request. Battery limits are not told to any scheduler.
- Knowledge: acnportal's ``SessionInfo`` carries the *actual* departure; ``KnownInterface`` replaces it (and
  the estimate) with ``known_departure``: the driver's estimate, or now + 1 period (5 minutes) once the
  estimate has passed and the car is still plugged in. Every online algorithm gets this same interface; the
  simulated car still leaves at its actual departure. Schedulers also see arrival and remaining demand.

Scores (per cap and algorithm): % of requested energy delivered (acnportal
``proportion_of_energy_delivered``), % of sessions within 0.1 kWh of their request
(``proportion_of_demands_met``), peak kW (``aggregate_power``: actual charging rates), limit violations
(periods whose actual site power > cap + 1e-6 kW; acnportal's own feasibility check allows 1e-5 A, i.e.
2e-6 kW, so its sorted algorithms can show one such period), and for ours the planner time per call
(``SitePlanner.plan`` only, over calls with at least one car that still wants energy; mean and p95 ms).
The requests include many the stay could never satisfy (e.g. 60 kWh in 3 h), so even the uncapped offline
optimum delivers well under 100 %: compare rows with each other and with the offline row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from acn_data import DEFAULT_START, SITE_TZ, AcnSession, load, stations  # noqa: E402

from csms.config import SmartChargingConfig  # noqa: E402
from csms.services.plan_input import margin_to_use, planning_departure  # noqa: E402
from csms.services.smart.margin import learned_margin_s  # noqa: E402
from csms.scheduling import CircuitSpec, EvseSpec, SchedulingInput, SessionSpec, SitePlanner  # noqa: E402
from csms.scheduling import expected as expected_mod  # noqa: E402
from csms.scheduling.forecast import PastSession, expected_arrivals  # noqa: E402
from csms.scheduling.problem import ExpectedArrival  # noqa: E402
from csms.services.site_limits import slot_edges  # noqa: E402

try:
    from acnportal import acnsim
    from acnportal.acnsim.interface import Interface, SessionInfo
    from acnportal.algorithms import (
        BaseAlgorithm,
        SortedSchedulingAlgo,
        UncontrolledCharging,
        earliest_deadline_first,
        least_laxity_first,
    )
except ImportError as exc:  # pragma: no cover - only without the bench extra
    hint = ".venv/bin/pip install -c constraints.txt -e '.[bench]'"
    raise SystemExit(f"acnportal is missing ({exc}): {hint}") from exc

PERIOD_MIN = 5
VOLTAGE = 208.0
MAX_A, MIN_A = 32.0, 6.0
KWH_PER_A_PERIOD = VOLTAGE * PERIOD_MIN / 60 / 1000      # energy of 1 A for one period
SLOT_S = 900                                            # planner grid: 15 minutes (--slot-s)
HORIZON_SLOTS = 96                                      # 24 h
PERIODS_PER_DAY = 24 * 60 // PERIOD_MIN
ALGORITHMS = ("uncontrolled", "llf", "edf", "ours", "offline")
DEFAULT_CAPS = "10,15,20,25,30,40,none"
VIOLATION_TOL_KW = 1e-6
SERVED_KWH = 0.1

Log = Callable[[str], None]


# ---------------------------------------- acnportal model

class MinPilotDeadbandEVSE(acnsim.DeadbandEVSE):
    """``DeadbandEVSE`` (pilot 0 or [deadband_end, max_rate]) that reports ``min_rate = deadband_end``.

    acnportal's ``DeadbandEVSE`` inherits ``BaseEVSE.min_rate == 0``, so ``Interface.min_pilot_signal`` and
    the sorted algorithms' ``uninterrupted_charging`` would not know about the 6 A minimum it enforces.
    """

    @property
    def min_rate(self) -> float:
        return self.deadband_end


#: What online schedulers are told as departure: the driver's estimate (realistic, default) or the actual
#: departure ("departures known", as in the issue's first table). Set by --departures.
DEPARTURES = "estimated"
HISTORY: list[PastSession] = []   # what ours forecasts arrivals from (main: --forecast-days)
#: --forecast-days and --quiet-day-fraction: how many days before each planned day the forecast reads and
#: which quiet days it leaves out (the live service's smart_charging.arrival_forecast_days and
#: arrival_forecast_quiet_fraction, passed to expected_arrivals as lookback_days and quiet_day_fraction)
FORECAST_DAYS = [SmartChargingConfig().arrival_forecast_days]
QUIET_DAY_FRACTION = [SmartChargingConfig().arrival_forecast_quiet_fraction]
POWER_DUMP: Path | None = None    # --dump-power DIR
#: --reserve-pct: the share of the paid peak kept free for unforeseen cars when there is no forecast (the live
#: service's smart_charging.peak_reserve_without_forecast_pct; the planner uses it only without a forecast)
RESERVE_FRAC = [SmartChargingConfig().peak_reserve_without_forecast_pct / 100.0]
RESERVE_IDLE_FRAC = [SmartChargingConfig().peak_reserve_idle_evse_pct / 100.0]   # --reserve-idle-pct
#: (departure the driver stated, departure) of the sessions in HISTORY: what the live service learns the
#: departure margin from (csms.services.smart.margin). "Stated" is what the schedulers are told (--departures).
STATED: list[tuple[datetime, datetime]] = []
NO_MARGIN = [False]               # --margin none: stated departures planned as stated (diagnostics)
#: smart_charging.departure_margin_learned as --margin sets it: "auto" (learned where the plan has a forecast:
#: uncapped here), True (--margin learned: at every cap), False (--margin configured or none)
MARGIN_LEARNED: list[bool | str] = [SmartChargingConfig().departure_margin_learned]
#: --forecast oracle (diagnostics only): the window's own sessions, each told to the planner as one expected
#: arrival at its real arrival, departure and deliverable energy once "now" is before its arrival.
ORACLE: list[PastSession] = []
ORACLE_RULE = ["must"]            # --forecast oracle-mean: "mean", oracle-groups: "groups"
ORACLE_DEP_BIN_S = [0.0]          # --oracle-departure-bin-s


def known_departure(estimated_departure: int, now: int) -> int:
    """Departure an online scheduler may assume (periods): the estimate, or the next period once it passed."""
    return max(estimated_departure, now + 1)


class KnownInterface(Interface):
    """acnportal ``Interface`` whose ``SessionInfo`` carries only what a live scheduler knows.

    The stock interface fills ``SessionInfo.departure`` with the *actual* departure (and raises when the
    driver's estimate is <= arrival); here both ``departure`` and ``estimated_departure`` are
    ``known_departure(estimate, now)``. ``remaining_time`` (used by ``uninterrupted_charging``) follows.
    """

    def _active_sessions(self) -> list[SessionInfo]:
        now = self.current_time
        out = []
        for ev in self._active_evs:
            told = ev.departure if DEPARTURES == "actual" else ev.estimated_departure
            dep = known_departure(told, now)
            out.append(SessionInfo(ev.station_id, ev.session_id, ev.requested_energy, ev.energy_delivered,
                                   ev.arrival, dep, dep, now))
        return out


def build_network(station_ids: Sequence[str], cap_kw: float | None) -> acnsim.ChargingNetwork:
    net = acnsim.ChargingNetwork()
    for sid in station_ids:
        net.register_evse(MinPilotDeadbandEVSE(sid, deadband_end=MIN_A, max_rate=MAX_A), VOLTAGE, 0.0)
    limit_a = len(station_ids) * MAX_A if cap_kw is None else cap_kw * 1000 / VOLTAGE
    net.add_constraint(acnsim.Current(list(station_ids)), limit_a, name="site")
    return net


def build_events(sessions: Sequence[AcnSession]) -> acnsim.EventQueue:
    """Fresh ``EV``s (they are mutated by a run) with an ideal battery sized to the request."""
    max_kw = MAX_A * VOLTAGE / 1000
    evs = [acnsim.EV(s.arrival, s.departure, s.requested_kwh, s.station_id, s.session_id,
                     acnsim.Battery(s.requested_kwh, 0.0, max_kw), estimated_departure=s.est_departure)
           for s in sessions]
    return acnsim.EventQueue([acnsim.PluginEvent(ev.arrival, ev) for ev in evs])


# ---------------------------------------- algorithms

class OursAlgorithm(BaseAlgorithm):
    """Our ``SitePlanner`` as an acnportal algorithm (one persistent planner for the whole run).

    Each call plans ``SchedulingInput(start=now, slot_s=900, first_slot_s=seconds to the next quarter hour,
    horizon_slots=96, replan_s=300, peak_floor_kw=highest site power of this run so far)`` (the last two as
    the live service passes them since b192d3a: slot 0 planned up to the next call, the demand period's
    peak as the floor of the peak term; here the peak is what the returned rates could draw, an upper bound
    of the measured one) with one ``EvseSpec`` per EVSE (max/min pilot and voltage read from the interface:
    32 A, 6 A, 208 V, single phase), one root circuit ``site`` capped at ``cap_kw`` (None: no cap) and one
    ``SessionSpec`` per active session (remaining demand, ``known_departure``), and returns slot 0's current.
    A planned current acnportal's EVSE would reject (not 0 and outside [6, 32] A +- 1e-3) is recorded in
    ``bad_rates`` and sent as 0 (below 6 A) or 32 A (above), so that one bad value cannot abort the run.
    """

    def __init__(self, cap_kw: float | None, planner: SitePlanner | None = None) -> None:
        super().__init__()
        self.max_recompute = 1
        self.cap_kw = cap_kw
        self.planner = planner or SitePlanner()
        self.plan_s: list[float] = []
        self.plan_cpu_s: list[float] = []   # CPU time of the process (the planner runs in it): load-independent
        self.fallbacks: Counter[str] = Counter()
        self.bad_rates: list[tuple[int, str, float]] = []
        self._site: tuple[tuple[EvseSpec, ...], CircuitSpec] | None = None
        self.peak_kw = 0.0
        self._margin: tuple[datetime, float | None] | None = None

    def _infrastructure(self) -> tuple[tuple[EvseSpec, ...], CircuitSpec]:
        if self._site is None:
            info = self.interface.infrastructure_info()
            evses = tuple(
                EvseSpec(sid, max_current_a=float(info.max_pilot[i]), min_current_a=float(info.min_pilot[i]),
                         phases=(1,), voltage_v=float(info.voltages[i]))
                for i, sid in enumerate(info.station_ids))
            site = CircuitSpec("site", max_power_w=None if self.cap_kw is None else self.cap_kw * 1000,
                               evse_keys=tuple(info.station_ids))
            self._site = evses, site
        return self._site

    def scheduling_input(self, active_sessions: Sequence[SessionInfo]) -> SchedulingInput:
        evses, site = self._infrastructure()
        now: datetime = self.interface.current_datetime
        t = self.interface.current_time
        period = timedelta(minutes=self.interface.period)
        into_slot = (now - datetime(1970, 1, 1, tzinfo=timezone.utc)) % timedelta(seconds=SLOT_S)
        first_slot_s = SLOT_S - into_slot.total_seconds()          # in (0, 900]
        # The same policy as the live service: a stated departure is planned with the early-leaver margin.
        sc = SmartChargingConfig(departure_margin_learned=MARGIN_LEARNED[0])
        if NO_MARGIN[0]:
            sc = SmartChargingConfig(departure_margin_pct=0.0, departure_margin_learned=False)
        # As the live service does: the cars expected later, from the days before today (HISTORY).
        horizon_end = slot_edges(now, SLOT_S, HORIZON_SLOTS, first_slot_s)[-1]
        if ORACLE:
            expected = oracle_arrivals(ORACLE, now, horizon_end)
        else:
            expected = history_forecast(now, horizon_end)
        # As plan_input: with `auto` the learned margin only where the plan has a forecast (uncapped here: a
        # site with a limit ignores the forecast, scheduling.expected.applies).
        margin_s = margin_to_use(sc, self.learned_margin_s(now, sc), forecast=self.cap_kw is None and bool(expected))
        sessions = tuple(
            SessionSpec(s.session_id, s.station_id, energy_needed_wh=s.remaining_demand * 1000,
                        departure=planning_departure(now + (known_departure(s.estimated_departure, t) - t) * period,
                                                     now, sc.departure_margin_pct, sc.departure_margin_max_min,
                                                     margin_s))
            for s in active_sessions)
        # As the live service does: slot 0 is planned as far as the next call (one period), and the peak term
        # only counts load above the highest site power this run has drawn so far (its demand period).
        return SchedulingInput(start=now, circuits=(site,), evses=evses, sessions=sessions, slot_s=SLOT_S,
                               first_slot_s=first_slot_s, horizon_slots=HORIZON_SLOTS,
                               replan_s=period.total_seconds(), peak_floor_kw=self.peak_kw,
                               expected_arrivals=expected, peak_reserve_frac=RESERVE_FRAC[0],
                               peak_reserve_idle_frac=RESERVE_IDLE_FRAC[0])

    def learned_margin_s(self, now: datetime, sc: SmartChargingConfig) -> float | None:
        """As the live service (smart.margin, read once an hour): from the sessions that ended in the last
        ``departure_margin_days`` days."""
        if not sc.departure_margin_learned:
            return None
        if self._margin is None or now - self._margin[0] >= timedelta(hours=1):
            since = now - timedelta(days=sc.departure_margin_days)
            self._margin = now, learned_margin_s([(st, left) for st, left in STATED if since <= left <= now],
                                                 sc.departure_margin_quantile, sc.departure_margin_min_sessions)
        return self._margin[1]

    def schedule(self, active_sessions: list[SessionInfo]) -> dict[str, list[float]]:
        if not active_sessions:
            return {}
        inp = self.scheduling_input(active_sessions)
        tick, cpu = time.perf_counter(), time.process_time()
        sched = self.planner.plan(inp)
        self.plan_s.append(time.perf_counter() - tick)
        self.plan_cpu_s.append(time.process_time() - cpu)
        if sched.status != "optimal":
            self.fallbacks[str(sched.reason)] += 1
        out = {}
        power_kw = 0.0
        for s in active_sessions:
            rate = sched.current_limit_a(s.session_id, 0)
            power_kw += min(rate, MAX_A) * VOLTAGE / 1000.0
            if abs(rate) <= 1e-3:
                rate = 0.0
            elif not MIN_A - 1e-3 <= rate <= MAX_A + 1e-3:
                self.bad_rates.append((self.interface.current_time, s.session_id, rate))
                rate = 0.0 if rate < MIN_A else MAX_A
            out[s.station_id] = [rate]
        # What the cars could draw under these rates: an upper bound of the site's power this period.
        self.peak_kw = max(self.peak_kw, power_kw)
        return out


def history_forecast(now: datetime, horizon_end: datetime) -> tuple[ExpectedArrival, ...]:
    """The expected arrivals ours is told, as the live service computes them (plan_input): from HISTORY, the
    last ``FORECAST_DAYS`` days of today's kind, quiet days left out, a car's power 32 A at 208 V."""
    if not HISTORY:
        return ()
    return expected_arrivals(HISTORY, now, horizon_end, SITE_TZ, lookback_days=FORECAST_DAYS[0],
                             min_days=SmartChargingConfig().arrival_forecast_min_days,
                             car_power_w=MAX_A * VOLTAGE, quiet_day_fraction=QUIET_DAY_FRACTION[0])


def oracle_arrivals(sessions: Sequence[PastSession], now: datetime, horizon_end: datetime
                    ) -> tuple[ExpectedArrival, ...]:
    """Perfect forecast (diagnostics): every session arriving after ``now`` inside the horizon, one car each.
    A stay past the horizon's end counts what it could not take after the end at 32 A (the rule of
    ``expected_arrivals``), or with ``--forecast oracle-mean`` its part inside at its mean rate (the rule
    before it)."""
    out = []
    for s in sessions:
        if now < s.arrival < horizon_end:
            end = min(s.departure, horizon_end)
            if ORACLE_RULE[0] == "mean":
                energy = s.energy_wh * (end - s.arrival) / (s.departure - s.arrival)
            else:
                energy = max(0.0, s.energy_wh - MAX_A * VOLTAGE * (s.departure - end).total_seconds() / 3600)
            if energy > 0:
                out.append(ExpectedArrival(s.arrival, end, energy, 1.0))
    if ORACLE_RULE[0] == "groups":
        # --forecast oracle-groups: the same cars grouped as expected_arrivals groups the history (by hour of
        # arrival, or by arrival and departure with --oracle-departure-bin-s): what the grouping alone costs.
        bins: dict[tuple[int, int], list[ExpectedArrival]] = {}
        for x in out:
            dep_bin = int((x.departure - now).total_seconds() // ORACLE_DEP_BIN_S[0]) if ORACLE_DEP_BIN_S[0] else 0
            bins.setdefault((int((x.arrival - now).total_seconds() // 3600), dep_bin), []).append(x)
        grouped = []
        for b in sorted(bins)[:expected_mod.MAX_GROUPS]:
            xs = bins[b]
            arr_s = sum((x.arrival - now).total_seconds() for x in xs) / len(xs)
            stay_s = sum((x.departure - x.arrival).total_seconds() * x.energy_wh for x in xs) / sum(x.energy_wh for x in xs)
            a = now + timedelta(seconds=arr_s)
            grouped.append(ExpectedArrival(a, min(horizon_end, a + timedelta(seconds=stay_s)),
                                           sum(x.energy_wh for x in xs), float(len(xs))))
        return tuple(grouped)
    return tuple(out)


class Tracked(BaseAlgorithm):
    """Wraps an acnportal algorithm: times each ``schedule`` call, notes what the cars could take, and
    prints progress once per simulated day."""

    def __init__(self, inner: BaseAlgorithm, label: str, log: Log | None, days: float) -> None:
        super().__init__()
        self.inner, self.label, self.log, self.days = inner, label, log, days
        self.max_recompute = inner.max_recompute
        self.call_s: list[float] = []
        self.wanted_kw: dict[int, float] = {}      # period -> what cars could take (Row.unused_periods)
        self._day = 0

    def register_interface(self, interface: Interface) -> None:
        super().register_interface(interface)
        self.inner.register_interface(interface)

    def schedule(self, active_sessions: list[SessionInfo]) -> dict[str, list[float]]:
        day = self.interface.current_time // PERIODS_PER_DAY
        if day != self._day and self.log is not None:
            self._day = day
            self.log(f"    {self.label}: day {day}/{self.days:g} simulated, {len(self.call_s)} calls, "
                     f"{1000 * float(np.mean(self.call_s or [0])):.1f} ms/call")
        hours = self.interface.period / 60
        tail = MIN_A * VOLTAGE / 1000 * hours      # less than one period at 6 A left: not counted
        self.wanted_kw[self.interface.current_time] = sum(
            min(MAX_A * VOLTAGE / 1000, s.remaining_demand / hours) for s in active_sessions
            if s.remaining_demand > tail)
        tick = time.perf_counter()
        out = self.inner.schedule(active_sessions)
        self.call_s.append(time.perf_counter() - tick)
        return out


def make_algorithm(name: str, cap_kw: float | None, planner: SitePlanner | None = None) -> BaseAlgorithm:
    if name == "uncontrolled":
        return UncontrolledCharging()
    if name == "llf":
        return SortedSchedulingAlgo(least_laxity_first, uninterrupted_charging=True)
    if name == "edf":
        return SortedSchedulingAlgo(earliest_deadline_first, uninterrupted_charging=True)
    if name == "ours":
        return OursAlgorithm(cap_kw, planner)
    raise ValueError(f"unknown online algorithm {name!r}")


# ---------------------------------------- results

@dataclass
class Row:
    algorithm: str
    cap_kw: float | None
    delivered_kwh: float
    requested_kwh: float
    energy_pct: float
    served_pct: float
    peak_kw: float
    violations: int
    wall_s: float
    max_excess_kw: float = 0.0              # largest site power above the cap (0 if never above)
    # Sessions > 0.1 kWh short of min(request, 32 A from arrival to the earlier of the actual and estimated
    # departure), split by whether the car stayed until its estimate (uncapped, no online algorithm has an
    # excuse for those) or left before it (lost by waiting for a departure that did not come).
    short_stayed: int = 0
    short_stayed_kwh: float = 0.0
    short_left_early: int = 0
    short_left_early_kwh: float = 0.0
    # Periods in which the site drew more than one minimum current (6 A, 1.25 kW) less than the cars could
    # take (each up to 32 A or its remaining demand; cars with less than one period at 6 A left, 0.104 kWh,
    # not counted) and the cap allowed: charging deferred or capacity left idle.
    unused_periods: int = 0
    unused_kwh: float = 0.0
    near_misses: int = 0                    # sessions left 0.1 .. 1 kWh short of their request
    calls: int = 0
    call_mean_ms: float | None = None       # whole schedule() call (acnportal's solve time)
    plan_mean_ms: float | None = None       # ours: SitePlanner.plan only
    plan_p95_ms: float | None = None
    plan_max_ms: float | None = None
    plan_cpu_mean_ms: float | None = None   # CPU time per plan: what a shared machine's load does not inflate
    plan_cpu_p95_ms: float | None = None
    fallbacks: dict[str, int] = field(default_factory=dict)
    bad_rates: int = 0
    infeasible_schedules: int = 0           # acnportal "Invalid schedule provided" warnings
    short_sessions: list[tuple[str, float]] = field(default_factory=list)   # ours: near misses, kWh short
    power_kw: list[float] = field(default_factory=list, repr=False)

    def violations_at(self, cap_kw: float | None) -> int:
        if cap_kw is None:
            return 0
        return int(sum(p > cap_kw + VIOLATION_TOL_KW for p in self.power_kw))

    def rescore(self, cap_kw: float | None) -> None:
        self.cap_kw = cap_kw
        self.violations = self.violations_at(cap_kw)
        self.max_excess_kw = 0.0 if cap_kw is None else max(0.0, max(self.power_kw, default=0.0) - cap_kw)


def known_stay_kwh(s: AcnSession) -> float:
    """Energy deliverable before both the actual and the estimated departure (at least one period)."""
    end = min(s.departure, max(s.est_departure, s.arrival + 1))
    return min(s.requested_kwh, MAX_A * KWH_PER_A_PERIOD * (end - s.arrival))


def score(algorithm: str, cap_kw: float | None, sessions: Sequence[AcnSession], delivered: dict[str, float],
          power_kw: Sequence[float], wall_s: float) -> Row:
    req = sum(s.requested_kwh for s in sessions)
    got = float(sum(delivered.values()))
    served = int(sum(s.requested_kwh - delivered[s.session_id] < SERVED_KWH for s in sessions))
    row = Row(algorithm, cap_kw, got, req, 100 * got / req, 100 * served / len(sessions),
              float(max(power_kw, default=0.0)), 0, wall_s, power_kw=[float(p) for p in power_kw])
    row.rescore(cap_kw)
    for s in sessions:
        gap = known_stay_kwh(s) - delivered[s.session_id]
        if gap > SERVED_KWH:
            if s.departure >= s.est_departure:
                row.short_stayed += 1
                row.short_stayed_kwh += float(gap)
            else:
                row.short_left_early += 1
                row.short_left_early_kwh += float(gap)
    row.near_misses = int(sum(SERVED_KWH <= s.requested_kwh - delivered[s.session_id] <= 1.0
                              for s in sessions))
    return row


def simulate(name: str, sessions: Sequence[AcnSession], start: datetime, cap_kw: float | None,
             station_ids: Sequence[str] | None = None, log: Log | None = None,
             planner: SitePlanner | None = None) -> Row:
    """Run one online algorithm through acnportal and score it."""
    station_ids = list(station_ids or stations(sessions))
    algo = make_algorithm(name, cap_kw, planner)
    days = (max(s.departure for s in sessions) + PERIODS_PER_DAY - 1) // PERIODS_PER_DAY
    tracked = Tracked(algo, f"{name} cap={_cap_str(cap_kw)}", log, days)
    net_cap = None if name == "uncontrolled" else cap_kw   # it ignores caps: run uncapped, score against one
    sim = acnsim.Simulator(build_network(station_ids, net_cap), tracked, build_events(sessions), start,
                           period=PERIOD_MIN, verbose=False, interface_type=KnownInterface)
    tick = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim.run()
    wall = time.perf_counter() - tick
    evs = sim.ev_history
    power = acnsim.aggregate_power(sim)
    if POWER_DUMP is not None:      # --dump-power: each run's site power per period, for per-day analysis
        np.save(POWER_DUMP / f"{name}_{_cap_str(cap_kw)}.npy", np.asarray(power))
    assert len(evs) == len(sessions)
    row = score(name, cap_kw, sessions, {k: ev.energy_delivered for k, ev in evs.items()}, power, wall)
    # acnportal's own definitions, as a cross-check of score()
    assert math.isclose(row.energy_pct, 100 * acnsim.proportion_of_energy_delivered(sim), abs_tol=1e-9)
    assert math.isclose(row.served_pct, 100 * acnsim.proportion_of_demands_met(sim, SERVED_KWH), abs_tol=1e-9)
    row.calls = len(tracked.call_s)
    room = [(min(w, math.inf if cap_kw is None else cap_kw) - power[t]) if t < len(power) else 0.0
            for t, w in tracked.wanted_kw.items()]
    unused = [r for r in room if r > MIN_A * VOLTAGE / 1000 + 0.01]
    row.unused_periods, row.unused_kwh = len(unused), float(sum(unused)) * PERIOD_MIN / 60
    row.call_mean_ms = 1000 * float(np.mean(tracked.call_s)) if tracked.call_s else None
    row.infeasible_schedules = sum("Invalid schedule" in str(w.message) for w in caught)
    if isinstance(algo, OursAlgorithm):
        ms = 1000 * np.asarray(algo.plan_s)
        if ms.size:
            row.plan_mean_ms, row.plan_p95_ms = float(ms.mean()), float(np.percentile(ms, 95))
            row.plan_max_ms = float(ms.max())
            cpu_ms = 1000 * np.asarray(algo.plan_cpu_s)
            row.plan_cpu_mean_ms, row.plan_cpu_p95_ms = float(cpu_ms.mean()), float(np.percentile(cpu_ms, 95))
        row.fallbacks = dict(algo.fallbacks)
        row.bad_rates = len(algo.bad_rates)
        row.short_sessions = sorted(
            ((k, round(ev.remaining_demand, 4)) for k, ev in evs.items()
             if SERVED_KWH <= ev.remaining_demand <= 1.0), key=lambda x: -x[1])
    return row


# ---------------------------------------- offline LPs

def _columns(sessions: Sequence[AcnSession]) -> tuple[np.ndarray, np.ndarray]:
    """One LP column per (session, period it is plugged in): its session index and its period."""
    sess = np.concatenate([np.full(s.departure - s.arrival, i) for i, s in enumerate(sessions)])
    per = np.concatenate([np.arange(s.arrival, s.departure) for s in sessions])
    return sess, per


def _solve_lp(cost: np.ndarray, col_hi: np.ndarray, rows: list[np.ndarray], vals: list[np.ndarray],
              row_lo: np.ndarray, row_hi: np.ndarray, maximize: bool) -> np.ndarray:
    """Solve max/min cost·x, row_lo <= A x <= row_hi, 0 <= x <= col_hi with HiGHS; ``rows[k]``/``vals[k]``
    are the row indices and coefficients of the k-th group of columns (stacked as a column-wise matrix)."""
    import highspy

    index = np.concatenate([r.ravel() for r in rows]).astype(np.int32)
    value = np.concatenate([v.ravel() for v in vals]).astype(float)
    per_col = np.concatenate([np.full(r.shape[0], r.shape[1]) for r in rows])
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(cost), len(row_lo)
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, np.zeros(len(cost)), col_hi
    lp.row_lower_, lp.row_upper_ = row_lo, row_hi
    lp.sense_ = highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(per_col)]).astype(np.int32)
    lp.a_matrix_.index_, lp.a_matrix_.value_ = index, value
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"offline LP: {h.modelStatusToString(status)}")
    return np.asarray(h.getSolution().col_value)


def offline_lp(sessions: Sequence[AcnSession], cap_kw: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Hindsight optimum: maximise total kWh s.t. each session gets <= its request, rates in [0, 32] A only
    while it is really plugged in, site current <= cap in every period (no row when uncapped).

    Rows: one per session (its kWh), then one per period (site amps). Returns (kWh per session, site kW
    per period)."""
    sess, per = _columns(sessions)
    n_s, horizon, n = len(sessions), int(per.max()) + 1, len(sess)
    req = np.array([s.requested_kwh for s in sessions])
    if cap_kw is None:
        rows, vals = [sess[:, None]], [np.full((n, 1), KWH_PER_A_PERIOD)]
        row_lo, row_hi = np.zeros(n_s), req
    else:
        rows = [np.column_stack([sess, n_s + per])]
        vals = [np.tile([KWH_PER_A_PERIOD, 1.0], (n, 1))]
        row_lo = np.zeros(n_s + horizon)
        row_hi = np.concatenate([req, np.full(horizon, cap_kw * 1000 / VOLTAGE)])
    x = _solve_lp(np.full(n, KWH_PER_A_PERIOD), np.full(n, MAX_A), rows, vals, row_lo, row_hi, maximize=True)
    x = np.clip(x, 0.0, MAX_A)
    kwh = np.bincount(sess, weights=x * KWH_PER_A_PERIOD, minlength=n_s)
    kw = np.bincount(per, weights=x, minlength=horizon) * VOLTAGE / 1000
    return kwh, kw


def offline_min_peak(sessions: Sequence[AcnSession]) -> float:
    """Smallest constant site cap (kW) at which every session still gets ``min(request, 32 A for its stay)``,
    i.e. all it gets uncapped. One LP: minimise P s.t. those energies, site current <= P in every period."""
    sess, per = _columns(sessions)
    n_s, horizon, n = len(sessions), int(per.max()) + 1, len(sess)
    full = np.array([min(s.requested_kwh, MAX_A * KWH_PER_A_PERIOD * (s.departure - s.arrival))
                     for s in sessions])
    rows = [np.column_stack([sess, n_s + per]), n_s + np.arange(horizon)[None, :]]   # last column: P (amps)
    vals = [np.tile([KWH_PER_A_PERIOD, 1.0], (n, 1)), np.full((1, horizon), -1.0)]
    cost = np.append(np.zeros(n), 1.0)
    row_lo = np.concatenate([full, np.full(horizon, -np.inf)])
    row_hi = np.concatenate([full, np.zeros(horizon)])
    x = _solve_lp(cost, np.append(np.full(n, MAX_A), np.inf), rows, vals, row_lo, row_hi, maximize=False)
    return float(x[-1]) * VOLTAGE / 1000


def offline(sessions: Sequence[AcnSession], cap_kw: float | None) -> Row:
    tick = time.perf_counter()
    kwh, kw = offline_lp(sessions, cap_kw)
    return score("offline", cap_kw, sessions, {s.session_id: float(v) for s, v in zip(sessions, kwh)}, kw,
                 time.perf_counter() - tick)


# ---------------------------------------- the bench

@dataclass
class Report:
    site: str
    start: str
    days: int
    sessions: int
    stations: int
    requested_kwh: float
    deliverable_kwh: float                  # uncapped offline optimum (= everything deliverable at 32 A)
    offline_min_peak_kw: float | None
    rows: list[Row]
    targets: list[tuple[str, bool | None, str]]
    wall_s: float
    load_stats: dict[str, int]
    command: str = ""
    planner: str = ""


def run_bench(site: str, start: datetime, sessions: Sequence[AcnSession], caps: Sequence[float | None],
              algorithms: Sequence[str] = ALGORITHMS, log: Log | None = print,
              station_ids: Sequence[str] | None = None, days: int = 0,
              load_stats: dict[str, int] | None = None) -> Report:
    """Every requested algorithm at every cap, plus the offline yardsticks, and the verdict on the targets."""
    tick = time.perf_counter()
    say = log or (lambda _m: None)
    station_ids = list(station_ids or stations(sessions))
    requested = sum(s.requested_kwh for s in sessions)
    deliverable = float(offline_lp(sessions, None)[0].sum())
    min_peak = offline_min_peak(sessions) if "offline" in algorithms else None
    say(f"{site}: {len(sessions)} sessions at {len(station_ids)} EVSEs from {start:%Y-%m-%d %H:%M} UTC, "
        f"{requested:.0f} kWh requested, {deliverable:.0f} kWh deliverable uncapped "
        f"({100 * deliverable / requested:.2f} %)"
        + (f", offline minimum peak {min_peak:.2f} kW" if min_peak is not None else ""))
    rows: list[Row] = []
    unc = None
    if "uncontrolled" in algorithms:
        say("  uncontrolled (simulated once, scored against every cap) ...")
        unc = simulate("uncontrolled", sessions, start, None, station_ids, log)
        say(f"  uncontrolled: peak {unc.peak_kw:.1f} kW, {unc.energy_pct:.2f} % ({unc.wall_s:.0f} s)")
    for cap in caps:
        say(f"cap {_cap_str(cap)}:")
        if unc is not None:
            r = Row(**asdict(unc))
            r.rescore(cap)
            rows.append(r)
        for name in ("llf", "edf", "ours"):
            if name in algorithms:
                rows.append(simulate(name, sessions, start, cap, station_ids, log))
                say("  " + _line(rows[-1]))
        if "offline" in algorithms:
            rows.append(offline(sessions, cap))
            say("  " + _line(rows[-1]))
    report = Report(site, start.isoformat(), days, len(sessions), len(station_ids), requested, deliverable,
                    min_peak, rows, [], 0.0, load_stats or {})
    report.targets = check_targets(report, caps)
    report.wall_s = time.perf_counter() - tick
    return report


Target = tuple[str, bool | None, str]   # (target, PASS/FAIL or None if this run cannot judge it, evidence)


def check_targets(rep: Report, caps: Sequence[float | None]) -> list[Target]:
    by = {(r.algorithm, r.cap_kw): r for r in rep.rows}
    out: list[Target] = []

    def pairs(a: str, b: str) -> list[tuple[float | None, Row, Row]]:
        return [(c, by[a, c], by[b, c]) for c in caps if (a, c) in by and (b, c) in by]

    p = pairs("ours", "llf")
    bad = [f"{_cap_str(c)}: {o.energy_pct:.2f}/{o.served_pct:.1f} vs {x.energy_pct:.2f}/{x.served_pct:.1f}"
           for c, o, x in p if o.energy_pct < x.energy_pct or o.served_pct < x.served_pct]
    out.append(("ours >= LLF in energy % and in sessions served % at every cap",
                (not bad) if p else None, "; ".join(bad) or "ok"))

    judged = [(c, o, f) for c, o, f in pairs("ours", "offline") if f.energy_pct >= 85.0]
    bad = [f"{_cap_str(c)}: {o.energy_pct:.2f} vs {f.energy_pct:.2f}" for c, o, f in judged
           if o.energy_pct < f.energy_pct - 0.5]
    where = ", ".join(_cap_str(c) for c, _, _ in judged) or "no cap"
    out.append(("ours within 0.5 point of the offline optimum's energy % wherever that is >= 85 %",
                (not bad) if judged else None, f"{'; '.join(bad) or 'ok'} (judged at: {where})"))

    o = by.get(("ours", None))
    name = "uncapped: ours >= 99.8 % of the deliverable energy and peak <= 1.05 x the offline minimum peak"
    if o is not None and rep.offline_min_peak_kw is not None:
        share = 100 * o.delivered_kwh / rep.deliverable_kwh
        ratio = o.peak_kw / rep.offline_min_peak_kw
        out.append((name, share >= 99.8 and ratio <= 1.05,
                    f"{share:.2f} % of {rep.deliverable_kwh:.1f} kWh; peak {o.peak_kw:.2f} kW = "
                    f"{ratio:.3f} x {rep.offline_min_peak_kw:.2f} kW"))
    else:
        out.append((name, None, "needs ours and offline at cap none"))

    ours = [r for r in rep.rows if r.algorithm == "ours"]
    v = sum(r.violations for r in ours)
    out.append(("ours: 0 limit violations", (v == 0) if ours else None, f"{v} periods above the cap"))
    p95 = [r.plan_p95_ms for r in ours if r.plan_p95_ms is not None]
    cpu = [r.plan_cpu_p95_ms for r in ours if r.plan_cpu_p95_ms is not None]
    out.append(("ours: plan p95 <= 100 ms at every cap", (max(p95) <= 100.0) if p95 else None,
                (f"worst p95 {max(p95):.1f} ms (CPU time: {max(cpu):.1f} ms; wall time grows with the machine's "
                 f"load, load average {os.getloadavg()[0]:.1f})") if p95 else "no plans"))
    return out


# ---------------------------------------- output

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"uncontrolled": "uncontrolled", "llf": "LLF", "edf": "EDF", "ours": "ours",
         "offline": "offline optimum"}


def planner_fingerprint() -> str:
    """Which planner was measured: git HEAD, whether csms/scheduling differs from it, and a hash of its files
    (the planner changes often; numbers are only comparable between equal fingerprints)."""
    files = sorted((ROOT / "csms" / "scheduling").glob("*.py"))
    digest = hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()[:12]

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    bench = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    head = git("rev-parse", "--short", "HEAD") or "?"
    changed = git("status", "--porcelain", "--", "csms/scheduling")
    dirty = " + uncommitted csms/scheduling changes" if changed else ""
    return f"git {head}{dirty}, csms/scheduling sha256 {digest}, bench/acn_quality.py sha256 {bench}"


def _cap_str(cap: float | None) -> str:
    return "none" if cap is None else f"{cap:g} kW"


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _line(r: Row) -> str:
    extra = ""
    if r.algorithm == "ours":
        extra = (f"  plan {_ms(r.plan_mean_ms)}/{_ms(r.plan_p95_ms)}/{_ms(r.plan_max_ms)} ms "
                 f"(mean/p95/max), CPU {_ms(r.plan_cpu_mean_ms)}/{_ms(r.plan_cpu_p95_ms)} ms (mean/p95), "
                 f"{r.calls} calls, fallbacks {sum(r.fallbacks.values())}, "
                 f"bad rates {r.bad_rates}")
    return (f"{_cap_str(r.cap_kw):>8} {r.algorithm:<12} energy {r.energy_pct:6.2f} %  "
            f"served {r.served_pct:5.1f} %  peak {r.peak_kw:6.2f} kW  viol {r.violations:4d}  "
            f"({r.wall_s:.0f} s){extra}")


def markdown(rep: Report) -> str:
    share = 100 * rep.deliverable_kwh / rep.requested_kwh
    peak = f"; offline minimum peak {rep.offline_min_peak_kw:.2f} kW" if rep.offline_min_peak_kw else ""
    lines = [f"### {rep.site}, {rep.start[:10]} + {rep.days} days", "",
             f"{rep.sessions} sessions at {rep.stations} EVSEs, {rep.requested_kwh:.0f} kWh requested, "
             f"{rep.deliverable_kwh:.0f} kWh deliverable uncapped ({share:.2f} %){peak}.", "",
             "| cap | algorithm | energy % | served % | peak kW | violations | plan mean ms | plan p95 ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rep.rows:
        lines.append(f"| {_cap_str(r.cap_kw)} | {NAMES[r.algorithm]} | {r.energy_pct:.2f} | "
                     f"{r.served_pct:.1f} | {r.peak_kw:.2f} | {r.violations} | {_ms(r.plan_mean_ms)} | "
                     f"{_ms(r.plan_p95_ms)} |")
    lines += ["", "Targets:", ""]
    lines += [f"- {_verdict(ok)}: {name} ({why})" for name, ok, why in rep.targets]
    online = [r for r in rep.rows if r.algorithm in ("llf", "edf", "ours")]
    if online:
        lines += ["", "Diagnostics: *unused* = periods in which the site drew more than one minimum "
                  "current (1.25 kW) less than the plugged-in cars could take (each up to 32 A or its "
                  "remaining demand, if over one period at 6 A) and the cap allowed (kWh: that room). "
                  "*Short* = "
                  "sessions > 0.1 kWh short of min(request, 32 A from arrival to the earlier of actual and "
                  "estimated departure), split into cars that stayed until their estimate (uncapped, nothing "
                  "excuses these) and cars that left before it. *Near misses* = sessions 0.1..1 kWh short of "
                  "their request.", "",
                  "| cap | algorithm | unused periods (kWh) | short, stayed (kWh) | short, left early (kWh) "
                  "| near misses |", "|---|---|---:|---:|---:|---:|"]
        for r in online:
            lines.append(f"| {_cap_str(r.cap_kw)} | {NAMES[r.algorithm]} | {r.unused_periods} "
                         f"({r.unused_kwh:.1f}) | {r.short_stayed} ({r.short_stayed_kwh:.1f}) | "
                         f"{r.short_left_early} ({r.short_left_early_kwh:.1f}) | {r.near_misses} |")
    lines += ["", f"Wall time {rep.wall_s / 60:.1f} min; planner: {rep.planner or '?'}."]
    if rep.command:
        lines += ["", f"`{rep.command}`"]
    return "\n".join(lines) + "\n"


def _plain(o: object) -> object:
    """numpy scalars (acnportal's energies are numpy floats) as plain Python numbers."""
    return o.item() if isinstance(o, np.generic) else str(o)


def to_json(rep: Report) -> dict:
    d = asdict(rep)
    for r in d["rows"]:
        r.pop("power_kw")
    d["targets"] = [{"target": n, "result": _verdict(ok), "evidence": e} for n, ok, e in rep.targets]
    return d


def history(site: str, start: date, days: int, forecast_days: int) -> list[PastSession]:
    """The sessions a live CSMS would have seen before each day: ``forecast_days`` before ``start`` (as far as
    the data goes) and the window itself (the forecast only reads days before the one it plans). Energy is the
    request, at most what 32 A deliver over the stay."""
    if forecast_days <= 0:
        return []
    first = start - timedelta(days=forecast_days)
    t0, past, _ = load(site, first, forecast_days + days, PERIOD_MIN)
    period = timedelta(minutes=PERIOD_MIN)
    return [PastSession(t0 + s.arrival * period, t0 + s.departure * period,
                        1000 * min(s.requested_kwh, MAX_A * KWH_PER_A_PERIOD * (s.departure - s.arrival)))
            for s in past]


def stated_history(site: str, start: date, days: int, lookback_days: int) -> list[tuple[datetime, datetime]]:
    """(stated departure, departure) of the sessions from ``lookback_days`` before ``start`` (as far as the data
    goes) to the window's end; "stated" is what the schedulers are told (``DEPARTURES``). An estimate at or
    before the arrival states nothing."""
    first = start - timedelta(days=lookback_days)
    t0, past, _ = load(site, first, lookback_days + days, PERIOD_MIN)
    period = timedelta(minutes=PERIOD_MIN)
    return [(t0 + (s.departure if DEPARTURES == "actual" else s.est_departure) * period, t0 + s.departure * period)
            for s in past if DEPARTURES == "actual" or s.est_departure > s.arrival]


def parse_caps(text: str) -> list[float | None]:
    return [None if c.strip().lower() in ("none", "uncapped", "inf") else float(c) for c in text.split(",")]


def main(argv: Sequence[str] | None = None) -> Report:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--site", choices=("caltech", "jpl"), default="caltech")
    ap.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START,
                    help="first local day, YYYY-MM-DD (default %(default)s)")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--caps", default=DEFAULT_CAPS, help="kW, 'none' = uncapped (default %(default)s)")
    ap.add_argument("--algorithms", default=",".join(ALGORITHMS), help="subset of %(default)s")
    ap.add_argument("--markdown", type=Path, help="write the tables as Markdown here")
    ap.add_argument("--json", type=Path, help="write all numbers as JSON here")
    ap.add_argument("--forecast-days", type=int, default=FORECAST_DAYS[0],
                    help="days of history before each day that ours forecasts arrivals from, as the live service "
                         "does (smart_charging.arrival_forecast_days; 0 = no forecast; default %(default)s)")
    ap.add_argument("--quiet-day-fraction", type=float, default=QUIET_DAY_FRACTION[0],
                    help="days with fewer sessions than this share of the median day's are left out of the "
                         "forecast (smart_charging.arrival_forecast_quiet_fraction; 0 = none; "
                         "default %(default)s)")
    ap.add_argument("--departures", choices=("estimated", "actual"), default="estimated",
                    help="what LLF, EDF and ours are told: the driver's estimate (default) or the actual departure")
    ap.add_argument("--forecast", choices=("history", "oracle", "oracle-mean", "oracle-groups"), default="history",
                    help="expected arrivals from the days before (history, as the live service) or the window's "
                         "own future sessions one by one (oracle: diagnostics only; oracle-mean: a stay past the "
                         "horizon counts its part inside at its mean rate, the rule before 2026-12-07; "
                         "oracle-groups: the same cars grouped by hour of arrival as the history forecast groups)")
    ap.add_argument("--oracle-departure-bin-s", type=float, default=0.0,
                    help="with --forecast oracle-groups: group by departure too, in bins of this many seconds "
                         "(default 0: by hour of arrival only, as the history forecast)")
    ap.add_argument("--slot-s", type=int, default=900,
                    help="planner slot length in seconds, horizon 24 h (default %(default)s; diagnostics)")
    ap.add_argument("--margin", choices=("auto", "learned", "configured", "none"),
                    default={"auto": "auto", True: "learned", False: "configured"}[MARGIN_LEARNED[0]],
                    help="the departure margin ours plans with (smart_charging.departure_margin_learned): auto, "
                         "learned from the site's history where the plan has a forecast (uncapped) and the "
                         "configured one under a cap; learned at every cap; the configured one; or none (diagnostics). "
                         "Default: as the shipped config, %(default)s")
    ap.add_argument("--reserve-pct", type=float, default=RESERVE_FRAC[0] * 100,
                    help="share of the paid peak kept free for unforeseen cars while there is no forecast "
                         "(smart_charging.peak_reserve_without_forecast_pct, default %(default)s; 0 = off)")
    ap.add_argument("--reserve-idle-pct", type=float, default=RESERVE_IDLE_FRAC[0] * 100,
                    help="... plus this share of each idle EVSE's power (smart_charging.peak_reserve_idle_evse_pct, "
                         "default %(default)s; 0 = off)")
    ap.add_argument("--dump-power", type=Path,
                    help="save each online run's site power per period (kW) as DIR/<algorithm>_<cap>.npy")
    args = ap.parse_args(argv)
    global DEPARTURES, POWER_DUMP, SLOT_S, HORIZON_SLOTS
    DEPARTURES = args.departures
    POWER_DUMP = args.dump_power
    NO_MARGIN[0] = args.margin == "none"
    MARGIN_LEARNED[0] = {"auto": "auto", "learned": True}.get(args.margin, False)
    STATED.clear()                    # loaded below only where the margin is learned
    RESERVE_FRAC[0] = args.reserve_pct / 100.0
    RESERVE_IDLE_FRAC[0] = args.reserve_idle_pct / 100.0
    SLOT_S, HORIZON_SLOTS = args.slot_s, 86400 // args.slot_s
    if POWER_DUMP is not None:
        POWER_DUMP.mkdir(parents=True, exist_ok=True)
    algorithms = [a.strip().lower() for a in args.algorithms.split(",")]
    if set(algorithms) - set(ALGORITHMS):
        ap.error(f"unknown algorithms {sorted(set(algorithms) - set(ALGORITHMS))}")
    caps = parse_caps(args.caps)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    planner = planner_fingerprint()
    start, sessions, stats = load(args.site, args.start, args.days, PERIOD_MIN)
    # The flag sets both how much history is loaded and how far back the forecast reads it (it used to load
    # forecast_days of history while expected_arrivals kept its default 14-day lookback).
    FORECAST_DAYS[0] = args.forecast_days
    QUIET_DAY_FRACTION[0] = args.quiet_day_fraction
    HISTORY[:] = history(args.site, args.start, args.days, args.forecast_days)
    if args.forecast.startswith("oracle"):
        ORACLE_RULE[0] = {"oracle-mean": "mean", "oracle-groups": "groups"}.get(args.forecast, "must")
        ORACLE_DEP_BIN_S[0] = args.oracle_departure_bin_s
        period = timedelta(minutes=PERIOD_MIN)
        ORACLE[:] = [PastSession(start + s.arrival * period, start + s.departure * period,
                                 1000 * min(s.requested_kwh, MAX_A * KWH_PER_A_PERIOD * (s.departure - s.arrival)))
                     for s in sessions]
        expected_mod.MAX_GROUPS = 96      # one virtual EVSE per future car (a day brings up to ~60)
    if MARGIN_LEARNED[0] is not False:
        STATED[:] = stated_history(args.site, args.start, args.days, SmartChargingConfig().departure_margin_days)
    print(f"planner: {planner}; load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"loaded {args.site} {args.start} + {args.days} days: {stats}", flush=True)
    rep = run_bench(args.site, start, sessions, caps, algorithms, log=lambda m: print(m, flush=True),
                    days=args.days, load_stats=stats)
    rep.planner = planner
    cfg = SmartChargingConfig()
    rep.command = (f".venv/bin/python bench/acn_quality.py --site {args.site} --start {args.start} "
                   f"--days {args.days} --caps {','.join('none' if c is None else f'{c:g}' for c in caps)} "
                   f"--algorithms {','.join(algorithms)} --departures {args.departures} --margin {args.margin}"
                   + (f" --forecast {args.forecast}" if args.forecast != "history" else "")
                   + (f" --forecast-days {args.forecast_days}" if args.forecast_days != cfg.arrival_forecast_days else "")
                   + (f" --quiet-day-fraction {args.quiet_day_fraction:g}"
                      if args.quiet_day_fraction != cfg.arrival_forecast_quiet_fraction else "")
                   + (f" --slot-s {args.slot_s}" if args.slot_s != 900 else "")
                   + (f" --reserve-pct {args.reserve_pct:g}"
                      if args.reserve_pct != cfg.peak_reserve_without_forecast_pct else "")
                   + (f" --reserve-idle-pct {args.reserve_idle_pct:g}"
                      if args.reserve_idle_pct != cfg.peak_reserve_idle_evse_pct else ""))
    print()
    print(markdown(rep))
    for name, ok, why in rep.targets:
        print(f"TARGET {_verdict(ok)}: {name} -- {why}")
    print(f"wall time {rep.wall_s:.0f} s ({rep.wall_s / 60:.1f} min); load average {os.getloadavg()[0]:.1f}",
          flush=True)
    if args.markdown:
        args.markdown.write_text(markdown(rep))
    if args.json:
        args.json.write_text(json.dumps(to_json(rep), indent=1, default=_plain))
    return rep


if __name__ == "__main__":
    main()
