"""Compile a ``SchedulingInput`` into dense numpy arrays shared by the LP, the post-pass and the heuristics.

Rows: every circuit gets four rows, ``<name>:L1``, ``<name>:L2``, ``<name>:L3`` (amps per phase) and
``<name>:power`` (kW), whether or not it has such a limit (no limit = infinite capacity). Keeping all four
makes the LP's structure depend only on the topology, so a limit appearing or disappearing is a bound change,
not a rebuild. ``A[r, e]`` is what one amp at EVSE ``e`` adds to row ``r``; ``cap[r, t]`` is what is left of
row ``r`` for planned EVs in slot ``t`` after base load and fixed draws (negative = already overloaded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from csms.scheduling.problem import PHASES, CircuitSpec, InvalidInput, SchedulingInput, series_value

ROW_KINDS: tuple[str, ...] = ("L1", "L2", "L3", "power")
MET_KWH = 1e-3   # a remaining need below this (1 Wh) counts as delivered
Array = NDArray[np.float64]


@dataclass(frozen=True)
class Topology:
    """The part of the input that fixes the LP's structure. Equal topologies share one built model."""

    evse_keys: tuple[str, ...]
    evse_phases: tuple[tuple[int, ...], ...]
    evse_voltage_v: tuple[float, ...]
    circuit_names: tuple[str, ...]          # parents before children (root first)
    circuit_parent: tuple[int, ...]         # index into circuit_names, -1 for the root
    evse_circuit: tuple[int, ...]           # circuit owning each EVSE directly
    horizon_slots: int
    slot_s: int

    @property
    def row_names(self) -> tuple[str, ...]:
        return tuple(f"{c}:{k}" for c in self.circuit_names for k in ROW_KINDS)

    def row(self, circuit: int, kind: int) -> int:
        return circuit * len(ROW_KINDS) + kind

    @property
    def multi_phase(self) -> tuple[int, ...]:
        """EVSEs wired to more than one phase: each gets a second, one-phase column block in the LP, used when
        the car on it charges on one phase (selected by bounds, so no coefficient ever changes)."""
        return tuple(e for e, p in enumerate(self.evse_phases) if len(p) > 1)


def topology_of(inp: SchedulingInput) -> Topology:
    """Validate the site tree and return its structural key (raises ``InvalidInput``)."""
    by_name = {c.name: c for c in inp.circuits}
    if len(by_name) != len(inp.circuits):
        raise InvalidInput("duplicate circuit name")
    roots = [c for c in inp.circuits if c.parent is None]
    if len(roots) != 1:
        raise InvalidInput(f"need exactly one root circuit (the site), got {len(roots)}")
    order = _topological(roots[0], inp.circuits, by_name)
    index = {name: i for i, name in enumerate(order)}
    evse_keys = tuple(e.evse_key for e in inp.evses)
    if len(set(evse_keys)) != len(evse_keys):
        raise InvalidInput("duplicate EVSE key")
    owner: dict[str, int] = {}
    for c in inp.circuits:
        for k in c.evse_keys:
            if k in owner:
                raise InvalidInput(f"EVSE {k} is in two circuits")
            owner[k] = index[c.name]
    for e in inp.evses:
        if e.evse_key not in owner:
            raise InvalidInput(f"EVSE {e.evse_key} is in no circuit")
        if not e.phases or any(p not in PHASES for p in e.phases) or len(set(e.phases)) != len(e.phases):
            raise InvalidInput(f"EVSE {e.evse_key}: phases must be distinct values of 1..3")
    unknown = set(owner) - set(evse_keys)
    if unknown:
        raise InvalidInput(f"circuits name unknown EVSEs: {sorted(unknown)}")
    return Topology(
        evse_keys=evse_keys,
        evse_phases=tuple(tuple(e.phases) for e in inp.evses),
        evse_voltage_v=tuple(e.voltage_v for e in inp.evses),
        circuit_names=tuple(order),
        circuit_parent=tuple(-1 if by_name[n].parent is None else index[str(by_name[n].parent)] for n in order),
        evse_circuit=tuple(owner[k] for k in evse_keys),
        horizon_slots=inp.horizon_slots,
        slot_s=inp.slot_s,
    )


