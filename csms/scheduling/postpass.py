"""Deterministic post-pass that makes an LP plan obey IEC 61851's "0 or at least the minimum current".

Why a post-pass and not binaries: 1,000 EVSEs × 96 slots of on/off binaries is a MIP HiGHS cannot solve within
a re-planning budget, while the LP relaxation is usually already "almost integral" (most currents sit at 0,
at a bound, or well above the minimum). The post-pass only touches the few sub-minimum currents, slot by slot
from the first (the one actually sent to chargers) to the last:

1. sub-minimum currents are visited by priority (then size, then EVSE order, for determinism). One is raised
   to the minimum if every limit on its path has the headroom; if that would push the session past its
   energy need, energy is taken back from the session's latest slots, then from its earlier ones down to the
   minimum (always safe: less draw). Otherwise it is set to 0.
2. if anything was set to 0, the freed headroom is offered by (priority, earliest departure) to sessions with
   rate left and need left, either unplanned or planned in later slots (pulled forward, which also hedges
   against early departures): any amount to those already charging, at least the minimum to idle ones.
3. finally, a session that still has less than the LP planned for it (a current dropped in a full slot) gets
   the difference back in the earliest slots of its window with headroom (0 or >= minimum again).

Every step only ever lowers a current or raises it within checked headroom, so all hard limits that held for
the LP plan still hold afterwards.
"""

from __future__ import annotations

import numpy as np

from csms.scheduling.network import Array, Network

EPS_A = 1e-6          # below this a current is numerical noise from the LP
TOL = 1e-7


class RowIndex:
    """Per-EVSE list of the rows it loads, with coefficients (the sparse view of ``Network.A``)."""

    def __init__(self, net: Network) -> None:
        self.rows = [np.nonzero(net.A[:, e])[0] for e in range(net.A.shape[1])]
        self.coef = [net.A[r, e] for e, r in enumerate(self.rows)]

    def room(self, e: int, cap_t: Array, load_t: Array) -> float:
        """Largest extra current EVSE ``e`` can take in a slot given row headroom (inf if unconstrained)."""
        r, c = self.rows[e], self.coef[e]
        if r.size == 0:
            return float("inf")
        return float(np.min((cap_t[r] - load_t[r]) / c))

    def add(self, e: int, load_t: Array, delta: float) -> None:
        load_t[self.rows[e]] += self.coef[e] * delta


def enforce_min_current(net: Network, x_lp: Array) -> Array:
    """Return a copy of ``x_lp`` (E×T amps) where every current is 0 or >= the EVSE minimum, limits kept."""
    x = np.clip(np.where(x_lp < EPS_A, 0.0, x_lp), 0.0, net.ub)
    idx = RowIndex(net)
    cap = net.cap
    kwh = net.kwh_per_a
    total = (x * kwh[:, None]).sum(axis=1)
    planned = np.minimum(total, net.need_kwh)
    for t in range(x.shape[1]):
        col = x[:, t]
        sub = np.nonzero((col > 0) & (col < net.min_a - EPS_A))[0]
        if sub.size == 0:
            continue
        load = net.A @ col
        dropped = False
        for e in sorted(sub.tolist(), key=lambda e: (-net.priority[e], -col[e], e)):
            delta = net.min_a[e] - col[e]
            if net.ub[e, t] >= net.min_a[e] and idx.room(e, cap[:, t], load) >= delta - TOL and \
                    _make_energy_room(x, e, t, total, net, delta * kwh[e]):
                col[e] += delta
                total[e] += delta * kwh[e]
                idx.add(e, load, delta)
            else:
                idx.add(e, load, -col[e])
                total[e] -= col[e] * kwh[e]
                col[e] = 0.0
                dropped = True
        if dropped:
            _redistribute(net, idx, x, t, load, total)
    _rehome(net, idx, x, total, planned)
    return x


