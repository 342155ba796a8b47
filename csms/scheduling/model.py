"""The site LP in Pyomo, built once per topology from named constraint builders.

Fixed structure: a current variable ``i[e, t]`` exists for every EVSE and slot whether or not a car is plugged
in, so that everything that changes between plans is a *variable bound*, a constraint coefficient held in a
mutable Param (the need and slot-0 coefficients of the energy row, the stage-1 guard), or an objective
coefficient held in a mutable Param:

=====================  ===========================================================================
``i[e,t]`` (A/phase)   bounds [0, ub]: ub = min(EVSE max, EV max) inside the session window, else 0
``seg[e,k]`` (share)   bounds [0, 1/K] (0 when idle); need_e·Σ_k seg = energy delivered, so delivered ≤ need
``y[r,t]``             EV load on row r (A for phase rows, kW for power rows); ub = limit − base − fixed
``bl[t]`` (kW)         non-EV site power, fixed by equal bounds (feeds the peak only)
``peak_kw``, ``z``     highest site power (lb = the period's peak so far); smallest delivered fraction
``now_kw``             slot 0's site power (lb = the period's peak so far)
``free[e]``            bounds [0, 0] for active EVSEs, [0, 1] for idle ones (voids their fairness row)
``q[e]``               time-discounted current of EVSE e (its early-charging reward, see objectives.py)
``r[e]``               time-discounted current up to the fair shares of the first S slots
``fs[e,s]`` (A)        part of i[e,s] up to the session's fair share of slot s < S (ub = the share)
``i1[j,t]`` (A)        the one-phase mode of multi-phase EVSE j: loads its first conductor and V × 1 of power;
                       bounds select i or i1 per session (a car measured on one phase), so a one-phase car
                       is counted at what it draws without any coefficient changing
=====================  ===========================================================================

Energy is counted in the EVSE's units (its phases, whole slots); slot 0 runs from now to the next grid
boundary and a car may leave inside it, so the coefficient of ``i[e,0]`` is a mutable Param (``kwh0``), and a
car on fewer phases than its EVSE has its need scaled up instead (``network.energy_scale``).

The objective is two-stage lexicographic (objectives.py): stage 1 with ``w2 = 0`` and the guard row
``lex`` open; stage 2 with ``w2 = 1`` and ``lex`` holding the stage-1 value. The need is never 0 (idle EVSEs
get 1.0 and a zero bound on ``seg``): HiGHS warns on every update that pushes a 0 coefficient where the
matrix has no entry.

Rows use a flow form (a circuit's load = its own EVSEs + its children's loads) so each current appears in
at most five rows however deep the tree, which keeps the LP as sparse as the flat formulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyomo.environ as pyo
from pyomo.core.base.var import VarData

from csms.scheduling.network import ROW_KINDS, Topology
from csms.scheduling.objectives import LEX_OPEN, early_coefficient, objective_expr, stage1_expr
from csms.scheduling.problem import ObjectiveWeights


@dataclass
class SiteModel:
    """A built model plus flat handles to its variables (Pyomo indexing is slow in hot loops)."""

    m: Any
    topo: Topology
    weights: ObjectiveWeights
    i: list[list[VarData]]       # [e][t]
    seg: list[list[VarData]]     # [e][k]
    y: list[list[VarData]]       # [r][t]
    bl: list[VarData]            # [t]
    free: list[VarData]          # [e]
    fs: list[list[VarData]]      # [e][s], s < share_slots
    i1: list[list[VarData]]      # [j][t], j over topo.multi_phase: the one-phase mode of multi-phase EVSEs


def build_model(topo: Topology, weights: ObjectiveWeights) -> SiteModel:
    """Build the LP skeleton for ``topo``: every bound starts at 0 / none, every Param at 0."""
    m = pyo.ConcreteModel(name="site_lp")
    n_e, n_t, k_count = len(topo.evse_keys), topo.horizon_slots, max(1, weights.fairness_segments)
    m.E, m.T, m.K = pyo.RangeSet(0, n_e - 1), pyo.RangeSet(0, n_t - 1), pyo.RangeSet(0, k_count - 1)
    m.R = pyo.RangeSet(0, len(topo.row_names) - 1)
    m.S = pyo.RangeSet(0, share_slot_count(topo, weights) - 1)     # may be empty (share_slots=0)
    m.premium = weights.share_premium
    m.slot_h = topo.slot_s / 3600.0
    m.kwh_per_a = [v * len(p) * m.slot_h / 1000.0 for v, p in zip(topo.evse_voltage_v, topo.evse_phases)]
    m.multi = list(topo.multi_phase)
    m.J = pyo.RangeSet(0, len(m.multi) - 1)                         # may be empty (all one-phase EVSEs)
    m.j_of = {e: j for j, e in enumerate(m.multi)}
    m.kwh1 = [m.kwh_per_a[e] / len(topo.evse_phases[e]) for e in m.multi]
    m.site_power_row = topo.row(0, 3)
    m.decay = weights.fairness_decay
    add_variables(m)
    add_parameters(m)
    add_energy_balance(m)
    add_circuit_flows(m, topo)
    add_peak_definition(m)
    add_fairness_rows(m)
    add_share_rows(m)
    add_early_rows(m)
    m.obj = pyo.Objective(expr=objective_expr(m, weights), sense=pyo.minimize)
    m.lex = pyo.Constraint(expr=stage1_expr(m, weights) <= m.lex_rhs)
    return SiteModel(
        m=m, topo=topo, weights=weights,
        i=[[m.i[e, t] for t in m.T] for e in m.E],
        seg=[[m.seg[e, k] for k in m.K] for e in m.E],
        y=[[m.y[r, t] for t in m.T] for r in m.R],
        bl=[m.bl[t] for t in m.T],
        free=[m.free[e] for e in m.E],
        fs=[[m.fs[e, s] for s in m.S] for e in m.E],
        i1=[[m.i1[j, t] for t in m.T] for j in m.J],
    )


def share_slot_count(topo: Topology, weights: ObjectiveWeights) -> int:
    """S: how many leading slots carry per-slot share columns."""
    return max(0, min(int(weights.share_slots), topo.horizon_slots))


def add_variables(m: Any) -> None:
    # Plain numeric bounds, never Params: Params in bounds make every re-solve push every bound.
    m.i = pyo.Var(m.E, m.T, bounds=(0.0, 0.0))
    m.i1 = pyo.Var(m.J, m.T, bounds=(0.0, 0.0))
    m.seg = pyo.Var(m.E, m.K, bounds=(0.0, 0.0))
    m.y = pyo.Var(m.R, m.T, bounds=(None, None))
    m.bl = pyo.Var(m.T, bounds=(0.0, 0.0))
    m.peak_kw = pyo.Var(bounds=(0.0, None))
    m.now_kw = pyo.Var(bounds=(0.0, None))
    m.z = pyo.Var(bounds=(0.0, 1.0))
    m.free = pyo.Var(m.E, bounds=(0.0, 1.0))
    m.q = pyo.Var(m.E, bounds=(None, None))
    m.r = pyo.Var(m.E, bounds=(None, None))
    m.fs = pyo.Var(m.E, m.S, bounds=(0.0, 0.0))


def add_parameters(m: Any) -> None:
    m.prio = pyo.Param(m.E, mutable=True, initialize=0.0)        # driver priority (objective)
    m.need = pyo.Param(m.E, mutable=True, initialize=1.0)        # feasible need kWh, 1.0 if idle (row coef)
    m.early_w = pyo.Param(m.E, mutable=True, initialize=0.0)     # priority/(1 + laxity), 0 if idle (obj.)
    m.unknown_w = pyo.Param(m.E, mutable=True, initialize=0.0)   # priority if the departure is unknown, else 0
    m.kwh0 = pyo.Param(m.E, mutable=True, initialize=1.0)        # kWh/A in slot 0 (EVSE units; row coef)
    m.kwh0_1 = pyo.Param(m.J, mutable=True, initialize=1.0)      # the same for the one-phase columns
    m.price_h = pyo.Param(m.T, mutable=True, initialize=0.0)     # price_per_kwh × slot hours (objective)
    m.w2 = pyo.Param(mutable=True, initialize=0.0)               # 0: stage 1, 1: stage 2 (objective)
    m.lex_rhs = pyo.Param(mutable=True, initialize=LEX_OPEN)     # stage-1 value to hold in stage 2


def add_energy_balance(m: Any) -> None:
    """energy[e]: need[e]·Σ_k seg[e,k] = kwh0[e]·i[e,0] + Σ_{t≥1} kWh/A · i[e,t]. With seg ≤ 1/K this caps
    delivery at the need."""
    def rule(m: Any, e: int) -> Any:
        terms = [m.kwh0[e] * m.i[e, 0]] + [m.kwh_per_a[e] * m.i[e, t] for t in m.T if t > 0]
        j = m.j_of.get(e)
        if j is not None:
            terms += [m.kwh0_1[j] * m.i1[j, 0]] + [m.kwh1[j] * m.i1[j, t] for t in m.T if t > 0]
        return m.need[e] * pyo.quicksum(m.seg[e, k] for k in m.K) == pyo.quicksum(terms)
    m.energy = pyo.Constraint(m.E, rule=rule)


def add_circuit_flows(m: Any, topo: Topology) -> None:
    """flow[r,t]: y[r,t] = Σ children's y + Σ own EVSEs' contribution. y's upper bound is the limit."""
    n_c = len(topo.circuit_names)
    children: list[list[int]] = [[] for _ in range(n_c)]
    own: list[list[int]] = [[] for _ in range(n_c)]
    for c, p in enumerate(topo.circuit_parent):
        if p >= 0:
            children[p].append(c)
    for e, c in enumerate(topo.evse_circuit):
        own[c].append(e)
    kw_per_a = [v * len(p) / 1000.0 for v, p in zip(topo.evse_voltage_v, topo.evse_phases)]

    def rule(m: Any, r: int, t: int) -> Any:
        c, kind = divmod(r, len(ROW_KINDS))
        if kind < 3:   # phase rows: an EVSE loads phase L(kind+1) only if wired to it
            terms = [m.i[e, t] for e in own[c] if kind + 1 in topo.evse_phases[e]]
            # ... and a one-phase car only its first conductor
            terms += [m.i1[m.j_of[e], t] for e in own[c] if e in m.j_of and topo.evse_phases[e][0] == kind + 1]
        else:
            terms = [kw_per_a[e] * m.i[e, t] for e in own[c]]
            terms += [topo.evse_voltage_v[e] / 1000.0 * m.i1[m.j_of[e], t] for e in own[c] if e in m.j_of]
        terms += [m.y[topo.row(ch, kind), t] for ch in children[c]]
        if not terms:
            return m.y[r, t] == 0.0
        return m.y[r, t] == pyo.quicksum(terms)
    m.flow = pyo.Constraint(m.R, m.T, rule=rule)