def _topological(root: CircuitSpec, circuits: tuple[CircuitSpec, ...], by_name: dict[str, CircuitSpec]) -> list[str]:
    children: dict[str, list[str]] = {c.name: [] for c in circuits}
    for c in circuits:
        if c.parent is not None:
            if c.parent not in by_name:
                raise InvalidInput(f"circuit {c.name}: unknown parent {c.parent}")
            children[c.parent].append(c.name)
    order, stack = [], [root.name]
    while stack:
        name = stack.pop()
        order.append(name)
        stack.extend(reversed(children[name]))
    if len(order) != len(circuits):
        raise InvalidInput("circuit tree has a cycle or a part not connected to the site")
    return order


@dataclass(frozen=True)
class Network:
    """Dense per-input arrays. E = EVSEs, R = 4·circuits, T = slots. Currents are amps per phase."""

    topo: Topology
    A: Array                 # R×E  contribution of 1 A at EVSE e to row r (A for phase rows, kW for power), as
                             #      the car on it draws: a one-phase car on a three-phase EVSE loads one phase
    limit: Array             # R×T  raw limit (inf = none)
    non_ev: Array            # R×T  base load + fixed draws in the subtree (same units)
    kwh_per_a: Array         # E    kWh 1 A at the EVSE's phases delivers in a whole slot (the LP's coefficient)
    kw_per_a: Array          # E    kW per amp as the car draws (its phases)
    ub: Array                # E×T  allowed current (0 outside the session window / fixed / no session)
    min_a: Array             # E
    need_kwh: Array          # E    remaining need (0 without a session)
    priority: Array          # E    (0 without a session)
    arrival: NDArray[np.int64]    # E  first slot
    departure: NDArray[np.int64]  # E  exclusive end slot (0 without a session)
    fixed_a: Array           # E×T  fixed draw current
    session_keys: tuple[str | None, ...]   # per EVSE
    price: Array             # T    price per kWh
    slot_h: Array            # T    slot lengths in hours (slot 0 runs from now to the next grid boundary)
    kwh_et: Array            # E×T  kWh the car really takes from 1 A in slot t: its own phases, and in slot 0
                             #      only the seconds it is still plugged in
    known_departure: NDArray[np.bool_]   # E  the session's departure was stated (else: unknown, risk-averse)
    one_phase: NDArray[np.bool_]   # E  a one-phase car on a multi-phase EVSE (the LP's one-phase columns)
    energy_scale: Array      # E    car's kWh per amp / kWh per amp counted in A (2/3 for a two-phase car on a
                             #      three-phase EVSE, which is still counted on all three phases: safe)
    present_frac: Array      # E    seconds of slot 0 the car is plugged in / a whole slot (≤ 1)
    peak_floor_kw: float = 0.0   # site power already reached in this demand period: staying under it is free
    #: The peak already paid for this demand period, where the plan shaves the peak (0 where the site's limit
    #: is the floor): slot 0 may be filled up to it with energy planned later (postpass._fill_now).
    paid_peak_kw: float = 0.0
    unknown_slack_slots: float = 4.0   # the slack an unknown departure is ranked with (urgency only)
    #: kW the peak term keeps free after slot 0 for cars no forecast foresees (``_reserve_kw``; 0 with a
    #: forecast or where the site's limit is the peak's floor).
    reserve_kw: float = 0.0

    @cached_property
    def cap(self) -> Array:
        """Headroom for planned EVs, clamped at 0: an overloaded limit forces zero on everything below it."""
        return np.maximum(self.limit - self.non_ev, 0.0)

    @cached_property
    def feasible_need_kwh(self) -> Array:
        """Need capped by what the EVSE alone could deliver in the window (used to scale fairness terms)."""
        capped: Array = np.minimum(self.need_kwh, (self.ub * self.kwh_et).sum(axis=1))
        return capped

    @cached_property
    def peak_load_kw(self) -> Array:
        """T: site power the peak term sees besides the planned EVs: non-EV load, and after slot 0 the reserve
        for cars nobody foresees (``reserve_kw``)."""
        load: Array = self.non_ev[self.topo.row(0, 3)].copy()
        load[1:] += self.reserve_kw
        return load

    @cached_property
    def rounding_unit_kw(self) -> float:
        return _rounding_unit_kw(self.min_a, self.kw_per_a)

    @cached_property
    def urgency(self) -> Array:
        """1/(1 + laxity) per EVSE (0 without an active session); laxity = slots left before departure − slots
        needed at the session's max rate. Least-slack sessions are the most urgent. A session whose departure
        is unknown is ranked as having ``unknown_slack_slots`` of slack: its need is often a default, so a
        laxity computed from it would put every walk-in first in line (ahead of drivers who said when they
        leave), and it is re-planned with the same assumption, so it never drifts to last either."""
        active = self.ub.any(axis=1)
        rate_kwh = np.maximum(self.ub.max(axis=1) * self.kwh_et.max(axis=1), 1e-9)
        laxity = np.maximum(self.departure - self.need_kwh / rate_kwh, 0.0)
        laxity = np.where(self.known_departure, laxity, self.unknown_slack_slots)
        return np.where(active, 1.0 / (1.0 + laxity), 0.0)

    @cached_property
    def early_weight(self) -> Array:
        """priority × urgency: how much a session's kWh *now* is worth against another's (early reward and
        per-slot fair shares), so higher-priority and least-slack drivers get their energy first."""
        return np.where(self.ub.any(axis=1), self.priority, 0.0) * self.urgency

    def overloaded_rows(self, tol: float = 1e-6) -> list[str]:
        names = self.topo.row_names
        return [names[r] for r in np.nonzero((self.limit - self.non_ev < -tol).any(axis=1))[0]]