def _rehome(net: Network, idx: RowIndex, x: Array, total: Array, planned: Array) -> None:
    """Give sessions that lost planned energy to a dropped sub-minimum current that energy back in other
    slots of their window with headroom, earliest first, by (priority, earliest departure): on top of a
    current already at or above the minimum, or as a new current of at least the minimum. Without this a
    current dropped in a full slot is simply lost (e.g. 4.5 A next to a 27.4 A car on 31.9 A)."""
    kwh = net.kwh_per_a
    short = np.nonzero(planned - total > 1e-6)[0]
    loads: dict[int, Array] = {}
    for e in sorted(short.tolist(), key=lambda e: (-net.priority[e], net.departure[e], e)):
        for t in np.nonzero(net.ub[e] >= net.min_a[e])[0].tolist():
            lack_a = (planned[e] - total[e]) / kwh[e]
            if lack_a <= EPS_A:
                break
            load = loads.setdefault(t, net.A @ x[:, t])
            extra = min(net.ub[e, t] - x[e, t], lack_a, idx.room(e, net.cap[:, t], load))
            if x[e, t] <= 0 and extra < net.min_a[e] - TOL:
                continue                       # would be a new sub-minimum current
            if extra > EPS_A:
                x[e, t] += extra
                total[e] += extra * kwh[e]
                idx.add(e, load, extra)


def _make_energy_room(x: Array, e: int, t: int, total: Array, net: Network, extra_kwh: float) -> bool:
    """Take ``extra_kwh`` back from session ``e``'s other slots if raising slot t would exceed its need: its
    latest slots after ``t`` first, then its slots before ``t`` (latest first, never below the minimum).
    Returns False (and changes nothing) when those slots hold too little energy. Lowering is always safe."""
    excess = total[e] + extra_kwh - net.need_kwh[e]
    if excess <= 1e-9:
        return True
    kwh, min_a = net.kwh_per_a[e], net.min_a[e]
    before = np.where(x[e, :t] >= min_a, x[e, :t] - min_a, 0.0)
    if (x[e, t + 1 :].sum() + before.sum()) * kwh < excess - 1e-9:
        return False
    for t2 in list(range(x.shape[1] - 1, t, -1)) + list(range(t - 1, -1, -1)):
        spare = x[e, t2] if t2 > t else before[t2]
        take = min(spare, excess / kwh)
        x[e, t2] -= take
        total[e] -= take * kwh
        excess -= take * kwh
        if excess <= 1e-9:
            break
    return True


def _redistribute(net: Network, idx: RowIndex, x: Array, t: int, load: Array, total: Array) -> None:
    """Offer headroom freed by dropped currents in slot ``t``, by (priority, earliest departure).

    A session may take it from unplanned need or by pulling energy forward from its own later slots (which are
    then lowered, latest first: always safe). Sessions already charging may take any amount, idle ones only
    if at least the minimum fits.
    """
    col = x[:, t]
    cap_t = net.cap[:, t]
    kwh = net.kwh_per_a
    later_a = x[:, t + 1 :].sum(axis=1)
    avail_a = (net.need_kwh - total) / kwh + later_a
    charging = col >= net.min_a - EPS_A
    idle_ok = (col <= 0) & (net.ub[:, t] >= net.min_a) & (avail_a >= net.min_a)
    cand = np.nonzero((charging | idle_ok) & (col < net.ub[:, t] - EPS_A) & (avail_a > EPS_A))[0]
    for e in sorted(cand.tolist(), key=lambda e: (-net.priority[e], net.departure[e], e)):
        extra = min(net.ub[e, t] - col[e], avail_a[e], idx.room(e, cap_t, load))
        if extra > EPS_A and (col[e] > 0 or extra >= net.min_a[e] - TOL):
            if not _make_energy_room(x, e, t, total, net, extra * kwh[e]):
                continue
            col[e] += extra
            total[e] += extra * kwh[e]
            idx.add(e, load, extra)
