"""The same site LP built directly in highspy, without Pyomo: ``DirectPlanner``.

It exists for two reasons: it is the yardstick the benchmark compares the Pyomo model against, and it is the
faster backend for very large sites (Pyomo's build and its hand-over to HiGHS dominate at 1,000 EVSEs).
Columns, rows and objective coefficients mirror ``model.py`` and ``objectives.py`` exactly; bounds and the
changing coefficients come from the shared ``network.lp_bounds`` / ``network.lp_params``. A unit test checks
that both backends reach the same objective.
"""

from __future__ import annotations

import time
from typing import Any

import highspy
import numpy as np

from csms.scheduling.heuristics import _admit_then_fill, _walk, fair_shares
from csms.scheduling.network import (
    Array, Change, Network, Topology, change_kind, compile_network, highs_method, lp_bounds, lp_params,
    topology_of,
)
from csms.scheduling.model import share_slot_count
from csms.scheduling.objectives import early_coefficient
from csms.scheduling.postpass import enforce_min_current
from csms.scheduling.problem import ObjectiveWeights, SchedulingInput, SolverOptions
from csms.scheduling.result import Schedule, build_schedule


class Layout:
    """Column/row offsets of every variable block, same blocks as the Pyomo model."""

    def __init__(self, topo: Topology, k_count: int, s_count: int) -> None:
        self.n_e, self.n_t, self.n_r, self.k = len(topo.evse_keys), topo.horizon_slots, len(topo.row_names), k_count
        self.s = s_count
        self.col = {"i": 0}
        self.col["seg"] = self.n_e * self.n_t
        self.col["y"] = self.col["seg"] + self.n_e * k_count
        self.col["bl"] = self.col["y"] + self.n_r * self.n_t
        self.col["free"] = self.col["bl"] + self.n_t
        self.peak = self.col["free"] + self.n_e
        self.z = self.peak + 1
        self.col["q"] = self.z + 1
        self.col["fs"] = self.col["q"] + self.n_e
        self.n_cols = self.col["fs"] + self.n_e * s_count
        self.row_flow, self.row_peak = self.n_e, self.n_e + self.n_r * self.n_t
        self.row_fair = self.row_peak + self.n_t
        self.row_early = self.row_fair + self.n_e
        self.row_share = self.row_early + self.n_e
        self.n_rows = self.row_share + self.n_e * s_count

    def block(self, name: str, shape: tuple[int, int]) -> Array:
        return np.asarray(self.col[name] + np.arange(shape[0] * shape[1]).reshape(shape))