def compile_network(inp: SchedulingInput, topo: Topology | None = None) -> Network:
    """Turn the input into arrays (validates sessions and fixed draws; raises ``InvalidInput``)."""
    topo = topo or topology_of(inp)
    n_e, n_t, n_c = len(topo.evse_keys), topo.horizon_slots, len(topo.circuit_names)
    evse_index = {k: i for i, k in enumerate(topo.evse_keys)}
    ancestors = _ancestors(topo)
    wired_a = _incidence(inp, topo, ancestors, one_phase=np.zeros(n_e, dtype=bool))
    wired_kw = np.array([e.watts_per_amp / 1000.0 for e in inp.evses])
    limit = _limits(inp, topo)
    fixed_a = np.zeros((n_e, n_t))
    for fd in inp.fixed_draws:
        if fd.evse_key not in evse_index:
            raise InvalidInput(f"fixed draw on unknown EVSE {fd.evse_key}")
        fixed_a[evse_index[fd.evse_key]] = [max(0.0, series_value(fd.current_a, t, 0.0)) for t in range(n_t)]
    # A fixed draw is an unknown car: counted on every wired phase.
    non_ev = wired_a @ fixed_a + _base_loads(inp, topo, ancestors)
    slot_h = np.array([inp.slot_duration_s(t) / 3600.0 for t in range(n_t)])
    slot_h[0] = inp.planned_first_s / 3600.0
    one_phase = _one_phase(inp, topo, evse_index)
    kw_per_a = np.where(one_phase, wired_kw / np.array([len(p) for p in topo.evse_phases]), wired_kw)
    net_fields = _sessions(inp, topo, evse_index, fixed_a, kw_per_a, slot_h, one_phase)
    limit_floor_kw = _limit_floor_kw(inp, limit, topo)
    return Network(
        topo=topo, A=_incidence(inp, topo, ancestors, one_phase), limit=limit, non_ev=non_ev,
        kwh_per_a=wired_kw * inp.slot_h, kw_per_a=kw_per_a, one_phase=one_phase,
        fixed_a=fixed_a, price=np.array([inp.price(t) for t in range(n_t)]), slot_h=slot_h,
        peak_floor_kw=_peak_floor_kw(inp, limit_floor_kw, _rounding_unit_kw(net_fields["min_a"], kw_per_a)),
        paid_peak_kw=float(inp.peak_floor_kw) if limit_floor_kw is None else 0.0,
        reserve_kw=_reserve_kw(inp, limit_floor_kw),
        unknown_slack_slots=inp.weights.unknown_slack_h * 3600.0 / inp.slot_s, **net_fields,
    )


