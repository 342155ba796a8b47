"""Deterministic slot-by-slot schedulers: the always-available fallback and the benchmark baselines.

All of them walk the horizon from slot 0, keep each session's remaining need, and in every slot hand out
current under the same hard limits the LP obeys (circuit rows per phase and power, base load, fixed draws,
EVSE/EV max, session window, "0 or >= minimum", never beyond the need). The exception is ``uncontrolled``,
which models chargers without any management (every EV at its max) and ignores site limits on purpose.

A session whose remaining need is smaller than one slot at the minimum current gets the minimum (a burst:
the car stops itself when full), so no car is left a stranded tail short.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from csms.scheduling.network import Array, Network, compile_network
from csms.scheduling.postpass import EPS_A, TOL, RowIndex
from csms.scheduling.problem import SchedulingInput
from csms.scheduling.result import Schedule, build_schedule

OrderKey = Callable[[Network, int, int, Array], tuple[float, ...]]   # (net, evse, slot, remaining_kwh)
SlotPolicy = Callable[[Network, RowIndex, int, Array, Array], Array]  # (net, rows, slot, hi_a, remaining_kwh)


def equal_share(inp: SchedulingInput, reason: str | None = "equal_share") -> Schedule:
    """Priority-weighted equal share: the fallback ``plan()`` uses when the LP cannot answer.

    In each slot, sessions are admitted at the minimum current by (priority desc, departure asc) while every
    limit on their path has room; the rest of the headroom is then water-filled in proportion to priority.
    """
    net = compile_network(inp)
    return build_schedule(inp, net, _walk(net, _admit_then_fill), "fallback", reason=reason)


def edf(inp: SchedulingInput) -> Schedule:
    """Earliest deadline first: each slot, sessions in departure order take as much as fits."""
    net = compile_network(inp)
    return build_schedule(inp, net, _walk(net, _greedy(_edf_key)), "fallback", reason="edf")


def llf(inp: SchedulingInput) -> Schedule:
    """Least laxity first: laxity = slots left before departure − slots needed at full rate."""
    net = compile_network(inp)
    return build_schedule(inp, net, _walk(net, _greedy(_llf_key)), "fallback", reason="llf")


def uncontrolled(inp: SchedulingInput) -> Schedule:
    """No load management: every plugged-in EV charges at its max until full. Ignores circuit limits."""
    net = compile_network(inp)

    def fill(net: Network, idx: RowIndex, t: int, hi: Array, remaining: Array) -> Array:
        return hi

    return build_schedule(inp, net, _walk(net, fill, respect_min=False), "fallback", reason="uncontrolled")


def _walk(net: Network, policy: SlotPolicy, respect_min: bool = True) -> Array:
    """Run ``policy`` slot by slot. ``hi`` is each session's max current this slot (rate and need)."""
    n_e, n_t = net.ub.shape
    x = np.zeros((n_e, n_t))
    remaining = net.need_kwh.copy()
    idx = RowIndex(net)
    for t in range(n_t):
        kwh = net.kwh_et[:, t]
        need_a = np.divide(np.maximum(remaining, 0.0), kwh, out=np.zeros_like(kwh), where=kwh > 0)
        hi = np.minimum(net.ub[:, t], need_a)
        if respect_min:
            # A remaining need below the minimum for this slot is still served, at the minimum (a burst).
            tail = (remaining > 1e-9) & (hi > EPS_A) & (hi < net.min_a) & (net.ub[:, t] >= net.min_a)
            hi = np.where(tail, net.min_a, hi)
            hi = np.where(hi >= net.min_a - EPS_A, hi, 0.0)
        if not hi.any():
            continue
        x[:, t] = policy(net, idx, t, hi, remaining)
        remaining -= x[:, t] * kwh
    return x


def _greedy(key: OrderKey) -> SlotPolicy:
    def policy(net: Network, idx: RowIndex, t: int, hi: Array, remaining: Array) -> Array:
        cap_t = net.cap[:, t]
        load, col = np.zeros(cap_t.shape), np.zeros(hi.shape)
        for e in sorted(np.nonzero(hi > 0)[0].tolist(), key=lambda e: key(net, e, t, remaining)):
            amps = min(hi[e], idx.room(e, cap_t, load))
            if amps >= net.min_a[e] - TOL:        # hi >= min here, so this never exceeds hi
                col[e] = max(amps, net.min_a[e])
                idx.add(e, load, col[e])
        return col

    return policy


def _edf_key(net: Network, e: int, t: int, remaining: Array) -> tuple[float, ...]:
    return (float(net.departure[e]), -float(net.priority[e]), float(e))


def _llf_key(net: Network, e: int, t: int, remaining: Array) -> tuple[float, ...]:
    rate_kwh = float(net.ub[e].max() * net.kwh_et[e].max())
    laxity = float(net.departure[e] - t) - float(remaining[e]) / rate_kwh
    return (laxity, float(e))


def _admit_then_fill(net: Network, idx: RowIndex, t: int, hi: Array, remaining: Array) -> Array:
    cap_t = net.cap[:, t]
    load, col = np.zeros(cap_t.shape), np.zeros(hi.shape)
    # Among equals, the session with the largest share of its need still open goes first, so when the minimum
    # current leaves room for only some of them, the excluded ones are admitted in the next slots (rotation).
    open_frac = remaining / np.maximum(net.need_kwh, 1e-9)
    order = sorted(np.nonzero(hi > 0)[0].tolist(),
                   key=lambda e: (-net.priority[e], net.departure[e], -float(np.round(open_frac[e], 9)), e))
    for e in order:
        if idx.room(e, cap_t, load) >= net.min_a[e] - TOL:
            col[e] = net.min_a[e]
            idx.add(e, load, col[e])
    _water_fill(net.A, cap_t, load, col, hi, net.priority)
    return col