def add_peak_definition(m: Any) -> None:
    """peak[t]: EV site power + non-EV site power ≤ peak_kw."""
    m.peak = pyo.Constraint(m.T, rule=lambda m, t: m.y[m.site_power_row, t] + m.bl[t] <= m.peak_kw)
    # now_kw: slot 0's site power (lb = the peak floor), the only slot that surely happens as planned.
    m.peak_now = pyo.Constraint(expr=m.y[m.site_power_row, 0] + m.bl[0] <= m.now_kw)


def add_fairness_rows(m: Any) -> None:
    """fair[e]: z ≤ delivered fraction of e (+ free[e], which is only non-zero for idle EVSEs)."""
    m.fair = pyo.Constraint(m.E, rule=lambda m, e: m.z <= pyo.quicksum(m.seg[e, k] for k in m.K) + m.free[e])


def add_share_rows(m: Any) -> None:
    """share[e,s]: fs[e,s] ≤ i[e,s] (with fs ≤ fair share as a bound, fs = min(i, share) at the optimum)."""
    def rule(m: Any, e: int, s: int) -> Any:
        j = m.j_of.get(e)
        return m.fs[e, s] <= (m.i[e, s] if j is None else m.i[e, s] + m.i1[j, s])
    m.share = pyo.Constraint(m.E, m.S, rule=rule)