def _one_phase(inp: SchedulingInput, topo: Topology, evse_index: dict[str, int]) -> NDArray[np.bool_]:
    out = np.zeros(len(topo.evse_keys), dtype=bool)
    for s in inp.sessions:
        e = evse_index.get(s.evse_key)
        if e is not None and s.ev_phases == 1 and len(topo.evse_phases[e]) > 1:
            out[e] = True
    return out


def _incidence(inp: SchedulingInput, topo: Topology, ancestors: list[list[int]],
               one_phase: NDArray[np.bool_]) -> Array:
    """R×E: what 1 A at each EVSE adds to each row. A one-phase car charges on the EVSE's first conductor
    (``phases[0]``, which encodes the rotation), so it loads that phase and V × 1 of power."""
    a_mat = np.zeros((len(topo.circuit_names) * 4, len(topo.evse_keys)))
    for e, spec in enumerate(inp.evses):
        phases = spec.phases[:1] if one_phase[e] else spec.phases
        for c in ancestors[topo.evse_circuit[e]]:
            for p in phases:
                a_mat[topo.row(c, p - 1), e] = 1.0
            a_mat[topo.row(c, 3), e] = spec.voltage_v * len(phases) / 1000.0
    return a_mat


def _rounding_unit_kw(min_a: Array, kw_per_a: Array) -> float:
    """The most one admission at the minimum current adds to the site's load: the post-pass may put a slot's
    load up to (less than) this above the LP's (sigma-delta rounding, postpass.py)."""
    return float((min_a * kw_per_a).max()) if min_a.size else 0.0


def _reserve_kw(inp: SchedulingInput, limit_floor_kw: float | None) -> float:
    """The peak term's reserve for cars nobody foresees: ``peak_reserve_frac`` × the peak already paid for plus
    ``peak_reserve_idle_frac`` × the power of the EVSEs a car could still plug into, at most the paid peak;
    where the site shaves its peak (no limit is the peak's floor), no forecast stands in for those cars and the
    period has a peak.

    Why: an online plan that knows only the cars here spreads each over its stay up to the paid peak, so the
    hours ahead are full and every car that arrives later raises the peak a little, all day long (acnportal,
    the first day of a site with no history, departures known: Caltech 2019-05-01 creeping from 44 kW at
    09:00 to 63 kW at 15:30 where 49.8 kW served every car; JPL 142 to 195 kW for 144.9 kW). Keeping a share
    of the paid peak free after slot 0 makes the plan charge the cars that are here sooner, which leaves the
    afternoon room for the cars still to come. The paid peak is small in the morning, when most cars are still
    to come; the idle EVSEs' power follows them (month from 2019-05-01, uncapped: Caltech 63.05 -> 61.15 kW
    with the paid peak's share, 59.03 kW with both; JPL 195.24 -> 168.60 -> 167.65 kW; docs/acn_benchmark.md,
    "A new site"). With a forecast the reserve only double-counts the cars it expects (Caltech week of
    2019-05-06 53.07 -> 55.11 kW): it is not used then."""
    if limit_floor_kw is not None or inp.expected_arrivals or inp.peak_floor_kw <= 0:
        return 0.0                          # the limit is the floor, a forecast stands in, or nothing paid yet
    taken = {s.evse_key for s in inp.sessions} | {f.evse_key for f in inp.fixed_draws}
    idle_kw = sum(e.max_current_a * e.watts_per_amp for e in inp.evses if e.evse_key not in taken) / 1000.0
    reserve = inp.peak_reserve_frac * float(inp.peak_floor_kw) + inp.peak_reserve_idle_frac * idle_kw
    # At most the peak reached: a site of many large idle EVSEs (22 kW each, cars drawing 7-11 kW) would
    # otherwise reserve more than it has ever drawn and the plan would charge everyone at once. On the ACN
    # sessions the bound changes nothing (month from 2019-05-01: 59.04 / 167.65 kW; half the peak: 59.69 kW).
    return min(reserve, float(inp.peak_floor_kw))


