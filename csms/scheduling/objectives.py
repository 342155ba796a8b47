"""The site LP's objective: two lexicographic stages of linear, named terms (minimised).

Stage 1 (energy) and stage 2 (peak, price, earliness) live in one objective, ``stage1 + w2·stage2``, with
``w2`` a mutable Param: 0 while solving stage 1, 1 while solving stage 2 under the guard row
``stage1 ≤ stage1* + tolerance`` (model.py, ``lex``). Solving twice on one persistent model costs two warm
re-solves and never lets a peak, a price or an early-charging preference cost a driver energy, however the
weights are set. Coefficients that change between plans (priorities, needs, prices, the slot-0 length) are
mutable Params so a re-plan pushes them without rebuilding; coefficients fixed by the topology (kWh per amp,
time decay) are plain numbers. All terms are linear on purpose: a quadratic fairness term makes HiGHS orders
of magnitude slower.
"""

from __future__ import annotations

from typing import Any

import pyomo.environ as pyo

from csms.scheduling.problem import ObjectiveWeights

Model = Any  # a pyo.ConcreteModel carrying the components built in model.py

LEX_OPEN = 1e12   # the guard row's right-hand side while it is not in force (finite: HiGHS treats 1e20 as inf)


def delivered_energy(m: Model) -> Any:
    """−Σ priority·kWh delivered (``seg`` is a share of the feasible need, so its kWh are ``need·seg``).

    Linear on purpose: a concave reward here (fairness) would trade total energy for equal fractions. Equal
    fractions are stage 2's business (``fair_fractions``), among plans that deliver the same energy.
    """
    return -pyo.quicksum(m.prio[e] * m.need[e] * m.seg[e, k] for e in m.E for k in m.K)


def fair_fractions(m: Model) -> Any:
    """Σ priority·kWh·decay·k/K: a penalty on each driver's later segments of need, so among plans that
    deliver the same energy the LP prefers the one that fills everyone's first segment before anyone's
    second: equal drivers end with (nearly) equal delivered fractions."""
    k_count = len(m.K)
    return pyo.quicksum(m.prio[e] * m.need[e] * (m.decay * k / k_count) * m.seg[e, k]
                        for e in m.E for k in m.K if k > 0)


def unknown_departure_earliness(m: Model) -> Any:
    """−Σ_e priority·r[e] over sessions whose departure is unknown (``unknown_w`` is 0 for the others).

    r[e] is the session's current up to its fair share of each of the first S slots (``fs``), discounted
    over time. Such a driver may leave at any moment, so within stage 1 its fair share now is worth a little
    more than later: the session charges as early as limits and fairness allow (its share, not everyone
    else's), and because stage 2 must keep the stage-1 value, no peak or price preference can push that
    energy later. The reward (≤ 1 per kWh against 100 for the kWh itself) never trades energy away.
    """
    return -pyo.quicksum(m.unknown_w[e] * m.r[e] for e in m.E)


def sessions_completed(m: Model) -> Any:
    """−Σ priority·(delivered fraction of the feasible need): the LP relaxation of "how many drivers leave with
    all they asked for". With the energy fixed by stage 1, it hands a scarce limit to the needs it can
    complete (a kWh is a larger fraction of a small need) instead of leaving many drivers a little short."""
    return -pyo.quicksum(m.prio[e] * m.seg[e, k] for e in m.E for k in m.K)


def min_delivered_fraction(m: Model) -> Any:
    """−z where z ≤ every active driver's delivered fraction: a linear max-min tie-break between equals."""
    return -m.z


def peak_load(m: Model) -> Any:
    """The highest site power (kW, EVs + base load + fixed draws) in the horizon, at least the period's peak so
    far (``peak_kw``'s lower bound): load under what the site already reached costs no demand charge, so the
    LP fills valleys up to it and charges early there."""
    return m.peak_kw


def peak_now(m: Model) -> Any:
    """Slot 0's site power above the floor (``now_kw``). Only slot 0 surely happens as planned: the rest is
    re-planned with what the next minutes bring. When the horizon's peak must rise above the floor, this
    raises the load now only as far as that lowers the horizon's peak (for instance because the cars
    expected later need the room), instead of filling slot 0 up to the new peak because the peak term
    has already paid for it: a peak drawn now is a peak for the whole demand period."""
    return m.now_kw


def energy_cost(m: Model) -> Any:
    """Σ price_per_kwh·kWh of the EVs' site power (base load costs the same under any plan). ``price_h`` is
    price × slot hours, so the short slot 0 counts for its real length."""
    return pyo.quicksum(m.price_h[t] * m.y[m.site_power_row, t] for t in m.T)


def early_charging(m: Model) -> Any:
    """−Σ_e early[e]·(q[e] + premium·r[e]), early[e] = priority × urgency, urgency = 1/(1 + laxity in slots).

    A small reward for charging sooner, which hedges against drivers leaving before their estimate: when only
    some cars can charge now, the higher-priority ones and those with the least slack go first (as
    least-laxity-first does). r[e] is the discounted current up to the session's fair share of each of the
    first S = ``share_slots`` slots (``fs[e,t] ≤ i[e,t]``, ``fs ≤ share``), so the part of a current within the
    share earns (1 + premium)× the reward: two drivers prefer to split a binding limit at their shares rather
    than one taking it all (simplex returns a vertex otherwise).

    c[e,t] = kWh·(T−t)/T·(1 + δ·r[e,t]): r[e,t] ∈ [0, 1) is a fixed pseudo-random tie-break (δ = 1e-3), which
    makes the optimum unique in practice, so a warm re-plan and a cold solve of the same input agree.
    """
    premium = m.premium
    return -pyo.quicksum(m.early_w[e] * (m.q[e] + premium * m.r[e]) for e in m.E)


def early_coefficient(kwh_per_a: float, e: int, t: int, n_t: int) -> float:
    """Coefficient c[e,t] of i[e,t] in q[e] and of fs[e,t] in r[e]."""
    return kwh_per_a * (n_t - t) / n_t * (1.0 + 1e-3 * tie_break(e, t))


def tie_break(e: int, t: int) -> float:
    """Deterministic value in [0, 1) scattered over (EVSE index, slot)."""
    return ((e * 7919 + t * 104729 + (e * t) % 997 * 31) % 1009) / 1009.0


def stage1_expr(m: Model, w: ObjectiveWeights) -> Any:
    """Stage 1: priority-weighted energy, with risk-averse timing for unknown departures."""
    terms = [(w.delivered_per_kwh, delivered_energy), (w.unknown_early_per_kwh, unknown_departure_earliness)]
    return pyo.quicksum(weight * fn(m) for weight, fn in terms if weight != 0.0)


def stage2_expr(m: Model, w: ObjectiveWeights) -> Any:
    """Stage 2: a lower peak above the floor, then price, then fair fractions and earliness (the weights set
    that order)."""
    terms = [(w.peak_per_kw, peak_load), (w.now_peak_per_kw, peak_now), (w.cost_weight, energy_cost), (w.completed_per_session, sessions_completed),
             (w.fairness_per_kwh, fair_fractions), (w.fairness_min_fraction, min_delivered_fraction),
             (w.early_per_kwh, early_charging)]
    return pyo.quicksum(weight * fn(m) for weight, fn in terms if weight != 0.0)


def objective_expr(m: Model, w: ObjectiveWeights) -> Any:
    return stage1_expr(m, w) + m.w2 * stage2_expr(m, w)
