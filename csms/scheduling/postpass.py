"""Deterministic post-pass that makes an LP plan obey IEC 61851's "0 or at least the minimum current".

Why a post-pass and not binaries: 1,000 EVSEs × 96 slots of on/off binaries is a MIP HiGHS cannot solve within
a re-planning budget, while the LP is usually already "almost integral" (most currents sit at 0, at a bound,
or well above the minimum). The post-pass rounds the few sub-minimum currents slot by slot, from slot 0 (the
one actually sent) to the last, like a sigma-delta converter:

1. In slot t, every sub-minimum current is set to 0, and the sessions are re-admitted at the minimum by
   (priority, urgency, open need) while every limit on their path has room and the site's load stays within
   the LP's own load for that slot plus less than one admission (the rounding unit: without it, a plan that
   spread 3 A over eight slots could never deliver anything).
2. An admitted session now gets more in slot t than the LP planned: the excess over what the LP planned for
   it in total is taken back from its latest slots after t, then from its slots before t down to the
   minimum (energy only moves later; lowering is always safe). What cannot be taken back is less than the
   burst itself: a small remaining need offered at the minimum, the only legal way to deliver it (the car
   stops itself when full), so no car is left a stranded tail short.
3. The headroom the dropped currents freed in slot t goes to sessions already charging in it, up to the LP's
   own load for the slot: from their unplanned need, or by moving their own later energy here (their later
   slots go down). Without it a slot the LP used fully would be left partly idle.
4. A session that was not admitted carries its slot-t energy to its next slots in its window (later, never
   earlier), within limits and the LP's load for those slots; what cannot be placed is left to the next
   re-plan.

Finally, in slot 0 only, a session whose whole remaining need is planned in slot 0 is offered up to its max
where limits and the LP's peak leave room: it takes the same energy sooner and stops when full.

Every step keeps every hard limit (headroom is checked against ``Network.cap``) and never raises the site's
load in any slot by a full minimum current or more above the LP's (slot 0's top-up stays under the LP's
peak), so a peak-shaved plan stays peak-shaved.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from csms.scheduling.network import Array, Network

#: The admission order of a slot's sessions: a sort key of (EVSE index, the plan so far).
OrderKey = Callable[[int, Array], tuple[float, ...]]

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
    if ((x > 0) & (x < net.min_a[:, None] - EPS_A)).any():
        _round(net, idx, x)
    _finish_fast(net, idx, x, x_lp)
    _fill_now(net, idx, x)
    return x


def _fill_now(net: Network, idx: RowIndex, x: Array) -> None:
    """Slot 0 only, where the plan shaves the peak: fill slot 0 up to the peak already paid for this period
    with energy the plan put later (those sessions' later slots go down by as much: energy only moves
    earlier within the same total, and the load never exceeds a peak already reached).

    Why: the LP plans under the paid peak less one rounding unit (network._peak_floor_kw, the ratchet fix),
    so on a busy day it held the site at that unit below the paid peak for hours while the cars' needs grew,
    and the peak rose later anyway (Caltech, a Tuesday: 51.8 kW held from 09:00 to 16:00 under a 53.1 kW
    peak, then 57.3 kW forced at 16:15). The unit below is kept for the LP; the post-pass hands it out now,
    where it cannot become a new peak."""
    if x.shape[1] < 2 or net.paid_peak_kw <= 0:
        return
    site = net.topo.row(0, 3)
    kwh = net.kwh_et
    cap_0 = net.cap[:, 0].copy()
    cap_0[site] = min(cap_0[site], net.paid_peak_kw - net.non_ev[site, 0])
    load = net.A @ x[:, 0]
    if load[site] >= cap_0[site] - EPS_A:
        return
    later = np.nonzero((x[:, 0] < net.ub[:, 0] - EPS_A) & (x[:, 1:] > EPS_A).any(axis=1) & (kwh[:, 0] > 0))[0]
    for e in sorted(later.tolist(), key=lambda e: (-net.priority[e], -net.urgency[e], e)):
        later_kwh = float((x[e, 1:] * kwh[e, 1:]).sum())
        extra = min(net.ub[e, 0] - x[e, 0], idx.room(e, cap_0, load), later_kwh / kwh[e, 0])
        row = x[e].copy()
        extra = _whole_take_back(row, kwh[e], extra * kwh[e, 0], net.min_a[e]) / kwh[e, 0]
        if extra <= EPS_A or x[e, 0] + extra < net.min_a[e] - TOL:
            continue                               # nothing to move, or a new current under the minimum
        row[0] += extra
        x[e] = row
        idx.add(e, load, extra)


def _whole_take_back(row: Array, kwh_row: Array, energy_kwh: float, min_a: float) -> float:
    """Lower ``row``'s slots after slot 0, latest first, by up to ``energy_kwh`` without leaving any of them
    between 0 and the minimum (a partly lowered slot stays at the minimum at least). Returns the energy taken."""
    taken = 0.0
    for t in range(len(row) - 1, 0, -1):
        want = energy_kwh - taken
        if want <= 1e-9:
            break
        if row[t] <= EPS_A or kwh_row[t] <= 0:
            continue
        take_a = min(row[t], want / kwh_row[t])
        if 0 < row[t] - take_a < min_a - TOL:
            take_a = max(0.0, row[t] - min_a)      # keep the minimum rather than a current no car can take
        row[t] -= take_a
        taken += take_a * kwh_row[t]
    return taken


def _finish_fast(net: Network, idx: RowIndex, x: Array, x_lp: Array) -> None:
    """Slot 0 only: a session whose whole remaining need is planned in slot 0 is offered more, up to its max,
    where limits and the LP's own peak (or the period's peak so far) leave room. The LP spreads such a need
    evenly over the slot (energy = current × slot), but the car takes the same energy sooner at a higher
    current and stops when full: earlier is safer, and the peak does not rise."""
    if x.shape[1] == 0:
        return
    site = net.topo.row(0, 3)
    finishing = np.nonzero((x[:, 0] > 0) & ~(x[:, 1:] > EPS_A).any(axis=1) & (x[:, 0] < net.ub[:, 0] - EPS_A))[0]
    if finishing.size == 0:
        return
    cap_0 = net.cap[:, 0].copy()
    peak_kw = max(float(((net.A @ x_lp)[site] + net.peak_load_kw).max()), net.peak_floor_kw)
    cap_0[site] = min(cap_0[site], peak_kw - net.non_ev[site, 0])
    load = net.A @ x[:, 0]
    for e in sorted(finishing.tolist(), key=lambda e: (-net.priority[e], -net.urgency[e], e)):
        extra = min(net.ub[e, 0] - x[e, 0], idx.room(e, cap_0, load))
        if extra > EPS_A:
            x[e, 0] += extra
            idx.add(e, load, extra)


def _round(net: Network, idx: RowIndex, x: Array) -> None:
    """Steps 1-4 of the module docstring, in place."""
    kwh = net.kwh_et
    site = net.topo.row(0, 3)
    # The load bound per slot: the LP's own site load plus less than one admission at the minimum.
    unit_kw = net.rounding_unit_kw
    lp_kw = (net.A @ x)[site]
    bound_kw = lp_kw + unit_kw - 1e-6
    target = np.minimum((x * kwh).sum(axis=1), net.need_kwh)     # what the LP planned for each session
    order_key = _admission_order(net)
    for t in range(x.shape[1]):
        col = x[:, t]
        sub = np.nonzero((col > 0) & (col < net.min_a - EPS_A))[0]
        if sub.size == 0:
            continue
        dropped_kwh = {e: col[e] * kwh[e, t] for e in sub.tolist()}
        col[sub] = 0.0
        cap_t = net.cap[:, t].copy()
        cap_t[site] = min(cap_t[site], bound_kw[t])
        load = net.A @ col
        for e in sorted(sub.tolist(), key=lambda e: order_key(e, x)):
            if kwh[e, t] <= 0:
                continue
            if idx.room(e, cap_t, load) < net.min_a[e] - TOL and not _make_room(net, idx, x, e, t, cap_t, load, lp_kw):
                continue
            col[e] = net.min_a[e]
            idx.add(e, load, col[e])
            dropped_kwh.pop(e)
            _take_back_later(x, e, t, target[e], kwh, net.min_a[e])
        if dropped_kwh:
            cap_t[site] = min(net.cap[site, t], lp_kw[t] + 1e-9)
            _refill(net, idx, x, t, cap_t, load, order_key)
        for e, energy in dropped_kwh.items():
            _carry_later(net, idx, x, e, t, energy, lp_kw)


def _make_room(net: Network, idx: RowIndex, x: Array, e: int, t: int, cap_t: Array, load: Array,
               bound_kw: Array) -> bool:
    """Make room for session ``e`` at the minimum in slot ``t`` by lowering sessions of *lower priority* that
    charge there (lowest priority first, none below its own minimum); their energy moves to their later slots
    (``_carry_later``). True if the minimum now fits (else nothing changed).

    Why: the LP gives a small remaining need a fraction of the minimum, and at a full site that fraction is
    all the room there is: rounded to 0 while walk-ins kept their currents, a booked car (priority 100)
    was left short of its guarantee for the rest of its window, every plan again (a 43 Wh tail planned 0 in
    every slot next to a priority-1 car at 23 A; tests/e2e/test_booking_walk_in.py)."""
    col = x[:, t]
    lower = [j for j in np.nonzero(col >= net.min_a - EPS_A)[0].tolist()
             if net.priority[j] < net.priority[e] and np.intersect1d(idx.rows[j], idx.rows[e]).size]
    cuts: list[tuple[int, float]] = []
    deficit = net.min_a[e] - idx.room(e, cap_t, load)
    for j in sorted(lower, key=lambda j: (float(net.priority[j]), j)):
        if deficit <= TOL:
            break
        # What j gives back frees room for e on the rows they share, at e's coefficient per amp of j's.
        shared = np.intersect1d(idx.rows[j], idx.rows[e])
        ratio = float(np.min(net.A[shared, j] / net.A[shared, e]))
        cut = min(col[j] - net.min_a[j], deficit / ratio) if ratio > 0 else 0.0
        if cut <= EPS_A:
            continue
        cuts.append((j, cut))
        deficit -= cut * ratio
    if deficit > TOL:
        return False
    for j, cut in cuts:
        col[j] -= cut
        idx.add(j, load, -cut)
        _carry_later(net, idx, x, j, t, cut * net.kwh_et[j, t], bound_kw)
    return bool(idx.room(e, cap_t, load) >= net.min_a[e] - TOL)


def _refill(net: Network, idx: RowIndex, x: Array, t: int, cap_t: Array, load: Array,
            order_key: OrderKey) -> None:
    """Give the headroom that dropped currents freed in slot t to sessions already charging in it, up to the
    LP's own load for the slot (so the slot is used as fully as the LP used it), from their unplanned need or
    by moving their own later energy here (their later slots are lowered: later loads only go down)."""
    col, kwh = x[:, t], net.kwh_et
    charging = np.nonzero((col >= net.min_a - EPS_A) & (col < net.ub[:, t] - EPS_A))[0]
    for e in sorted(charging.tolist(), key=lambda e: order_key(e, x)):
        if kwh[e, t] <= 0:
            continue
        open_kwh = net.need_kwh[e] - float((x[e] * kwh[e]).sum()) + float((x[e, t + 1 :] * kwh[e, t + 1 :]).sum())
        extra = min(net.ub[e, t] - col[e], idx.room(e, cap_t, load), max(0.0, open_kwh) / kwh[e, t])
        if extra <= EPS_A:
            continue
        col[e] += extra
        idx.add(e, load, extra)
        _take_back_later(x, e, t, float(net.need_kwh[e]), kwh, net.min_a[e])


def _admission_order(net: Network) -> OrderKey:
    """Higher priority first, then the least slack (urgency), then the largest open need, then EVSE order."""
    def key(e: int, x: Array) -> tuple[float, ...]:
        open_kwh = net.need_kwh[e] - float((x[e] * net.kwh_et[e]).sum())
        return (-float(net.priority[e]), -float(net.urgency[e]), -round(open_kwh, 9), float(e))
    return key


def _take_back_later(x: Array, e: int, t: int, target_kwh: float, kwh: Array, min_a: float) -> None:
    """After raising slot t, lower session e's other slots until it plans no more than ``target_kwh``: its
    latest slots after t first (to 0), then its slots before t, latest first and never below the minimum (so
    energy only ever moves later). What is left over is less than the burst itself: a small need served at
    the minimum, which the car ends by itself when full. Lowering is always safe."""
    excess = float((x[e] * kwh[e]).sum()) - target_kwh
    for t2 in [*range(x.shape[1] - 1, t, -1), *range(t - 1, -1, -1)]:
        if excess <= 1e-9:
            break
        floor_a = 0.0 if t2 > t else min_a
        if x[e, t2] <= floor_a or kwh[e, t2] <= 0:
            continue
        take_a = min(x[e, t2] - floor_a, excess / kwh[e, t2])
        x[e, t2] -= take_a
        excess -= take_a * kwh[e, t2]


def _carry_later(net: Network, idx: RowIndex, x: Array, e: int, t: int, energy_kwh: float,
                 bound_kw: Array) -> None:
    """Place ``energy_kwh`` that session e lost in slot t in its next slots, within limits and the load bound:
    on top of a current it already has, or as a new current of at least the minimum."""
    site = net.topo.row(0, 3)
    for t2 in range(t + 1, x.shape[1]):
        if energy_kwh <= 1e-9:
            return
        if net.ub[e, t2] <= 0 or net.kwh_et[e, t2] <= 0:
            continue
        cap_t = net.cap[:, t2].copy()
        cap_t[site] = min(cap_t[site], bound_kw[t2])
        load = net.A @ x[:, t2]
        want = energy_kwh / net.kwh_et[e, t2]
        room = min(net.ub[e, t2] - x[e, t2], idx.room(e, cap_t, load))
        new = x[e, t2] + min(want, room)
        if x[e, t2] <= 0 and new < net.min_a[e] - TOL:
            # A new current must be at least the minimum: give the minimum if it fits, else try later.
            if room < net.min_a[e] - TOL:
                continue
            new = net.min_a[e]
        added = new - x[e, t2]
        if added <= EPS_A:
            continue
        x[e, t2] = new
        energy_kwh -= added * net.kwh_et[e, t2]