def _peak_floor_kw(inp: SchedulingInput, limit_floor_kw: float | None, unit_kw: float) -> float:
    """Site power under which the peak term costs nothing: the demand period's peak so far less one rounding
    unit, and unless the weights shave below the site's limit, that limit (``_limit_floor_kw``).

    Why less one unit: the LP fills valleys up to the floor and the post-pass may round a slot's load up to
    one minimum-current admission above the LP's. Fed back as the next floor, the measured peak would then
    ratchet up a step at a time (Caltech week, uncapped: 75 kW where 50 kW serves every car). Planned one
    unit below it, the load after rounding stays under the peak already reached."""
    floor = max(0.0, float(inp.peak_floor_kw) - unit_kw) if inp.peak_floor_kw > 0 else 0.0
    return floor if limit_floor_kw is None else max(floor, limit_floor_kw)


def _limit_floor_kw(inp: SchedulingInput, limit: Array, topo: Topology) -> float | None:
    """The site's limit as a floor of the peak term (its lowest value over the horizon), None when the weights
    shave below the limit or the site has none. A limit given only in amps per phase counts as
    amps × 3 × 230 V."""
    if inp.weights.shave_below_limit:
        return None
    site_kw = float(limit[topo.row(0, 3)].min())
    if not math.isfinite(site_kw):
        site_kw = float(limit[topo.row(0, 0)].min()) * 3 * 230.0 / 1000.0
    return site_kw if math.isfinite(site_kw) else None


def _ancestors(topo: Topology) -> list[list[int]]:
    """For each circuit, itself and all its ancestors up to the root."""
    out = []
    for c in range(len(topo.circuit_names)):
        chain = [c]
        while topo.circuit_parent[chain[-1]] >= 0:
            chain.append(topo.circuit_parent[chain[-1]])
        out.append(chain)
    return out


def _limits(inp: SchedulingInput, topo: Topology) -> Array:
    by_name = {c.name: c for c in inp.circuits}
    limit = np.full((len(topo.circuit_names) * 4, topo.horizon_slots), math.inf)
    for ci, name in enumerate(topo.circuit_names):
        spec = by_name[name]
        for t in range(topo.horizon_slots):
            amps = spec.current_limit_a(t)
            limit[topo.row(ci, 0) : topo.row(ci, 3), t] = amps
            limit[topo.row(ci, 3), t] = spec.power_limit_w(t) / 1000.0
    return limit


def _base_loads(inp: SchedulingInput, topo: Topology, ancestors: list[list[int]]) -> Array:
    out = np.zeros((len(topo.circuit_names) * 4, topo.horizon_slots))
    index = {n: i for i, n in enumerate(topo.circuit_names)}
    for bl in inp.base_loads:
        if bl.circuit not in index:
            raise InvalidInput(f"base load on unknown circuit {bl.circuit}")
        for t in range(topo.horizon_slots):
            amps = [max(0.0, bl.current_a(p, t)) for p in PHASES]
            kw = sum(amps) * bl.voltage_v / 1000.0
            for c in ancestors[index[bl.circuit]]:
                for p in range(3):
                    out[topo.row(c, p), t] += amps[p]
                out[topo.row(c, 3), t] += kw
    return out


