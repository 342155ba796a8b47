"""Pure: the TxDefaultProfile of idle EVSEs, as their safe share of what the plan leaves.

An idle EVSE (online, under our control, no session) holds our TxDefault: a car that plugs in draws that
at once, before its own profile arrives. So the TxDefault is reserved capacity, and it must be safe: for
every limit of the site (each circuit, per phase and in power, in every slot of the plan) the idle EVSEs
below it share what base load, fixed draws (EVSEs we do not control) and the planned sessions leave:

    share = min over the limits above the EVSE and the slots of  headroom / (idle EVSEs below that limit)

clamped to [min current, EVSE max] (and the operator's bound), or 0 if the min current does not fit.
Equal shares per limit keep their sum within every headroom, so plan + TxDefaults stay within the limits.

After the plan, `shares` hands what the sessions did not take to the idle EVSEs; on a site the cars fill
that is 0 A, and a car plugging in there waits for its own profile (its arrival re-plans within about a
second). Only with `smart_charging.idle_reserve: true` does a pass before the plan, `reserves`, give each
idle EVSE its min current if base load and fixed draws leave room for all of them, which the plan then keeps
free ahead of the cars that are here; off by default, because 20-34 idle EVSEs of a 60 kW site held up to
47 kW that way while cars waited (Caltech replay: 42 % of the deliverable energy delivered, 95 % without).
Delivery lowers TxDefaults in its first phase, before anything rises.

An idle EVSE whose TxDefault we do not know yet (`controlled=False`: just connected, it may hold anything)
shares nothing: it counts at its maximum (a fixed draw) and is first sent 0 A, the only value that is safe
whatever the others do with their commands; once it took that, the next plan gives it its share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from csms.scheduling import PerSlot, SchedulingInput

from ..limits import floor_to

PHASES = (1, 2, 3)
MIN_TOLERANCE_A = 1e-3


@dataclass(frozen=True, slots=True)
class IdleEvse:
    evse_key: str
    station_id: str
    min_a: float
    max_a: float
    controlled: bool = True  # its station's TxDefault is known (else: counted at its max, sent 0 A first)


def reserves(inp: SchedulingInput, idle: Sequence[IdleEvse], cap_a: float | None) -> dict[str, float]:
    """What the plan keeps free per controlled idle EVSE: its min current where base load and fixed draws
    (other than the controlled idle EVSEs' own, which must not be in `inp.fixed_draws`) leave room for every
    one of them, else 0."""
    fair = shares(inp, idle, {}, cap_a)
    return {e.evse_key: min(fair[e.evse_key], e.min_a) for e in idle if e.evse_key in fair}


def shares(inp: SchedulingInput, idle: Sequence[IdleEvse], planned: Mapping[str, Sequence[float]],
           cap_a: float | None) -> dict[str, float]:
    """Each controlled idle EVSE's TxDefault (A per phase, to 0.1 A). `inp.fixed_draws` must not include
    them; `planned` is the planned current (A per phase, per slot) of every session, by EVSE key."""
    idle = [e for e in idle if e.controlled]
    if not idle:
        return {}
    tree = _Tree(inp)
    room = _room(inp, tree, planned)
    # Per limit: how many idle EVSEs below it draw on each phase, and their watts per amp together.
    count: dict[tuple[str, int], int] = {}
    wpa: dict[str, float] = {}
    for e in idle:
        spec = tree.evses[e.evse_key]
        for c in tree.path(e.evse_key):
            wpa[c] = wpa.get(c, 0.0) + spec.watts_per_amp
            for p in spec.phases:
                count[c, p] = count.get((c, p), 0) + 1
    out: dict[str, float] = {}
    for e in idle:
        spec = tree.evses[e.evse_key]
        share = min(e.max_a, math.inf if cap_a is None else cap_a)
        for c in tree.path(e.evse_key):
            amps, watts = room[c]
            share = min(share, watts / wpa[c], *(amps[p] / count[c, p] for p in spec.phases))
        out[e.evse_key] = _clamp(share, e)
    return out


def _clamp(share: float, e: IdleEvse) -> float:
    """Down to the charger's resolution; 0 below the min current. A share within solver tolerance of the
    min is the min: that is what the plan kept free (`reserves`)."""
    if share <= 0 or share < e.min_a - MIN_TOLERANCE_A:
        return 0.0
    return round(max(e.min_a, floor_to(share)), 1)


def station_defaults(idle: Iterable[IdleEvse], share: Mapping[str, float]) -> dict[str, float]:
    """The TxDefault per station (it applies to all its EVSEs): the smallest share of its idle EVSEs, 0 A
    while any of them is not controlled yet."""
    out: dict[str, float] = {}
    for e in idle:
        out[e.station_id] = min(out.get(e.station_id, math.inf), share.get(e.evse_key, 0.0) if e.controlled else 0.0)
    return out


#: TxDefault shares move on a ladder of levels this far apart (see on_ladder).
LADDER_RATIO = 1.25
HYSTERESIS = 1.1


def on_ladder(defaults: Mapping[str, float], idle: Iterable[IdleEvse],
              held: Mapping[str, float] | None = None) -> dict[str, float]:
    """Each station's TxDefault rounded down to a level of a ladder from its maximum down by LADDER_RATIO
    (16 A: 16, 12.8, 10.2, 8.1, 6.5, then the 6 A minimum). Why: an equal share moves with every EVSE that
    joins or leaves, and every decrease must be sent: while a site's chargers boot one by one, each plan
    lowered every idle station's share a little, so n boots cost about n * n / 2 commands (15,469 TxDefault
    decreases in a 1,000-charger ramp). On the ladder a falling share crosses a handful of levels. Rounding
    down is always safe (the sum only shrinks); what is given up is at most a fifth of a share that a
    car plugging in draws only until its own profile arrives. `held`: the TxDefault each station holds now;
    it is kept while the share is at or above it and would not reach a higher level with a tenth less
    (hysteresis: a share moving around a level must not step the station down and up on every plan)."""
    levels: dict[str, tuple[float, float]] = {}
    for e in idle:
        lo, hi = levels.get(e.station_id, (0.0, math.inf))
        levels[e.station_id] = (max(lo, e.min_a), min(hi, e.max_a))
    out: dict[str, float] = {}
    for station_id, a in defaults.items():
        if station_id not in levels or a <= 0:
            out[station_id] = a
            continue
        min_a, max_a = levels[station_id]
        out[station_id] = _ladder_floor(a, min_a, max_a)
        old = (held or {}).get(station_id)
        # `held` covers every station of the fleet: looked up for this site's only.
        if (old is not None and min_a - MIN_TOLERANCE_A <= old <= a + MIN_TOLERANCE_A
                and _ladder_floor(a / HYSTERESIS, min_a, max_a) <= old + MIN_TOLERANCE_A):
            out[station_id] = old
    return out


def _ladder_floor(a: float, min_a: float, max_a: float) -> float:
    """The highest level of the ladder from `max_a` down by LADDER_RATIO (then `min_a`) at or below `a`; 0
    below the minimum."""
    level = max_a
    while level > a + MIN_TOLERANCE_A and level / LADDER_RATIO >= min_a:
        level /= LADDER_RATIO
    if level > a + MIN_TOLERANCE_A:
        level = min_a if a >= min_a - MIN_TOLERANCE_A else 0.0
    return min(a, round(floor_to(level), 1)) if level < a else a


def busy_station_bounds(busy: Mapping[str, Iterable[Sequence[float]]], idle_stations: Iterable[str]
                        ) -> dict[str, float]:
    """The most a station's TxDefault may be while every EVSE of it is in a planned session.

    Why: a TxDefault also applies to an EVSE whose transaction just ended (its TxProfile ends with it), so
    the moment a car leaves, that EVSE may draw its station's TxDefault until the re-plan lands. A default
    chosen when the station was idle can exceed what the plan now leaves (a site limit dropped, others
    arrived). Bounding it by the least its sessions are planned over the horizon keeps every departure
    from raising the site's potential draw. `busy` maps a station to its sessions' planned current series
    (A per phase, per slot); stations with an idle EVSE are left to their idle share (`shares`).

    A station with both idle and busy EVSEs is not bounded here: its busy EVSE would draw the idle share
    after its transaction ends, beyond the plan by at most that share until the re-plan that the end
    triggers (a known limit; chargers here have one EVSE or share a station-wide default)."""
    skip = set(idle_stations)
    out: dict[str, float] = {}
    for station_id, series in busy.items():
        if station_id in skip:
            continue
        low = min((min(s) if len(s) else 0.0 for s in series), default=None)
        if low is not None:
            out[station_id] = max(0.0, floor_to(low))
    return out


class _Tree:
    """The site's circuits: which EVSEs each carries (sub-circuits included) and each EVSE's path up."""

    def __init__(self, inp: SchedulingInput) -> None:
        self.evses = {e.evse_key: e for e in inp.evses}
        self.parent = {c.name: c.parent for c in inp.circuits}
        self.circuits = {c.name: c for c in inp.circuits}
        self.names = [c.name for c in inp.circuits]
        owner = {k: c.name for c in inp.circuits for k in c.evse_keys}
        self._owner = owner
        self.members: dict[str, list[str]] = {c: [] for c in self.names}
        for k in self.evses:
            for c in self.path(k):
                self.members[c].append(k)

    def up(self, circuit: str | None) -> list[str]:
        out: list[str] = []
        while circuit is not None:
            out.append(circuit)
            circuit = self.parent.get(circuit)
        return out

    def path(self, evse_key: str) -> list[str]:
        return self.up(self._owner.get(evse_key))


def _room(inp: SchedulingInput, tree: _Tree, planned: Mapping[str, Sequence[float]]
          ) -> dict[str, tuple[dict[int, float], float]]:
    """Per circuit, the least headroom over the slots: per phase (A) and in power (W), its limit minus base
    load, fixed draws and planned sessions below it (infinite where it has no such limit)."""
    n = inp.horizon_slots
    keys = list(tree.evses)
    row = {k: i for i, k in enumerate(keys)}
    draw = np.zeros((len(keys), n))  # A per phase, per EVSE and slot
    for f in inp.fixed_draws:
        if f.evse_key in row:
            draw[row[f.evse_key]] += np.maximum(0.0, [_at(f.current_a, t) for t in range(n)])
    for k, v in planned.items():
        if k in row:
            series = np.maximum(0.0, np.asarray(list(v)[:n], dtype=float))
            draw[row[k], : len(series)] += series
    on = {p: np.array([p in tree.evses[k].phases for k in keys]) for p in PHASES}
    watts_per_amp = np.array([tree.evses[k].watts_per_amp for k in keys])
    out: dict[str, tuple[dict[int, float], float]] = {}
    for name in tree.names:
        c = tree.circuits[name]
        below = np.zeros(len(keys), dtype=bool)
        below[[row[k] for k in tree.members[name]]] = True
        base = [b for b in inp.base_loads if name in tree.up(b.circuit)]  # loads on it or below it
        base_a = {p: np.array([sum(b.current_a(p, t) for b in base) for t in range(n)]) for p in PHASES}
        base_w = np.array([sum(b.current_a(p, t) * b.voltage_v for b in base for p in PHASES) for t in range(n)])
        limit_a = np.array([c.current_limit_a(t) for t in range(n)])
        limit_w = np.array([c.power_limit_w(t) for t in range(n)])
        amps = {p: float((limit_a - base_a[p] - draw[below & on[p]].sum(axis=0)).min()) for p in PHASES}
        watts = float((limit_w - base_w - (draw[below] * watts_per_amp[below, None]).sum(axis=0)).min())
        out[name] = (amps, watts)
    return out


def _at(values: PerSlot, slot: int) -> float:
    """A per-slot series at `slot`: a scalar is constant, a short tuple repeats its last value."""
    if isinstance(values, (int, float)):
        return float(values)
    return float(values[min(slot, len(values) - 1)]) if values else 0.0
