"""The compiled Param push (param_push.py) gives HiGHS exactly what Pyomo's ``update_parameters`` gives it, and a
re-plan's direct pushes (bounds by column index, solve and read on the HiGHS instance, solve.py) leave HiGHS
holding the LP a cold build of the same input loads."""

from __future__ import annotations

import dataclasses
import random
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pyomo.common.numeric_types import value

from csms.scheduling import SchedulingInput, SitePlanner
from csms.scheduling.param_push import ParamPusher, Polynomial
from csms.scheduling.solve import _Columns

from .test_replan import busy_site


def _lp(planner: SitePlanner) -> dict[str, Any]:
    """The LP HiGHS holds: costs, row bounds and the matrix as {(row, col): value}."""
    lp = planner.highs.getLp()
    a = lp.a_matrix_
    start, index, val = list(a.start_), list(a.index_), list(a.value_)
    matrix = {}
    for col in range(lp.num_col_):
        for k in range(start[col], start[col + 1]):
            if val[k] != 0.0:
                matrix[(index[k], col)] = val[k]
    return {"cost": np.asarray(lp.col_cost_), "row_lo": np.asarray(lp.row_lower_),
            "col_lo": np.asarray(lp.col_lower_), "col_hi": np.asarray(lp.col_upper_),
            "row_hi": np.asarray(lp.row_upper_), "matrix": matrix, "offset": lp.offset_}


def _inputs(b: SimpleNamespace) -> list[SchedulingInput]:
    """A busy site re-planned as time passes: needs shrink, a car arrives, one leaves, prices flip."""
    rng = random.Random(7)
    first = busy_site(b)
    out = [first]
    for k in range(1, 6):
        sessions = tuple(dataclasses.replace(s, energy_needed_wh=s.energy_needed_wh * rng.uniform(0.5, 1.0),
                                             priority=rng.choice((1.0, 2.0, 3.0)))
                         for s in first.sessions[: 4 - k % 2])
        if k >= 3:
            sessions += (b.session("c", "C", 15.0, dep=12),)
        prices = (0.1,) * 8 + (0.3,) * 8 if k % 2 else (0.3,) * 8 + (0.1,) * 8
        out.append(dataclasses.replace(first, sessions=sessions, price_per_kwh=prices))
    return out


def test_compiled_values_equal_pyomos(b: SimpleNamespace) -> None:
    planner = SitePlanner(keep_model=True)
    planner.plan(busy_site(b))
    opt, m = planner._opt, planner._sm.m
    rng = random.Random(3)
    exprs = [h.expr for hs in opt._mutable_helpers.values() for h in hs if hasattr(h, "expr")]
    exprs += [c.expr for c in opt._mutable_objective.linear_coefs]
    assert len(exprs) > 50
    index: dict[int, int] = {}
    params: list[Any] = []
    poly = Polynomial(exprs, index, params)
    for _ in range(3):
        for p in (m.prio, m.need, m.early_w, m.price_h):
            for idx in p:
                p[idx].set_value(rng.uniform(-5.0, 5.0))
        m.w2.set_value(rng.choice((0.0, 1.0)))
        got = poly.values(np.append([p._value for p in params], 1.0))
        for e, v in zip(exprs, got):
            assert v == pytest.approx(value(e), rel=1e-12, abs=1e-12)


def test_replans_give_highs_the_lp_pyomo_would(b: SimpleNamespace) -> None:
    fast, slow = SitePlanner(), SitePlanner(keep_model=True)
    for inp in _inputs(b):
        a, c = fast.plan(inp), slow.plan(inp)
        assert isinstance(fast._params, ParamPusher) and fast._sm is None     # compiled: Pyomo dropped
        slow._params = None                       # from now on: Pyomo's own update_parameters
        lp_fast, lp_slow = _lp(fast), _lp(slow)
        assert np.allclose(lp_fast["cost"], lp_slow["cost"], rtol=1e-12, atol=1e-12)
        assert np.allclose(lp_fast["row_lo"], lp_slow["row_lo"]) and np.allclose(lp_fast["row_hi"], lp_slow["row_hi"])
        assert lp_fast["matrix"].keys() == lp_slow["matrix"].keys()
        assert all(lp_fast["matrix"][k] == pytest.approx(v, rel=1e-12) for k, v in lp_slow["matrix"].items())
        assert a.objective_terms["lp_objective"] == pytest.approx(c.objective_terms["lp_objective"], rel=1e-9)
        for p in c.sessions:
            assert a.session(p.session_key).current_a == pytest.approx(p.current_a, abs=1e-6)