def _sessions(
    inp: SchedulingInput, topo: Topology, evse_index: dict[str, int], fixed_a: Array, kw_per_a: Array,
    slot_h: Array, one_phase: NDArray[np.bool_],
) -> dict[str, Any]:
    n_e, n_t = len(topo.evse_keys), topo.horizon_slots
    ub, need, prio = np.zeros((n_e, n_t)), np.zeros(n_e), np.zeros(n_e)
    known = np.zeros(n_e, dtype=bool)
    first_s = inp.planned_first_s                      # walks every session: once per plan
    scale, present = np.ones(n_e), np.full(n_e, first_s / inp.slot_s)
    arrival, departure = np.zeros(n_e, dtype=np.int64), np.zeros(n_e, dtype=np.int64)
    keys: list[str | None] = [None] * n_e
    min_a = np.array([e.min_current_a for e in inp.evses])
    fixed = set(np.nonzero(fixed_a.any(axis=1))[0].tolist()) | {evse_index[f.evse_key] for f in inp.fixed_draws}
    for s in inp.sessions:
        if s.evse_key not in evse_index:
            raise InvalidInput(f"session {s.session_key} on unknown EVSE {s.evse_key}")
        e = evse_index[s.evse_key]
        if keys[e] is not None:
            raise InvalidInput(f"two sessions on EVSE {s.evse_key} (pass only the current or next one)")
        if s.priority <= 0 or s.energy_needed_wh < 0:
            raise InvalidInput(f"session {s.session_key}: priority must be > 0 and energy_needed_wh >= 0")
        keys[e] = s.session_key
        a, d = inp.arrival_slot(s), inp.departure_slot(s)
        arrival[e], departure[e], need[e], prio[e] = a, max(a, d), s.energy_needed_wh / 1000.0, s.priority
        known[e] = s.departure is not None
        wired = len(inp.evses[e].phases)
        scale[e] = 1.0 if one_phase[e] or not s.ev_phases else min(wired, s.ev_phases) / wired
        present[e] = inp.present_s(s, first_s) / inp.slot_s
        amps = inp.evses[e].max_current_a if s.max_current_a is None else min(s.max_current_a, inp.evses[e].max_current_a)
        # An EV that cannot take the minimum can never be offered a legal current: plan it nothing.
        # A need under 1 Wh is met: planning it would offer a current (a burst, or more to finish sooner)
        # for nothing.
        if e not in fixed and amps >= min_a[e] and need[e] >= MET_KWH:
            ub[e, a:d] = amps
            # The slot the car leaves in, at its share (SchedulingInput.departure_share). A share under the
            # minimum current cannot be a legal average there: that slot stays out.
            last, share = inp.departure_share(s)
            if last >= max(a, 1) and amps * share >= min_a[e]:
                ub[e, last] = amps * share
        if present[e] <= 0:
            ub[e, 0] = 0.0
    kwh_et = kw_per_a[:, None] * scale[:, None] * slot_h[None, :]
    kwh_et[:, 0] = kw_per_a * scale * present * inp.slot_h
    return dict(ub=ub, min_a=min_a, need_kwh=need, priority=prio, arrival=arrival, departure=departure,
                session_keys=tuple(keys), kwh_et=kwh_et, known_departure=known, energy_scale=scale,
                present_frac=present)


def lp_bounds(net: Network, k_count: int, shares: Array) -> dict[str, tuple[Array, Array]]:
    """Variable bounds (lb, ub) of the site LP by variable block, each 2-D (±inf = none). ``shares`` (E×S) are
    the per-slot fair shares of the first S slots (``heuristics.fair_shares``): the upper bounds of ``fs``.
    The peak's lower bound is the demand period's peak so far."""
    active: NDArray[np.bool_] = np.asarray(net.ub.any(axis=1), dtype=np.bool_)
    # bl feeds only the peak row: non-EV load.
    site_kw = net.peak_load_kw[None, :]
    seg_ub = np.repeat(np.where(active, 1.0 / k_count, 0.0)[:, None], k_count, axis=1)
    multi = list(net.topo.multi_phase)
    ub1 = np.where(net.one_phase[multi][:, None], net.ub[multi], 0.0) if multi else np.zeros((0, int(net.ub.shape[1])))
    return {
        "i": (np.zeros(net.ub.shape), np.where(net.one_phase[:, None], 0.0, net.ub)),
        "i1": (np.zeros(ub1.shape), ub1),
        "seg": (np.zeros(seg_ub.shape), seg_ub),
        "y": (np.full(net.cap.shape, -np.inf), net.cap),
        "bl": (site_kw, site_kw),
        "free": (np.zeros((1, len(active))), np.where(active, 0.0, 1.0)[None, :]),
        "fs": (np.zeros(shares.shape), shares),
        "peak": (np.full((1, 1), net.peak_floor_kw), np.full((1, 1), np.inf)),
        "now": (np.full((1, 1), net.peak_floor_kw), np.full((1, 1), np.inf)),
    }


