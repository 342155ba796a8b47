"""Input side of the site load-balancing optimizer: frozen, unit-named dataclasses.

Everything the optimizer knows arrives here as plain values. There is no clock: ``SchedulingInput.start`` is
the beginning of slot 0 and every other time is converted to a slot index relative to it, so rolling the
horizon forward is just a new ``start``.

Per-slot series (``PerSlot``) are either a scalar (constant over the horizon) or a tuple of per-slot values;
a tuple shorter than the horizon repeats its last value, an empty tuple means "no value" (the static limit,
zero load, zero price).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

PerSlot = float | tuple[float, ...]
PHASES: tuple[int, int, int] = (1, 2, 3)


class SchedulingError(Exception):
    """Base of the errors raised inside the scheduling package."""


class InvalidInput(SchedulingError, ValueError):
    """The input is inconsistent (unknown EVSE, cycle in the circuit tree, ...): a caller bug, always raised."""


class Infeasible(SchedulingError):
    """The LP reported infeasible. Internal only: ``plan()`` answers with the fallback instead."""


class SolverUnavailable(SchedulingError):
    """HiGHS is missing or failed (error, time limit). Internal only: ``plan()`` answers with the fallback."""


def series_value(values: PerSlot, slot: int, default: float) -> float:
    """Value of a ``PerSlot`` series at ``slot`` (scalar = constant; short tuple repeats its last value)."""
    if isinstance(values, (int, float)):
        return float(values)
    if not values:
        return default
    return float(values[min(slot, len(values) - 1)])


@dataclass(frozen=True, slots=True)
class EvseSpec:
    """One EVSE (one plug that can charge at a time).

    ``phases`` names the site phases (L1..L3) its conductors land on, which encodes phase rotation: a
    single-phase EVSE on site L2 is ``(2,)``. It draws ``current_a`` on each of them, so its power is
    ``current_a * voltage_v * len(phases)``. ``min_current_a`` is the IEC 61851 minimum: the EVSE is offered
    either 0 A or at least this much.
    """

    evse_key: str
    max_current_a: float
    min_current_a: float = 6.0
    phases: tuple[int, ...] = PHASES
    voltage_v: float = 230.0

    @property
    def watts_per_amp(self) -> float:
        return self.voltage_v * len(self.phases)


@dataclass(frozen=True, slots=True)
class CircuitSpec:
    """A node of the site tree (site → circuits → EVSEs). The root (``parent=None``) is the grid connection.

    ``max_current_a`` is per phase; ``max_power_w`` is total over phases. Either may be None (no such limit).
    ``current_limit_a_by_slot`` / ``power_limit_w_by_slot`` are time-varying caps (e.g. a DSO signal); the
    effective limit in a slot is the smaller of the static and the per-slot value.
    """

    name: str
    parent: str | None = None
    max_current_a: float | None = None
    max_power_w: float | None = None
    evse_keys: tuple[str, ...] = ()
    current_limit_a_by_slot: tuple[float, ...] = ()
    power_limit_w_by_slot: tuple[float, ...] = ()

    def current_limit_a(self, slot: int) -> float:
        return _min_limit(self.max_current_a, self.current_limit_a_by_slot, slot)

    def power_limit_w(self, slot: int) -> float:
        return _min_limit(self.max_power_w, self.power_limit_w_by_slot, slot)


def _min_limit(static: float | None, by_slot: tuple[float, ...], slot: int) -> float:
    limit = math.inf if static is None else float(static)
    if by_slot:
        limit = min(limit, series_value(by_slot, slot, math.inf))
    return limit


@dataclass(frozen=True, slots=True)
class BaseLoad:
    """Non-EV load measured or forecast on a circuit (and therefore on all its ancestors), per phase."""

    circuit: str
    phase_current_a: tuple[PerSlot, PerSlot, PerSlot] = (0.0, 0.0, 0.0)
    voltage_v: float = 230.0

    @classmethod
    def balanced_power(cls, circuit: str, power_w: PerSlot, voltage_v: float = 230.0) -> BaseLoad:
        """A load of ``power_w`` spread evenly over the three phases."""
        per_phase: PerSlot
        if isinstance(power_w, (int, float)):
            per_phase = float(power_w) / (3 * voltage_v)
        else:
            per_phase = tuple(p / (3 * voltage_v) for p in power_w)
        return cls(circuit, (per_phase, per_phase, per_phase), voltage_v)

    def current_a(self, phase: int, slot: int) -> float:
        return series_value(self.phase_current_a[phase - 1], slot, 0.0)


@dataclass(frozen=True, slots=True)
class FixedDraw:
    """An EVSE the optimizer must not plan (offline, rejected its profile, profile in flight).

    It is assumed to draw ``current_a`` per phase (what it last accepted, or its max) on its phases; the draw is
    subtracted from every limit on its path and the EVSE gets no planned current.
    """

    evse_key: str
    current_a: PerSlot


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """A car plugged in (``arrival=None``) or expected (``arrival`` in the future) at an EVSE.

    ``energy_needed_wh`` is what is still to be delivered. ``departure`` is a *known* departure (stated by the
    EV or driver, a booking's end, or learned from the driver's history); ``None`` means unknown, and the plan
    is then risk-averse: the session charges as early as limits and fairness allow, and no price or peak
    shifting uses its time (it is planned to the horizon end, but its energy is worth more the sooner it
    comes). ``max_current_a`` is the EV's own limit per phase. ``priority`` weights the value of this
    driver's energy (from the driver's group; 1.0 is normal, must be > 0). ``ev_phases`` is how many of the
    EVSE's phases the car really draws on (measured per-phase current, 2.0.1 charging needs; None: all of
    them). The car's energy is planned with it; limits stay counted on every phase the EVSE is wired to,
    which is safe whichever conductor a one-phase car uses.
    """

    session_key: str
    evse_key: str
    energy_needed_wh: float
    departure: datetime | None = None
    arrival: datetime | None = None
    max_current_a: float | None = None
    priority: float = 1.0
    ev_phases: int | None = None


@dataclass(frozen=True, slots=True)
class ExpectedArrival:
    """Cars expected to arrive around ``arrival`` and leave around ``departure``, as one flexible demand:
    ``energy_wh`` together, drawn by ``cars`` cars (a mean over past days, so it may be fractional)."""

    arrival: datetime
    departure: datetime
    energy_wh: float
    cars: float


@dataclass(frozen=True, slots=True)
class ObjectiveWeights:
    """Weights of the objective terms (see docs/scheduling.md, "Objective").

    The plan is lexicographic, solved in two stages on one persistent model:

    1. **energy**: the most priority-weighted energy and, for sessions whose departure is unknown, a reward
       for early kWh (``unknown_early_per_kwh``: risk-averse, they may leave any time);
    2. with the stage-1 value held (within a relative ``lex_tolerance``): a lower site peak
       (``peak_per_kw``: valley filling), then price (``cost_weight`` × price_per_kwh), then fair delivered
       fractions (``fairness_*``: a concave reward, so a scarce limit is shared) and earliness
       (``early_per_kwh``, with per-slot fair shares in the first ``share_slots`` slots).

    So no price or peak consideration ever costs a driver energy. ``lexicographic=False`` solves one weighted
    sum of all terms instead (one solve; energy dominates only as far as the weights make it).
    """

    delivered_per_kwh: float = 100.0       # value of one kWh to a priority-1.0 driver (stage 1)
    unknown_early_per_kwh: float = 1.0     # stage 1: bonus for a kWh now, decaying to 0 at the horizon end,
                                           # for sessions with an unknown departure (× priority)
    early_per_kwh: float = 0.05            # stage 2: bonus for a kWh in slot 0, decaying linearly to 0 at
                                           # horizon end (× priority × urgency of the session)
    cost_weight: float = 1.0               # stage 2: multiplies price_per_kwh × kWh
    completed_per_session: float = 5.0     # stage 2: per driver's delivered fraction (completes small needs)
    peak_per_kw: float = 10.0              # stage 2: on the highest site load in the horizon, above the floor
    # stage 2: on slot 0's site load above the floor (objectives.peak_now). A tie-break under the peak: deferring
    # slot 0's load over n later slots raises their peak by 1/n of it, which must cost more (peak_per_kw/n, n up
    # to the horizon and slot 0 as short as 5 minutes), else every re-plan would put charging off.
    now_peak_per_kw: float = 0.02
    # False: no shaving below the site's own power limit (the floor is raised to it). With a binding limit a
    # lower peak only moves energy later, and cars arriving meanwhile then compete for it: measured on ACN
    # sessions it cost 1-3 points of energy. True: shave below the limit too (demand charges under a cap).
    shave_below_limit: bool = False
    # Equal delivered fractions (stage 2, off by default): a concave reward on each driver's fraction of need
    # and a max-min term. Measured on a day of ACN sessions with drivers' estimated departures, either one
    # cost 2-5 points of energy against least-laxity-first order (spreading the limit over everyone leaves
    # the drivers who go early with less), so the default orders by urgency instead (``early_per_kwh``).
    fairness_segments: int = 4             # concave (piecewise) reward on each driver's fraction
    fairness_decay: float = 0.2            # the last segment is worth (1 - decay·(K-1)/K) of the first ...
    fairness_per_kwh: float = 0.0          # ... in units of this weight per kWh
    fairness_min_fraction: float = 0.0     # reward per unit of the smallest delivered fraction
    # Per-slot shares of the first ``share_slots`` slots (0 = off): least laxity first, equal drivers split
    # (heuristics.fair_shares). A session with an unknown departure is planned its share as early as possible
    # in stage 1; in stage 2 current up to the share earns (1 + share_premium)× the early reward, so equal
    # drivers split a binding limit instead of one taking it all (the LP's vertex).
    share_slots: int = 8
    share_premium: float = 3.0
    # For ranking only (urgency, shares): a session whose departure is unknown is ranked as having this much
    # slack. Its energy is still planned to the horizon end, and its share is never shifted later.
    unknown_slack_h: float = 1.0
    lexicographic: bool = True
    lex_tolerance: float = 0.0             # stage 2 may lose this share of the stage-1 value (HiGHS keeps
                                           # its own 1e-7 feasibility tolerance on the guard row)


@dataclass(frozen=True, slots=True)
class SolverOptions:
    """How ``plan()`` solves. ``time_limit_s`` is the budget of one ``plan()`` (both stages), handed to HiGHS
    per solve: a persistent HiGHS instance would otherwise count it against its whole life (HiGHS #1331)."""

    time_limit_s: float = 10.0
    cold_method: Literal["ipm", "simplex", "choose"] = "ipm"   # ipm is ~4× faster on big cold solves
    # "auto": primal simplex when the change only relaxes the LP (arrivals, raised limits, new prices: the
    # previous optimum stays feasible), else dual simplex, or ipm on models above 50k columns.
    warm_method: Literal["auto", "ipm", "simplex", "choose"] = "auto"
    threads: int | None = None
    force_fallback: bool = False           # skip the LP and answer with equal_share (tests, ops kill switch)


@dataclass(frozen=True, slots=True)
class SchedulingInput:
    """Everything one plan needs. ``start`` must be tz-aware (UTC) and is *now*.

    Slot 0 runs from ``start`` for ``first_slot_s`` seconds (default: a whole slot), up to the next boundary
    of the operator's slot grid; every later slot is ``slot_s`` long, so slot ``t >= 1`` covers
    ``[start + first_slot_s + (t-1)·slot_s, ... + slot_s)``. Re-planning inside a slot therefore keeps the
    same breakpoints, and the current planned for slot 0 is what a car should draw until the next re-plan.
    ``price_per_kwh`` is a ``PerSlot`` series.
    """

    start: datetime
    circuits: tuple[CircuitSpec, ...]
    evses: tuple[EvseSpec, ...]
    sessions: tuple[SessionSpec, ...] = ()
    fixed_draws: tuple[FixedDraw, ...] = ()
    base_loads: tuple[BaseLoad, ...] = ()
    price_per_kwh: PerSlot = ()
    slot_s: int = 900
    horizon_slots: int = 96
    weights: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    first_slot_s: float | None = None
    #: Site power (kW, at the root, all loads) already reached in the current demand-charge period: load up
    #: to it costs no extra demand charge, so the peak term only counts what goes above it.
    peak_floor_kw: float = 0.0
    #: The longest time (s) until the caller plans again (its re-plan timer). Slot 0 is planned only that far;
    #: its currents still hold to the grid boundary (safe: that is what the profile says), but a car that
    #: can finish within this time is offered the current that finishes it, not its need spread thinly over
    #: the whole slot. None: slot 0 is planned to the boundary.
    replan_s: float | None = None
    #: Cars not plugged in yet, as flexible demand (from the site's history, ``csms.scheduling.forecast``).
    #: The plan schedules them too, at a tiny priority, so that the cars that are here charge early enough
    #: to leave room for those expected later instead of discovering at noon that the morning's cars still
    #: need the capacity the midday arrivals need too (``csms.scheduling.expected``). Ignored where the
    #: site's limit is the peak's floor (a site with a limit that does not shave below it).
    expected_arrivals: tuple[ExpectedArrival, ...] = ()
    #: Without a forecast (a new site, too little history; ignored when ``expected_arrivals`` is given): the
    #: share of the peak already paid for
    #: (``peak_floor_kw``) that the peak term keeps free in every slot after slot 0 for cars nobody can
    #: foresee yet. The plan then charges the cars that are here sooner instead of spreading them over their
    #: stays and meeting every later arrival with a higher peak. It feeds the peak term only (never a limit,
    #: never a car's energy), and only where the site shaves its peak (no limit, or ``shave_below_limit``).
    peak_reserve_frac: float = 0.0
    #: ... plus this share of each idle EVSE's power (no session, no fixed draw): where a car can still plug
    #: in. It is large in the morning, when most cars are still to come and the paid peak is small, and fades
    #: as the site fills. Same conditions as ``peak_reserve_frac``, once the period has a peak.
    peak_reserve_idle_frac: float = 0.0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise InvalidInput("start must be timezone-aware (UTC)")
        if self.slot_s <= 0 or self.horizon_slots <= 0:
            raise InvalidInput("slot_s and horizon_slots must be positive")
        if self.first_slot_s is not None and not 0 < self.first_slot_s <= self.slot_s:
            raise InvalidInput("first_slot_s must be in (0, slot_s]")
        if not (0.0 <= self.peak_reserve_frac < 1.0 and 0.0 <= self.peak_reserve_idle_frac <= 1.0):
            raise InvalidInput("peak_reserve_frac must be in [0, 1) and peak_reserve_idle_frac in [0, 1]")

    @property
    def slot_h(self) -> float:
        """Length of a whole slot in hours (slot 0 may be shorter: ``slot_duration_s(0)``)."""
        return self.slot_s / 3600.0

    @property
    def first_s(self) -> float:
        return float(self.slot_s if self.first_slot_s is None else self.first_slot_s)

    def slot_duration_s(self, slot: int) -> float:
        return self.first_s if slot == 0 else float(self.slot_s)

    def slot_start(self, slot: int) -> datetime:
        if slot <= 0:
            return self.start
        return self.start + timedelta(seconds=self.first_s + (slot - 1) * self.slot_s)

    @property
    def end(self) -> datetime:
        return self.slot_start(self.horizon_slots)

    def arrival_slot(self, session: SessionSpec) -> int:
        """First slot the car can charge in: the first slot starting at or after arrival (0 if plugged in)."""
        if session.arrival is None:
            return 0
        return max(0, math.ceil(self.slot_position(session.arrival) - 1e-9))

    def departure_slot(self, session: SessionSpec) -> int:
        """Exclusive end slot. A departure inside slot 0 still plans slot 0 (for the seconds left: see
        ``present_s``); a departure inside a later slot ends the whole slots here, and that slot itself is
        planned at the car's share of it (``departure_share``)."""
        if session.departure is None:
            return self.horizon_slots
        if session.departure <= self.start:
            return 0
        pos = self.slot_position(session.departure)
        return min(self.horizon_slots, max(1, math.floor(pos + 1e-9)))

    def departure_share(self, session: SessionSpec) -> tuple[int, float]:
        """(slot, share) for a departure inside a later slot: that slot (``departure_slot``, the first one not
        planned whole) and the share of it the car is still plugged in, in [0, 1). (0, 0.0) when there is no
        such slot: no stated departure, a departure inside slot 0 (``present_s`` plans it), on a slot edge or
        past the horizon.

        The planner may use that slot at an *average* current of at most the car's max × the share
        (``network._sessions``): planned only up to its start, every plan before it counted the stay short
        and charged the car harder in between (JPL week with a perfect forecast: 167.6 kW where 156.8 kW
        serves every car; ``docs/acn_benchmark.md``). When the slot becomes slot 0 its seconds are planned
        exactly."""
        if session.departure is None or session.departure <= self.start:
            return 0, 0.0
        pos = self.slot_position(session.departure)
        slot = self.departure_slot(session)
        if pos < 1.0 or slot >= self.horizon_slots:
            return 0, 0.0
        share = pos - slot
        return (slot, share) if share > 1e-9 else (0, 0.0)

    @property
    def planned_first_s(self) -> float:
        """How long slot 0 is *planned* for: up to the grid boundary, the next re-plan (``replan_s``) or the
        first departure inside slot 0, whichever comes first.

        Slot 0's currents still hold until the boundary, but after a car leaves, its current is free for the
        others, and the plan cannot say so within one slot. Planning slot 0 only up to that departure gives
        every car in it the same energy per amp (a car leaving in ten minutes is not worth less than one
        staying), and the re-plan at the departure hands out what it frees. Every car present in slot 0 is
        plugged in for the whole of the planned part.
        """
        first = self.first_s if self.replan_s is None else min(self.first_s, max(1.0, self.replan_s))
        for s in self.sessions:
            if s.departure is not None and (s.arrival is None or s.arrival <= self.start):
                left = (s.departure - self.start).total_seconds()
                if 0 < left < first:
                    first = left
        return max(first, 1.0)

    def present_s(self, session: SessionSpec, planned_first_s: float | None = None) -> float:
        """Seconds of planned slot 0 (``planned_first_s``, which callers looping over sessions compute once
        and pass: it walks every session) the car is plugged in."""
        first = self.planned_first_s if planned_first_s is None else planned_first_s
        if session.arrival is not None and session.arrival > self.start:
            return 0.0
        if session.departure is None:
            return first
        return max(0.0, min(first, (session.departure - self.start).total_seconds()))

    def price(self, slot: int) -> float:
        return series_value(self.price_per_kwh, slot, 0.0)

    def slot_position(self, when: datetime) -> float:
        """Where ``when`` falls on the slot axis: 0 at ``start``, 1 at the end of slot 0, t at slot t's start."""
        since = (when - self.start).total_seconds()
        if since <= self.first_s:
            return since / self.first_s
        return 1.0 + (since - self.first_s) / self.slot_s