def _water_fill(a_mat: Array, cap_t: Array, load: Array, col: Array, hi: Array, weight: Array) -> None:
    """Raise all admitted currents together, each at a rate ∝ its weight, until a limit or its max binds.

    Every round freezes at least one session (the one or the row that set the step), so it ends after at most
    E + R rounds.
    """
    active = (col > 0) & (hi - col > EPS_A)
    while active.any():
        w = np.where(active, weight, 0.0)
        rate = a_mat @ w                                 # how fast each row fills per unit step
        head = cap_t - load
        used = rate > 0
        step_rows = np.min(head[used] / rate[used]) if used.any() else np.inf
        step_evs = np.min((hi[active] - col[active]) / weight[active])
        step = max(0.0, min(step_rows, step_evs))
        col += step * w
        load += step * rate
        # Relative tolerance on finite rows only: 1e-9·inf would make every unlimited row look saturated.
        saturated = used & np.isfinite(cap_t) & (cap_t - load <= 1e-9 * np.maximum(1.0, np.abs(cap_t)))
        blocked = (a_mat[saturated] > 0).any(axis=0) if saturated.any() else np.zeros(col.shape, dtype=bool)
        active &= ~blocked & (hi - col > EPS_A)


def fair_shares(net: Network, n_slots: int) -> Array:
    """Each session's share (A) of slots 0..n_slots-1 if everyone present wanted to charge now (E×S).

    Per slot, least laxity first with equals sharing: sessions are ranked by (priority, urgency), urgency =
    1/(1 + laxity) (``Network.urgency``), and each rank in turn gets the headroom that is left, water-filled
    equally among the sessions of that rank (each capped by its rate and its remaining need, and admitted
    only if its minimum fits). So the most urgent drivers get their full rate first, as least-laxity-first
    does, which keeps energy high when drivers leave before their estimate (spreading a limit over everyone
    cost 2-5 points of energy on ACN sessions), while equal drivers split a binding limit equally instead of
    one taking it all. A share is 0 or at least the minimum, so the min-current post-pass leaves a plan at its
    shares alone. Uses (objectives.py): a session whose departure is unknown is planned at least its share as
    early as possible (stage 1), and current within a share earns more of the early reward (stage 2).
    """
    n_e = net.ub.shape[0]
    out = np.zeros((n_e, n_slots))
    rank_key = np.round(net.priority, 6) * 1e4 + np.round(net.urgency, 3)
    idx: RowIndex | None = None
    prev: tuple[Array, Array] | None = None
    for t in range(min(n_slots, net.ub.shape[1])):
        kwh_t = net.kwh_et[:, t]
        need_t = np.divide(net.need_kwh, kwh_t, out=np.zeros(n_e), where=kwh_t > 0)
        hi = np.minimum(net.ub[:, t], np.maximum(need_t, np.where(net.ub[:, t] > 0, net.min_a, 0.0)))
        hi = np.where((hi >= net.min_a - EPS_A) & (net.priority > 0), hi, 0.0)
        cap_t = net.cap[:, t]
        if prev is not None and np.array_equal(prev[0], hi) and np.array_equal(prev[1], cap_t):
            out[:, t] = out[:, t - 1]            # same sessions and limits as the slot before: same shares
            continue
        prev = (hi, cap_t)
        act = np.nonzero(hi > 0)[0]
        if act.size == 0:
            continue
        # Every limit holds everyone at their max (with the water-fill's saturation tolerance to spare): the
        # ranked admission and water-fill below would give each session its max. An uncapped site, or a
        # capped one off-peak; on 42 EVSEs uncapped this was a sixth of a plan's CPU time.
        finite = np.isfinite(cap_t)
        if (net.A[finite] @ hi <= cap_t[finite] - 1e-9 * np.maximum(1.0, np.abs(cap_t[finite]))).all():
            out[act, t] = hi[act]
            continue
        idx = idx or RowIndex(net)
        col, load = np.zeros(n_e), np.zeros(cap_t.shape)
        for rank in sorted(set(rank_key[act].tolist()), reverse=True):
            admitted = []
            for e in sorted((e for e in act.tolist() if rank_key[e] == rank), key=lambda e: (net.departure[e], e)):
                if idx.room(e, cap_t, load) >= net.min_a[e] - TOL:
                    col[e] = net.min_a[e]
                    idx.add(e, load, col[e])
                    admitted.append(e)
            if not admitted:
                continue
            adm = np.array(admitted)
            rows = np.nonzero(np.isfinite(cap_t) & (net.A[:, adm] > 0).any(axis=1))[0]
            sub_col, sub_load = col[adm].copy(), load[rows].copy()
            _water_fill(net.A[np.ix_(rows, adm)], cap_t[rows], sub_load, sub_col, hi[adm], np.ones(len(adm)))
            for j, e in enumerate(admitted):
                idx.add(e, load, sub_col[j] - col[e])
                col[e] = sub_col[j]
        out[act, t] = np.minimum(col[act], hi[act])
    return out