def lp_params(net: Network) -> dict[str, Array]:
    """The changing coefficients per EVSE (idle EVSEs: 0, except need 1.0 and kwh0 a whole slot) and per slot:

    - ``prio``, ``early_w`` (priority × urgency), ``unknown_w`` (priority if the departure is unknown);
    - ``need``: the feasible need in the LP's energy units (EVSE phases), i.e. divided by the car's share of
      the EVSE's phases;
    - ``kwh0``: kWh per amp in slot 0 in EVSE units (slot 0 is short, and the car may leave inside it);
    - ``price_h``: price per kWh × slot hours.
    """
    active = net.ub.any(axis=1)
    whole_kwh = net.kwh_per_a
    multi = list(net.topo.multi_phase)
    whole_kwh1 = np.array([whole_kwh[e] / len(net.topo.evse_phases[e]) for e in multi])
    active1 = (active & net.one_phase)[multi] if multi else np.zeros(0, dtype=bool)
    present1 = net.present_frac[multi] if multi else np.zeros(0)
    return {
        "kwh0_1": np.where(active1 & (present1 > 0), whole_kwh1 * present1, whole_kwh1),
        "early_w": net.early_weight,
        "unknown_w": np.where(active & ~net.known_departure, net.priority, 0.0),
        "prio": np.where(active, net.priority, 0.0),
        "need": np.where(active, net.feasible_need_kwh / net.energy_scale, 1.0),
        # A car not plugged in during slot 0 has its current there bounded to 0: keep the coefficient non-zero.
        "kwh0": np.where(active & ~net.one_phase & (net.present_frac > 0), whole_kwh * net.present_frac, whole_kwh),
        "price_h": net.price * net.slot_h,
    }


# What a re-plan changed: "relax" | "shares" (only fair shares got tighter) | "tighten", or "restart": stage 2
# starting from the previous plan's stage-2 basis (solve._Columns.start_from), which this plan's bounds and
# guard may leave neither primal nor dual feasible; dual simplex measured fastest there (JPL 2-day replay:
# 101 iterations on average against 190 primal).
Change = str


def change_kind(tightened: bool, shares_tightened: bool) -> Change:
    return "tighten" if tightened else "shares" if shares_tightened else "relax"


def highs_method(method: str, cold: bool, change: Change, n_cols: int) -> dict[str, str | int]:
    """HiGHS options for one solve. A re-plan that only relaxes the LP keeps the old basis primal feasible, so
    primal simplex finishes in a few hundred iterations where dual simplex needs thousands (measured: 34 ms vs
    167 ms for an arrival at 300 EVSEs). Tightening changes (limit drops, departures, need updates) break
    primal feasibility: dual simplex, or interior point on big models where the dual walk gets long. An
    arrival also shrinks the others' fair shares (``fs`` bounds, tie-break terms only): the old basis stays
    dual feasible and dual simplex re-solves it fastest at every size (1,000 EVSEs: 993 iterations, 0.15 s
    vs 1,862 and 0.31 s primal, and 2 s with interior point)."""
    if method != "auto":
        return {"solver": method, "simplex_strategy": 1}
    if cold or (change == "tighten" and n_cols > 50_000):
        return {"solver": "ipm"}
    return {"solver": "simplex", "simplex_strategy": 4 if change == "relax" else 1}