def build_highs(topo: Topology, weights: ObjectiveWeights) -> tuple[highspy.Highs, Layout]:
    """Pass the LP skeleton (all bounds 0, idle coefficients) to a new HiGHS instance."""
    lay = Layout(topo, max(1, weights.fairness_segments), share_slot_count(topo, weights))
    n_e, n_t, k = lay.n_e, lay.n_t, lay.k
    kwh = np.array([v * len(p) * topo.slot_s / 3600.0 / 1000.0 for v, p in zip(topo.evse_voltage_v, topo.evse_phases)])
    rows: list[Array] = []
    cols: list[Array] = []
    vals: list[Array] = []

    def add(r: Any, c: Any, v: Any) -> None:
        r, c = np.broadcast_arrays(np.asarray(r), np.asarray(c))
        rows.append(r.ravel()), cols.append(c.ravel()), vals.append(np.broadcast_to(v, r.shape).ravel().astype(float))

    i_col = lay.block("i", (n_e, n_t))
    seg_col = lay.block("seg", (n_e, k))
    y_col = lay.block("y", (lay.n_r, n_t))
    e_idx, t_idx = np.arange(n_e), np.arange(n_t)
    add(e_idx[:, None], i_col, kwh[:, None])                      # energy: Σ kwh·i − need·Σ seg = 0
    add(e_idx[:, None], seg_col, -1.0)
    flow_row = lay.row_flow + np.arange(lay.n_r * n_t).reshape(lay.n_r, n_t)
    add(flow_row, y_col, 1.0)                                     # flow: y − children − own EVSEs = 0
    for c, parent in enumerate(topo.circuit_parent):
        if parent >= 0:
            for kind in range(4):
                add(flow_row[topo.row(parent, kind)], y_col[topo.row(c, kind)], -1.0)
    for e, c in enumerate(topo.evse_circuit):
        for p in topo.evse_phases[e]:
            add(flow_row[topo.row(c, p - 1)], i_col[e], -1.0)
        add(flow_row[topo.row(c, 3)], i_col[e], -topo.evse_voltage_v[e] * len(topo.evse_phases[e]) / 1000.0)
    peak_row = lay.row_peak + t_idx                               # peak: y_site + bl − peak ≤ 0
    add(peak_row, y_col[topo.row(0, 3)], 1.0)
    add(peak_row, lay.col["bl"] + t_idx, 1.0)
    add(peak_row, lay.peak, -1.0)
    fair_row = lay.row_fair + e_idx                               # fair: z − Σ seg − free ≤ 0
    add(fair_row, lay.z, 1.0)
    add(fair_row[:, None], seg_col, -1.0)
    add(fair_row, lay.col["free"] + e_idx, -1.0)
    early_row = lay.row_early + e_idx                             # early: q − Σ coef·i = 0
    add(early_row, lay.col["q"] + e_idx, 1.0)
    early = np.array([[early_coefficient(kwh[e], e, t, n_t) for t in range(n_t)] for e in range(n_e)])
    add(early_row[:, None], i_col, -early.reshape(n_e, n_t) if n_e else 0.0)
    fs_col = lay.block("fs", (n_e, lay.s))
    if lay.s and weights.share_premium != 0.0:                    # early: ... − premium·Σ_s coef·fs
        add(early_row[:, None], fs_col, -weights.share_premium * early[:, : lay.s])
    share_row = lay.row_share + np.arange(n_e * lay.s).reshape(n_e, lay.s)
    add(share_row, fs_col, 1.0)                                   # share: fs − i ≤ 0
    add(share_row, i_col[:, : lay.s], -1.0)

    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = lay.n_cols, lay.n_rows
    cost = np.zeros(lay.n_cols)
    cost[lay.peak], cost[lay.z] = weights.peak_per_kw, -weights.fairness_min_fraction
    lp.col_cost_ = cost
    lower, upper = np.zeros(lay.n_cols), np.zeros(lay.n_cols)
    lower[lay.col["y"]: lay.col["bl"]], upper[lay.col["y"]: lay.col["bl"]] = -highspy.kHighsInf, highspy.kHighsInf
    upper[lay.col["free"]: lay.peak] = 1.0
    upper[lay.peak], upper[lay.z] = highspy.kHighsInf, 1.0
    q_cols = slice(lay.col["q"], lay.col["fs"])
    lower[q_cols], upper[q_cols] = -highspy.kHighsInf, highspy.kHighsInf
    lp.col_lower_, lp.col_upper_ = lower, upper
    row_lo = np.zeros(lay.n_rows)
    row_lo[lay.row_peak: lay.row_early] = -highspy.kHighsInf      # peak and fair rows are "≤ 0"
    row_lo[lay.row_share:] = -highspy.kHighsInf                   # share rows too
    lp.row_lower_, lp.row_upper_ = row_lo, np.zeros(lay.n_rows)
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    order = np.lexsort((r, c))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.searchsorted(c[order], np.arange(lay.n_cols + 1)).astype(np.int32)
    lp.a_matrix_.index_, lp.a_matrix_.value_ = r[order].astype(np.int32), v[order]
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    return h, lay


