"""Output side: the ``Schedule`` (per-session currents, forecast site load, binding limits) and its builder."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from csms.scheduling.network import Array, Network
from csms.scheduling.problem import SchedulingInput

Status = Literal["optimal", "fallback"]


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """Planned current limit per slot for one session (0 outside its window)."""

    session_key: str
    evse_key: str
    current_a: tuple[float, ...]          # per phase, per slot
    power_w: tuple[float, ...]            # per slot
    energy_wh: float                      # planned over the horizon
    energy_needed_wh: float               # as given in the input

    @property
    def shortfall_wh(self) -> float:
        return max(0.0, self.energy_needed_wh - self.energy_wh)


@dataclass(frozen=True)
class Schedule:
    """A plan over the horizon. Slot 0 runs from ``start`` (now) for ``first_slot_s``; slot ``t >= 1`` starts
    at ``start + first_slot_s + (t-1)·slot_s`` (see ``SchedulingInput``); ``slot_start(t)`` computes it.

    ``site_*`` series are forecasts at the root circuit including base load and fixed draws.
    ``binding_limit[t]`` names the limit (``"<circuit>:L1|L2|L3|power"``) that is (nearly) exhausted in slot t,
    the most utilised one if several, else None. ``overloaded_limits`` are limits that base load and fixed
    draws alone exceed in some slot: everything below them is planned at 0.
    """

    start: datetime
    slot_s: int
    status: Status
    sessions: tuple[SessionPlan, ...]
    site_power_w: tuple[float, ...]
    site_limit_w: tuple[float, ...]
    site_current_a: tuple[tuple[float, float, float], ...]
    site_limit_a: tuple[float, ...]
    binding_limit: tuple[str | None, ...]
    overloaded_limits: tuple[str, ...] = ()
    solve_time_s: float = 0.0
    objective_terms: Mapping[str, float] = field(default_factory=dict)
    reason: str | None = None             # why the fallback was used
    first_slot_s: float | None = None     # None: slot 0 is a whole slot
    _by_key: Mapping[str, SessionPlan] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", {p.session_key: p for p in self.sessions})

    @property
    def horizon_slots(self) -> int:
        return len(self.site_power_w)

    def session(self, session_key: str) -> SessionPlan:
        return self._by_key[session_key]

    def current_limit_a(self, session_key: str, slot: int = 0) -> float:
        """The limit to send to the charger for ``session_key`` in ``slot`` (0 beyond the horizon)."""
        plan = self._by_key[session_key]
        return plan.current_a[slot] if 0 <= slot < len(plan.current_a) else 0.0

    @property
    def first_s(self) -> float:
        return float(self.slot_s if self.first_slot_s is None else self.first_slot_s)

    def slot_start(self, slot: int) -> datetime:
        if slot <= 0:
            return self.start
        return self.start + timedelta(seconds=self.first_s + (slot - 1) * self.slot_s)

    def slot_starts(self) -> tuple[datetime, ...]:
        """Start of every slot, plus the horizon end as the last element."""
        return tuple(self.slot_start(t) for t in range(self.horizon_slots + 1))

    def slot_of(self, when: datetime) -> int:
        since = (when - self.start).total_seconds()
        if since < self.first_s:
            return math.floor(since / self.first_s)
        return 1 + math.floor((since - self.first_s) / self.slot_s)


def build_schedule(
    inp: SchedulingInput,
    net: Network,
    x: Array,
    status: Status,
    solve_time_s: float = 0.0,
    reason: str | None = None,
    extra_terms: Mapping[str, float] | None = None,
    hidden: NDArray[np.bool_] | None = None,
) -> Schedule:
    """Wrap a current matrix ``x`` (E×T, amps per phase) into a ``Schedule`` with forecasts and KPIs.
    ``hidden`` (E, bool): EVSEs whose sessions stay out of the schedule and its KPIs (the planner's virtual
    EVSEs of expected arrivals, whose rows of ``x`` the caller has zeroed)."""
    topo = net.topo
    ev_rows = net.A @ x                      # R×T, planned EV load per row
    total = ev_rows + net.non_ev
    plans = []
    energy_kwh = (x * net.kwh_et).sum(axis=1)
    shown = np.ones(len(energy_kwh), dtype=bool) if hidden is None else ~hidden
    for e, key in enumerate(net.session_keys):
        if key is None or not shown[e]:
            continue
        # A car takes at most what it needs (a burst at the minimum current may offer more: it stops itself).
        energy_wh = float(min(energy_kwh[e], net.need_kwh[e]) * 1000.0)
        plans.append(SessionPlan(
            session_key=key, evse_key=topo.evse_keys[e],
            current_a=tuple(float(v) for v in x[e]),
            power_w=tuple(float(v) * net.kw_per_a[e] * net.energy_scale[e] * 1000.0 for v in x[e]),
            energy_wh=energy_wh, energy_needed_wh=float(net.need_kwh[e] * 1000.0),
        ))
    site_kw = total[3]
    delivered = np.where(shown, np.minimum(energy_kwh, net.need_kwh), 0.0)
    terms = {
        "delivered_kwh": float(delivered.sum()),
        "weighted_delivered_kwh": float((delivered * net.priority).sum()),
        "shortfall_kwh": float(sum(p.shortfall_wh for p in plans) / 1000.0),
        "energy_cost": float((ev_rows[3] * net.price * net.slot_h).sum()),
        "peak_kw": float(site_kw.max()) if site_kw.size else 0.0,
    }
    terms.update(extra_terms or {})
    return Schedule(
        start=inp.start, slot_s=inp.slot_s, status=status, sessions=tuple(plans),
        site_power_w=tuple(float(v) * 1000.0 for v in site_kw),
        site_limit_w=tuple(float(v) * 1000.0 for v in net.limit[3]),
        site_current_a=tuple((float(a), float(b), float(c)) for a, b, c in total[0:3].T),
        site_limit_a=tuple(float(v) for v in net.limit[0]),
        binding_limit=_binding(net, total),
        overloaded_limits=tuple(net.overloaded_rows()),
        solve_time_s=solve_time_s, objective_terms=terms, reason=reason, first_slot_s=inp.first_slot_s,
    )


def _binding(net: Network, total: Array) -> tuple[str | None, ...]:
    """Per slot, the most utilised limit if it is within 0.1 % (or 0.01 A/kW) of its capacity."""
    names = net.topo.row_names
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(np.isfinite(net.limit) & (net.limit > 0), total / net.limit, 0.0)
    out: list[str | None] = []
    for t in range(total.shape[1]):
        r = int(np.argmax(util[:, t]))
        slack = net.limit[r, t] - total[r, t]
        tight = np.isfinite(net.limit[r, t]) and (slack <= max(1e-2, 1e-3 * net.limit[r, t]))
        out.append(names[r] if tight else None)
    return tuple(out)
