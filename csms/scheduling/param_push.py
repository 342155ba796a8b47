"""Pushing a plan's mutable Params to HiGHS without Pyomo's per-coefficient expression walks.

Pyomo's persistent HiGHS interface re-evaluates every mutable coefficient on ``update_parameters()``: one
generic expression-tree walk per coefficient (``value(expr)``), then one HiGHS call per coefficient. On a site of
42 EVSEs with the arrival forecast that was half of a plan's CPU time, twice per plan (cProfile of a Caltech
day's 189 plans: 394,706 expression evaluations, 26.6 of 52 s), while HiGHS itself took 8.8 s. Here each
coefficient, row bound and cost is expanded once into monomials of Params (``Polynomial``), all are evaluated
with a few numpy operations, and only the values that differ from the last push go to HiGHS (costs and row
bounds in one vector call each). Closures over the same expressions still cost 7.7 ms per plan; this 1.1 ms.

It reads the persistent solver's helper objects (``_mutable_helpers``, ``_mutable_objective``, its index maps):
Pyomo is pinned in constraints.txt, and ``tests/unit/scheduling/test_param_push.py`` checks every compiled
value against ``pyomo.value`` and every pushed number against HiGHS's own copy, so a Pyomo upgrade that moves
them fails there, not in production. Anything it does not recognise (quadratic terms, variable bounds made
of Params) falls back to ``update_parameters()``. A compiled pusher keeps the Params' values itself, so the
Pyomo model is no longer needed once it is compiled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pyomo.common.numeric_types import native_numeric_types, value
from pyomo.core.base.param import ParamData

Array = NDArray[np.float64]


_SUMS = ("NPV_SumExpression", "SumExpression", "LinearExpression")


def _has_params(expr: Any) -> bool:
    """Whether ``expr`` depends on a mutable Param. Iterative: a site's sums can nest as deep as it has EVSEs
    (a plan of 1,000 EVSEs hit Python's recursion limit here, and every plan of that site fell back)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        if e.__class__ in native_numeric_types:
            continue
        if isinstance(e, ParamData):
            return True
        if not e.is_expression_type():
            if not e.is_constant():
                return True
            continue
        stack.extend(e.args)
    return False


_NEGATIONS = ("NPV_NegationExpression", "NegationExpression")


def _sum_terms(expr: Any) -> list[tuple[float, Any]]:
    """The summands of ``expr`` as (sign, term), nested sums and negations flattened iteratively (the objective's
    constant nests one level per EVSE, see ``_has_params``)."""
    terms: list[tuple[float, Any]] = []
    stack: list[tuple[float, Any]] = [(1.0, expr)]
    while stack:
        sign, e = stack.pop()
        name = "" if e.__class__ in native_numeric_types or not e.is_expression_type() else e.__class__.__name__
        if name in _SUMS:
            stack.extend((sign, a) for a in reversed(e.args))
        elif name in _NEGATIONS:
            stack.append((-sign, e.args[0]))
        else:
            terms.append((sign, e))
    return terms


class ParamPusher:
    """The compiled update of one persistent HiGHS instance (``compile_pusher`` builds it after the model is
    loaded).

    All mutable values (matrix coefficients, row bounds, costs, the objective offset) are evaluated together
    (``Polynomial``) and only those that differ from what this pusher last sent go to HiGHS: HiGHS starts with
    what the load put there from the same Params, and nothing else changes these entries afterwards.

    Once compiled it holds no Pyomo object: the Params' values live here (``values``, set by name with
    ``set``), so the planner can drop the Pyomo model and keep only HiGHS (solve.py: a Pyomo model is about
    two thirds of a warm site's memory)."""

    def __init__(self, highs: Any, coef_rows: NDArray[np.int32], coef_cols: NDArray[np.int32],
                 bound_rows: NDArray[np.int32], cost_cols: NDArray[np.int32], blocks: list[Polynomial],
                 keys: list[tuple[str, Any]], values: Array) -> None:
        self.highs = highs   # the instance to push to (solve.py swaps it when a dormant planner wakes)
        self.coef_rows, self.coef_cols, self.bound_rows, self.cost_cols = coef_rows, coef_cols, bound_rows, cost_cols
        self.blocks = blocks
        self.values = np.append(values, 1.0)        # the Params' values, then the constant 1.0 (Polynomial.one)
        # name -> (positions in values, the Param's integer indices): Params the LP does not use are absent
        by_name: dict[str, tuple[list[int], list[Any]]] = {}
        for k, (name, idx) in enumerate(keys):
            pos, ids = by_name.setdefault(name, ([], []))
            pos.append(k)
            ids.append(idx)
        # (indices as an array once, for indexed Params; None for a scalar Param)
        self._by_name = {n: (np.array(pos, dtype=np.int64), None if None in ids else np.array(ids, dtype=np.int64))
                         for n, (pos, ids) in by_name.items()}
        self.sent = self._evaluate(True)             # what HiGHS holds after the load

    def set(self, name: str, new: Array | float) -> None:
        """Set Param ``name`` (indexed by 0..n-1: ``new`` an array; scalar: a float) for the next push."""
        entry = self._by_name.get(name)
        if entry is None:
            return   # a Param no row, bound or cost of the LP uses
        pos, ids = entry
        if isinstance(new, np.ndarray):
            self.values[pos] = new[ids]
        else:
            self.values[pos] = float(new)

    def _evaluate(self, coefficients: bool) -> list[Array]:
        return [b.values(self.values) if coefficients or k else self.sent[0] for k, b in enumerate(self.blocks)]

    def push(self, coefficients: bool = True) -> None:
        """What Pyomo's ``update_parameters()`` does, for the values that changed. ``coefficients=False``: the
        rows' coefficients are known not to have changed since the last push (the switch to stage 2 changes
        only the objective's ``w2`` and the guard row's bound)."""
        highs = self.highs
        coef, lo, up, cost, offset = new = self._evaluate(coefficients)
        old_coef, old_lo, old_up, old_cost, old_offset = self.sent
        for k in np.nonzero(coef != old_coef)[0].tolist():
            highs.changeCoeff(int(self.coef_rows[k]), int(self.coef_cols[k]), float(coef[k]))
        rows = np.nonzero((lo != old_lo) | (up != old_up))[0]
        if rows.size:
            highs.changeRowsBounds(int(rows.size), self.bound_rows[rows], lo[rows], up[rows])
        if offset[0] != old_offset[0]:
            highs.changeObjectiveOffset(float(offset[0]))
        cols = np.nonzero(cost != old_cost)[0]
        if cols.size:
            highs.changeColsCost(int(cols.size), self.cost_cols[cols], cost[cols])
        self.sent = new


def compile_pusher(opt: Any) -> ParamPusher | None:
    """The compiled pusher of the instance ``opt`` (Pyomo's persistent HiGHS solver) just loaded, or None when
    the model holds something it does not expand (quadratic terms, variable bounds made of Params): the
    caller then keeps the Pyomo model and uses ``opt.update_parameters()``."""
    from pyomo.contrib.solver.solvers.highs import _MutableConstraintBounds, _MutableLinearCoefficient

    obj = getattr(opt, "_mutable_objective", None)
    if obj is None or opt._mutable_bounds or obj.quadratic_coefs:
        return None
    con_map, var_map = opt._pyomo_con_to_solver_con_map, opt._pyomo_var_to_solver_var_map
    coefs: list[tuple[int, int, Any]] = []
    bounds: list[tuple[int, Any, Any]] = []
    for helpers in opt._mutable_helpers.values():
        for h in helpers:
            if isinstance(h, _MutableLinearCoefficient):
                coefs.append((con_map[h.pyomo_con], var_map[h.pyomo_var_id], h.expr))
            elif isinstance(h, _MutableConstraintBounds):
                bounds.append((con_map[h.con], h.lower_expr, h.upper_expr))
            else:
                return None
    index: dict[int, int] = {}
    params: list[Any] = []
    try:
        blocks = [Polynomial(exprs, index, params) for exprs in (
            [e for _, _, e in coefs], [lo for _, lo, _ in bounds], [up for _, _, up in bounds],
            [c.expr for c in obj.linear_coefs], [obj.constant.expr])]
    except NotImplementedError:          # an expression it does not expand: Pyomo's own update
        return None
    keys = [(p.parent_component().local_name, p.index()) for p in params]
    return ParamPusher(
        opt._solver_model,
        np.array([r for r, _, _ in coefs], dtype=np.int32), np.array([c for _, c, _ in coefs], dtype=np.int32),
        np.array([r for r, _, _ in bounds], dtype=np.int32),
        np.array([var_map[c.pyomo_var_id] for c in obj.linear_coefs], dtype=np.int32),
        blocks, keys, np.fromiter((p._value for p in params), dtype=float, count=len(params)))


class Polynomial:
    """Expressions over mutable Params, each expanded once into monomials (constant × product of Params) and
    evaluated together with numpy: one gather of the Params' values, one product per monomial, one sum per
    expression. Raises ``NotImplementedError`` for an operation it does not expand (the caller then keeps the
    closures)."""

    def __init__(self, exprs: list[Any], index: dict[int, int], params: list[Any]) -> None:
        # ``index``/``params``: shared across instances (one gather); not kept, so no Pyomo object outlives the build
        self.n = len(exprs)
        targets: list[int] = []
        consts: list[float] = []
        factors: list[tuple[int, ...]] = []
        for k, expr in enumerate(exprs):
            for monomial, const in _expand(expr, index, params).items():
                targets.append(k)
                consts.append(const)
                factors.append(monomial)
        degree = max((len(f) for f in factors), default=0)
        self.one = -1                                # index of the constant 1.0 appended to the gathered values
        self.targets = np.array(targets, dtype=np.int64)
        self.consts = np.array(consts, dtype=float)
        self.factors = np.array([f + (self.one,) * (degree - len(f)) for f in factors], dtype=np.int64).reshape(
            len(factors), degree)

    def values(self, gathered: Array) -> Array:
        """``gathered``: the Params' values (in ``params`` order) followed by 1.0."""
        terms = self.consts * gathered[self.factors].prod(axis=1) if self.factors.shape[1] else self.consts
        if not self.n:
            return np.zeros(0)
        out: Array = np.bincount(self.targets, weights=terms, minlength=self.n).astype(float)
        return out


def _expand(expr: Any, index: dict[int, int], params: list[Any]) -> dict[tuple[int, ...], float]:
    """``expr`` as {sorted Param indices: constant}."""
    if expr.__class__ in native_numeric_types:
        return {(): float(expr)}
    if isinstance(expr, ParamData):
        k = index.get(id(expr))
        if k is None:
            k = index[id(expr)] = len(params)
            params.append(expr)
        return {(k,): 1.0}
    if not expr.is_expression_type():
        if expr.is_constant():
            return {(): float(value(expr))}
        raise NotImplementedError(type(expr).__name__)
    if not _has_params(expr):
        return {(): float(value(expr))}
    name = expr.__class__.__name__
    if name in _SUMS:
        out: dict[tuple[int, ...], float] = {}
        for sign, a in _sum_terms(expr):
            for m, c in _expand(a, index, params).items():
                out[m] = out.get(m, 0.0) + sign * c
        return out
    if name in ("NPV_ProductExpression", "ProductExpression", "MonomialTermExpression"):
        left, right = (_expand(a, index, params) for a in expr.args)
        out = {}
        for ml, cl in left.items():
            for mr, cr in right.items():
                m = tuple(sorted(ml + mr))
                out[m] = out.get(m, 0.0) + cl * cr
        return out
    if name in ("NPV_NegationExpression", "NegationExpression"):
        return {m: -c for m, c in _expand(expr.args[0], index, params).items()}
    if name in ("NPV_DivisionExpression", "DivisionExpression") and not _has_params(expr.args[1]):
        d = float(value(expr.args[1]))
        return {m: c / d for m, c in _expand(expr.args[0], index, params).items()}
    raise NotImplementedError(name)
