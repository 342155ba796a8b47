"""Weighted objective terms of the site LP (minimised). Each term is a named function of the model.

Coefficients that change between plans (priorities, prices, needs) are mutable Params so a re-plan pushes
them without rebuilding; coefficients fixed by the topology (kWh per amp, time decay) are plain numbers.
All terms are linear on purpose: a quadratic fairness term makes HiGHS orders of magnitude slower.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyomo.environ as pyo

from csms.scheduling.problem import ObjectiveWeights

Model = Any  # a pyo.ConcreteModel carrying the components built in model.py


@dataclass(frozen=True, slots=True)
class ObjectiveTerm:
    name: str
    weight: float
    fn: Callable[[Model], Any]


def delivered_energy(m: Model) -> Any:
    """−Σ priority·segment_value·kWh: a concave, piecewise reward on each driver's delivered energy.

    ``seg`` is a share of the (feasible) need, so its kWh are ``need·seg``.

    Segment k of a driver's (feasible) need is worth ``1 − decay·k/K`` per kWh, so the LP fills everyone's
    first segment before anyone's second: equal drivers end with (nearly) equal delivered fractions, and
    unmet energy is the most expensive thing in the objective.
    """
    k_count = len(m.K)
    return -pyo.quicksum(
        m.prio[e] * m.need[e] * (1.0 - m.decay * k / k_count) * m.seg[e, k] for e in m.E for k in m.K
    )


def early_charging(m: Model) -> Any:
    """−Σ_e early[e]·q[e], with q[e] = Σ_t c[e,t]·i[e,t] + premium·Σ_{t<S} c[e,t]·fs[e,t] (row ``early`` in
    model.py) and c[e,t] = kWh·(T−t)/T·(1 + δ·r[e,t]).

    A small reward for charging sooner, which hedges against drivers leaving before their estimate, scaled
    per session by early[e] = priority × urgency, urgency = 1/(1 + laxity in slots): when only some cars can
    charge now, the LP picks the higher-priority ones and those with the least slack (as least-laxity-first
    does), without giving up any energy over the horizon. The weight sits on the aggregate q[e] so that it
    is one mutable coefficient per EVSE, not per slot.

    Per-slot fairness (first S = ``share_slots`` slots): fs[e,t] ≤ i[e,t] with fs ≤ the session's fair share
    of the slot, so the part of the current up to the share earns (1 + premium)× the reward and the rest 1×:
    a concave, piecewise-linear reward on each session's current in the slot. Two drivers then prefer to
    split a binding limit at their shares rather than one taking it all (the linear reward alone is
    indifferent, and simplex returns a vertex: one car at full current, the others at 0). It does not
    override delivered energy or price (both ≫ the early reward), and a driver whose weight is more than
    (1 + premium)× another's still takes the other's share.

    r[e,t] ∈ [0, 1) is a fixed pseudo-random tie-break (δ = 1e-3). Equal drivers otherwise leave the LP with
    many optimal vertices, and which one simplex returns depends on its starting basis: a warm re-plan and a
    cold solve of the same input would then differ. A generic perturbation makes the optimum unique in
    practice, and as it is scattered over (EVSE, slot) it favours no EVSE systematically.
    """
    return -pyo.quicksum(m.early_w[e] * m.q[e] for e in m.E)


def early_coefficient(kwh_per_a: float, e: int, t: int, n_t: int) -> float:
    """Coefficient c[e,t] of i[e,t] in q[e] (shared with the highspy backend); fs[e,t] has premium·c[e,t]."""
    return kwh_per_a * (n_t - t) / n_t * (1.0 + 1e-3 * tie_break(e, t))


def tie_break(e: int, t: int) -> float:
    """Deterministic value in [0, 1) scattered over (EVSE index, slot)."""
    return ((e * 7919 + t * 104729 + (e * t) % 997 * 31) % 1009) / 1009.0


def energy_cost(m: Model) -> Any:
    """Σ price_per_kwh·kWh of the EVs' site power (base load costs the same under any plan)."""
    return pyo.quicksum(m.price[t] * m.slot_h * m.y[m.site_power_row, t] for t in m.T)


def peak_load(m: Model) -> Any:
    """The highest site power (kW, EVs + base load + fixed draws) in the horizon: demand charge / flattening."""
    return m.peak_kw


def min_delivered_fraction(m: Model) -> Any:
    """−z where z ≤ every active driver's delivered fraction: a linear max-min tie-break between equals."""
    return -m.z


def default_terms(w: ObjectiveWeights) -> list[ObjectiveTerm]:
    return [
        ObjectiveTerm("delivered_energy", w.delivered_per_kwh, delivered_energy),
        ObjectiveTerm("early_charging", w.early_per_kwh, early_charging),
        ObjectiveTerm("energy_cost", w.cost_weight, energy_cost),
        ObjectiveTerm("peak_load", w.peak_per_kw, peak_load),
        ObjectiveTerm("min_delivered_fraction", w.fairness_min_fraction, min_delivered_fraction),
    ]


def objective_expr(m: Model, terms: list[ObjectiveTerm]) -> Any:
    return pyo.quicksum(t.weight * t.fn(m) for t in terms if t.weight != 0.0)