class DirectPlanner:
    """Same contract as ``SitePlanner`` (never raises for solver trouble; InvalidInput propagates)."""

    def __init__(self, options: SolverOptions | None = None) -> None:
        self.options = options or SolverOptions()
        self._key: tuple[Topology, ObjectiveWeights] | None = None
        self._h: highspy.Highs | None = None
        self._lay: Layout | None = None
        self._pushed: dict[str, Array] = {}
        self.builds = 0

    def plan(self, inp: SchedulingInput) -> Schedule:
        tick = time.perf_counter()
        net = compile_network(inp, topology_of(inp))
        if not net.ub.any() or self.options.force_fallback:
            x = np.zeros(net.ub.shape) if not self.options.force_fallback else _walk(net, _admit_then_fill)
            status = "fallback" if self.options.force_fallback else "optimal"
            return build_schedule(inp, net, x, status, time.perf_counter() - tick, reason="forced" if
                                  self.options.force_fallback else None)
        try:
            x_lp, terms = self._solve(inp, net)
        except Exception as exc:  # noqa: BLE001 - never let solver trouble escape plan()
            self._key, self._h, self._pushed = None, None, {}
            x = _walk(net, _admit_then_fill)
            return build_schedule(inp, net, x, "fallback", time.perf_counter() - tick, reason=repr(exc))
        x = enforce_min_current(net, x_lp)
        return build_schedule(inp, net, x, "optimal", time.perf_counter() - tick, extra_terms=terms)

    def _solve(self, inp: SchedulingInput, net: Network) -> tuple[Array, dict[str, float]]:
        key = (net.topo, inp.weights)
        cold = self._h is None or self._key != key
        if cold:
            self._h, self._lay = build_highs(net.topo, inp.weights)
            self._key, self._pushed, self.builds = key, {}, self.builds + 1
        h, lay = self._h, self._lay
        assert h is not None and lay is not None
        pushed, change = _push(h, lay, net, inp.weights, inp.slot_h, self._pushed)
        h.setOptionValue("time_limit", float(self.options.time_limit_s))
        method = self.options.cold_method if cold else self.options.warm_method
        for opt, value in highs_method(method, cold, change, lay.n_e * lay.n_t).items():
            h.setOptionValue(opt, value)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"HiGHS: {h.modelStatusToString(h.getModelStatus())}")
        col = np.asarray(h.getSolution().col_value)
        x = np.where(net.ub > 0, col[: lay.n_e * lay.n_t].reshape(lay.n_e, lay.n_t), 0.0)
        return x, {"lp_objective": float(h.getInfo().objective_function_value), "lp_cold": float(cold),
                   "bounds_pushed": float(pushed)}


def _push(h: highspy.Highs, lay: Layout, net: Network, w: ObjectiveWeights, slot_h: float,
          pushed: dict[str, Array]) -> tuple[int, Change]:
    """Push changed bounds and coefficients; returns how many columns had their bounds changed and what kind
    of change it was (``network.change_kind``: tighter bounds or need coefficients, only tighter shares, or
    relaxing only)."""
    count = 0
    tightened = shares_tightened = False
    for name, (lb, ub) in lp_bounds(net, lay.k, fair_shares(net, lay.s)).items():
        old = pushed.get(name)
        cols = lay.block(name, ub.shape)
        diff = np.ones(ub.shape, dtype=bool) if old is None else (lb != old[0]) | (ub != old[1])
        # free[e] closing on an arrival only cuts the old optimum via the z tie-break; shares: see solve.py
        tighter = old is not None and name != "free" and bool(((ub < old[1]) | (lb > old[0])).any())
        if name == "fs":
            shares_tightened |= tighter
        else:
            tightened |= tighter
        if diff.any():
            idx = cols[diff]
            h.changeColsBounds(len(idx), idx.astype(np.int32), np.nan_to_num(lb[diff], neginf=-highspy.kHighsInf),
                               np.nan_to_num(ub[diff], posinf=highspy.kHighsInf))
            count += len(idx)
        pushed[name] = np.stack([lb, ub])
    p = lp_params(net)
    old_need = pushed.get("need")
    seg = lay.block("seg", (lay.n_e, lay.k))
    need_changed = range(lay.n_e) if old_need is None else np.nonzero(p["need"] != old_need)[0].tolist()
    was_active = pushed.get("value", np.zeros(lay.n_e)) > 0      # idle EVSEs' need multiplies zeros
    tightened |= old_need is not None and bool(was_active[p["need"] != old_need].any())
    for e in need_changed:
        for k in range(lay.k):
            h.changeCoeff(e, int(seg[e, k]), -float(p["need"][e]))
    value = p["prio"] * p["need"]
    if pushed.get("value") is None or not np.array_equal(pushed["value"], value):
        seg_cost = -w.delivered_per_kwh * value[:, None] * (1.0 - w.fairness_decay * np.arange(lay.k) / lay.k)
        h.changeColsCost(seg.size, seg.ravel().astype(np.int32), seg_cost.ravel())
    if pushed.get("price") is None or not np.array_equal(pushed["price"], p["price"]):
        site = lay.block("y", (lay.n_r, lay.n_t))[net.topo.row(0, 3)]
        h.changeColsCost(len(site), site.astype(np.int32), w.cost_weight * p["price"] * slot_h)
    if pushed.get("early_w") is None or not np.array_equal(pushed["early_w"], p["early_w"]):
        q = lay.col["q"] + np.arange(lay.n_e)
        h.changeColsCost(lay.n_e, q.astype(np.int32), -w.early_per_kwh * p["early_w"])
    pushed["need"], pushed["value"], pushed["price"] = p["need"].copy(), value, p["price"].copy()
    pushed["early_w"] = p["early_w"].copy()
    return count, change_kind(tightened, shares_tightened)
