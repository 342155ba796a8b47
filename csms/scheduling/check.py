"""Independent verifier of a schedule's hard limits, written straight from the input dataclasses.

It deliberately shares no code with ``network.py`` (which the LP and heuristics use), so a bug in compiling the
input cannot hide itself from the tests. A limit that base load and fixed draws alone already exceed is only
violated if the schedule plans anything under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from csms.scheduling.problem import PHASES, SchedulingInput, series_value
from csms.scheduling.result import Schedule


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str            # limit_current | limit_power | min_current | max_current | window | energy | fixed | unknown
    subject: str         # circuit name (with phase) or session key
    slot: int | None
    value: float
    bound: float


def check_limits(
    inp: SchedulingInput, schedule: Schedule, tol_a: float = 1e-4, tol_w: float = 0.5, tol_wh: float = 0.5
) -> list[Violation]:
    """Every violated hard limit of ``schedule`` against ``inp`` (empty list = all limits hold)."""
    out: list[Violation] = []
    planned = _session_checks(inp, schedule, out, tol_a, tol_wh)
    # A car measured on one phase of a multi-phase EVSE draws on the EVSE's first conductor only.
    phases = {e.evse_key: e.phases for e in inp.evses}
    drawn = {s.evse_key: phases[s.evse_key][:1] for s in inp.sessions
             if s.ev_phases == 1 and s.evse_key in phases}
    _circuit_checks(inp, planned, drawn, out, tol_a, tol_w)
    return out


def _session_checks(
    inp: SchedulingInput, schedule: Schedule, out: list[Violation], tol_a: float, tol_wh: float
) -> dict[str, list[float]]:
    """Per-session rules; returns planned amps per EVSE key per slot for the circuit checks."""
    evses = {e.evse_key: e for e in inp.evses}
    sessions = {s.session_key: s for s in inp.sessions}
    fixed = {f.evse_key for f in inp.fixed_draws}
    planned_first_s = inp.planned_first_s
    planned: dict[str, list[float]] = {}
    for plan in schedule.sessions:
        s = sessions.get(plan.session_key)
        if s is None or s.evse_key != plan.evse_key:
            out.append(Violation("unknown", plan.session_key, None, 0.0, 0.0))
            continue
        ev = evses[s.evse_key]
        ev_max = ev.max_current_a if s.max_current_a is None else min(ev.max_current_a, s.max_current_a)
        first, end = inp.arrival_slot(s), inp.departure_slot(s)
        last, share = inp.departure_share(s)   # the slot it leaves in, at most max × share on average
        energy_wh = 0.0
        car_phases = min(len(ev.phases), s.ev_phases) if s.ev_phases else len(ev.phases)
        burst_wh = 0.0     # the most one slot at the minimum current gives: a stranded tail may exceed the need
        before_last_wh = 0.0   # energy planned before the session's last planned slot
        for t, amps in enumerate(plan.current_a[: inp.horizon_slots]):
            if abs(amps) <= tol_a:
                continue
            seconds = inp.present_s(s, planned_first_s) if t == 0 else inp.slot_duration_s(t)
            before_last_wh = energy_wh
            energy_wh += amps * ev.voltage_v * car_phases * seconds / 3600.0
            burst_wh = max(burst_wh, ev.min_current_a * ev.voltage_v * car_phases * seconds / 3600.0)
            if s.evse_key in fixed:
                out.append(Violation("fixed", s.session_key, t, amps, 0.0))
            if amps < ev.min_current_a - tol_a:
                out.append(Violation("min_current", s.session_key, t, amps, ev.min_current_a))
            if amps > ev_max + tol_a or amps < 0:
                out.append(Violation("max_current", s.session_key, t, amps, ev_max))
            if not first <= t < end and not (t == last and amps <= ev_max * share + tol_a):
                out.append(Violation("window", s.session_key, t, amps, 0.0))
        # Planning beyond the need is allowed only in the session's last planned slot (the car stops itself
        # when full, within that slot): a burst at the minimum for a small need, or a car finishing sooner.
        if energy_wh > s.energy_needed_wh + burst_wh + tol_wh and before_last_wh >= s.energy_needed_wh - tol_wh:
            out.append(Violation("energy", s.session_key, None, energy_wh, s.energy_needed_wh))
        planned[s.evse_key] = list(plan.current_a)
    return planned


def _circuit_checks(
    inp: SchedulingInput, planned: dict[str, list[float]], drawn: dict[str, tuple[int, ...]], out: list[Violation],
    tol_a: float, tol_w: float,
) -> None:
    evses = {e.evse_key: e for e in inp.evses}
    parent = {c.name: c.parent for c in inp.circuits}
    owner = {k: c.name for c in inp.circuits for k in c.evse_keys}

    def under(node: str, circuit: str) -> bool:
        cur: str | None = node
        while cur is not None:
            if cur == circuit:
                return True
            cur = parent[cur]
        return False

    for c in inp.circuits:
        members = [k for k in evses if under(owner[k], c.name)]
        loads = [b for b in inp.base_loads if under(b.circuit, c.name)]
        fixed = [f for f in inp.fixed_draws if f.evse_key in evses and under(owner[f.evse_key], c.name)]
        for t in range(inp.horizon_slots):
            plan_a = {p: 0.0 for p in PHASES}
            base_a = {p: sum(b.current_a(p, t) for b in loads) for p in PHASES}
            plan_w = 0.0
            base_w = sum(b.current_a(p, t) * b.voltage_v for b in loads for p in PHASES)
            for k in members:
                ev = evses[k]
                phases = drawn.get(k, ev.phases)
                amps = planned.get(k, [0.0] * inp.horizon_slots)[t]
                plan_w += amps * ev.voltage_v * len(phases)
                for p in phases:
                    plan_a[p] += amps
            for f in fixed:
                ev, amps = evses[f.evse_key], max(0.0, series_value(f.current_a, t, 0.0))
                base_w += amps * ev.voltage_v * len(ev.phases)
                for p in ev.phases:
                    base_a[p] += amps
            limit_a = c.current_limit_a(t)
            for p in PHASES:
                room = max(0.0, limit_a - base_a[p])
                if plan_a[p] > room + tol_a:
                    out.append(Violation("limit_current", f"{c.name}:L{p}", t, plan_a[p] + base_a[p], limit_a))
            limit_w = c.power_limit_w(t)
            if plan_w > max(0.0, limit_w - base_w) + tol_w:
                out.append(Violation("limit_power", f"{c.name}:power", t, plan_w + base_w, limit_w))