def add_early_rows(m: Any) -> None:
    """early[e]: q[e] = Σ_t c[e,t]·i[e,t] and bonus[e]: r[e] = Σ_{s<S} c[e,s]·fs[e,s] (c = early_coefficient;
    slot 0's is scaled like its energy, by the mutable kwh0)."""
    n_t = len(m.T)

    def coef(e: int, t: int) -> Any:
        c = early_coefficient(m.kwh_per_a[e], e, t, n_t)
        return c if t > 0 else (c / m.kwh_per_a[e]) * m.kwh0[e]

    def coef1(e: int, j: int, t: int) -> Any:
        c = early_coefficient(m.kwh1[j], e, t, n_t)
        return c if t > 0 else (c / m.kwh1[j]) * m.kwh0_1[j]

    def early(m: Any, e: int) -> Any:
        terms = [coef(e, t) * m.i[e, t] for t in m.T]
        j = m.j_of.get(e)
        if j is not None:
            terms += [coef1(e, j, t) * m.i1[j, t] for t in m.T]
        return m.q[e] == pyo.quicksum(terms)

    m.early = pyo.Constraint(m.E, rule=early)
    m.bonus = pyo.Constraint(
        m.E, rule=lambda m, e: m.r[e] == pyo.quicksum(coef(e, s) * m.fs[e, s] for s in m.S))