def test_replans_leave_highs_with_the_lp_a_cold_build_loads(b: SimpleNamespace) -> None:
    """Column bounds, costs, row bounds and matrix after each warm re-plan equal those of a fresh planner's
    cold build of the same input (both after stage 2; the guard's bound holds each one's stage-1 value)."""
    warm = SitePlanner()
    for inp in _inputs(b):
        a, cold = warm.plan(inp), SitePlanner()
        c = cold.plan(inp)
        lp_w, lp_c = _lp(warm), _lp(cold)
        for key in ("col_lo", "col_hi", "cost"):
            assert np.allclose(lp_w[key], lp_c[key], rtol=1e-12, atol=1e-12), key
        assert np.allclose(lp_w["row_lo"], lp_c["row_lo"]) and np.allclose(lp_w["row_hi"], lp_c["row_hi"], rtol=1e-9)
        assert lp_w["matrix"].keys() == lp_c["matrix"].keys()
        assert all(lp_w["matrix"][k] == pytest.approx(v, rel=1e-12) for k, v in lp_c["matrix"].items())
        assert a.objective_terms["lp_objective"] == pytest.approx(c.objective_terms["lp_objective"], rel=1e-9)
        for p in c.sessions:
            assert a.session(p.session_key).current_a == pytest.approx(p.current_a, abs=1e-6)
    assert warm.builds == 1


def test_each_stage_restarts_from_its_own_optimum(b: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stage 1 starts from the previous plan's stage-1 basis and stage 2 from its stage-2 basis (solve.py,
    ``_Columns.start_from``): fewer simplex iterations than each stage starting from the other's optimum,
    and the same plans."""
    own = SitePlanner()
    by_stage = [own.plan(inp) for inp in _inputs(b)]
    monkeypatch.setattr(_Columns, "start_from", lambda self, stage: None)      # the former behaviour
    shared = SitePlanner()
    alternating = [shared.plan(inp) for inp in _inputs(b)]

    def iterations(plans: list[Any]) -> float:
        assert all("stage2_iterations" in p.objective_terms for p in plans), "the case must run both stages"
        return sum(p.objective_terms["stage1_iterations"] + p.objective_terms["stage2_iterations"] for p in plans[1:])

    assert iterations(by_stage) < iterations(alternating)
    for a, c in zip(by_stage, alternating):
        assert a.objective_terms["lp_objective"] == pytest.approx(c.objective_terms["lp_objective"], rel=1e-9)
        for p in c.sessions:
            assert a.session(p.session_key).current_a == pytest.approx(p.current_a, abs=1e-6)


def test_sums_nested_deeper_than_the_recursion_limit_compile() -> None:
    """The objective's constant nests one sum (and negation) per EVSE: at 1,000 EVSEs the expansion hit Python's
    recursion limit and every plan of that site fell back to equal shares."""
    import sys

    import pyomo.environ as pyo

    n = 3 * sys.getrecursionlimit()
    m = pyo.ConcreteModel()
    m.p = pyo.Param(range(n), mutable=True, initialize=lambda _m, i: (i % 7) - 3.0)
    expr = m.p[0] * 1.0
    for i in range(1, n):
        expr = m.p[i] * 2.0 - expr          # p[i]·2 − (previous): a sum over a negation over a sum …
    depth, node = 0, expr
    while node.__class__.__name__ in ("NPV_SumExpression", "NPV_NegationExpression"):
        node, depth = node.args[-1] if node.__class__.__name__ == "NPV_SumExpression" else node.args[0], depth + 1
    assert depth > n                         # it really is that deep

    params: list[Any] = []
    poly = Polynomial([expr], {}, params)
    values = [float(p.value) for p in params]
    got = poly.values(np.array(values + [1.0]))[0]
    want = 1.0 * ((0 % 7) - 3.0)
    for i in range(1, n):
        want = 2.0 * ((i % 7) - 3.0) - want
    assert got == pytest.approx(want)


def test_a_dormant_planner_replans_like_a_hot_one(b: SimpleNamespace) -> None:
    """``hibernate`` keeps only HiGHS's LP and the stages' bases (solve.py): each later plan loads them into a
    new instance and gives the plan a planner that kept its instance gives, from the same bases (no model
    rebuilt, no more simplex iterations than the hot planner's), and HiGHS then holds the same LP."""
    hot, sleepy = SitePlanner(), SitePlanner()
    iterations = {"hot": 0.0, "sleepy": 0.0}
    for k, inp in enumerate(_inputs(b)):
        a, c = hot.plan(inp), sleepy.plan(inp)
        assert c.status == "optimal" and not sleepy.dormant
        if k:
            for name, s in (("hot", a), ("sleepy", c)):
                iterations[name] += s.objective_terms["stage1_iterations"] + s.objective_terms.get("stage2_iterations", 0)
        lp_h, lp_s = _lp(hot), _lp(sleepy)
        for key in ("col_lo", "col_hi", "cost", "row_lo", "row_hi"):
            assert np.array_equal(lp_h[key], lp_s[key]), key
        assert lp_h["matrix"] == lp_s["matrix"]
        assert c.objective_terms["lp_objective"] == pytest.approx(a.objective_terms["lp_objective"], rel=1e-9)
        for p in a.sessions:
            assert c.session(p.session_key).current_a == pytest.approx(p.current_a, abs=1e-6)
        assert sleepy.hibernate() and sleepy.dormant and sleepy.highs is None
        assert not sleepy.hibernate()                 # nothing more to give up
    assert sleepy.builds == 1 and hot.builds == 1
    assert iterations["sleepy"] <= iterations["hot"] + 5
