"""Pushing a plan's mutable Params to HiGHS without Pyomo's per-coefficient expression walks.

Pyomo's persistent HiGHS interface re-evaluates every mutable coefficient on ``update_parameters()``: one
generic expression-tree walk per coefficient (``value(expr)``), then one HiGHS call per coefficient. On a site of
42 EVSEs with the arrival forecast that was half of a plan's CPU time, twice per plan (cProfile of a Caltech
day's 189 plans: 394,706 expression evaluations, 26.6 of 52 s), while HiGHS itself took 8.8 s. Here each
coefficient's expression is compiled once into a closure over its Params' values (the same ``_apply_operation``
Pyomo evaluates with, without the walk), and the objective's costs go to HiGHS in one vector call.

It reads the persistent solver's helper objects (``_mutable_helpers``, ``_mutable_objective``, its index maps):
Pyomo is pinned in constraints.txt, and ``tests/unit/scheduling/test_param_push.py`` checks every compiled
value against ``pyomo.value`` and every pushed number against HiGHS's own copy, so a Pyomo upgrade that moves
them fails there, not in production. Anything it does not recognise (quadratic terms, variable bounds made
of Params) falls back to ``update_parameters()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pyomo.common.numeric_types import native_numeric_types, value
from pyomo.core.base.param import ParamData

Fn = Callable[[], float]


def compile_value(expr: Any) -> Fn:
    """A closure returning ``value(expr)`` for the Params' current values (constants folded)."""
    if expr.__class__ in native_numeric_types:
        const = float(expr)
        return lambda: const
    if isinstance(expr, ParamData):
        return lambda: expr._value
    if not expr.is_expression_type():
        if expr.is_constant():
            const = float(value(expr))
            return lambda: const
        return lambda: value(expr)
    parts = [compile_value(a) for a in expr.args]
    apply = expr._apply_operation
    if not any(True for a in expr.args if _has_params(a)):
        const = float(apply([f() for f in parts]))
        return lambda: const
    return lambda: apply([f() for f in parts])


def _has_params(expr: Any) -> bool:
    if expr.__class__ in native_numeric_types:
        return False
    if isinstance(expr, ParamData):
        return True
    if not expr.is_expression_type():
        return not expr.is_constant()
    return any(_has_params(a) for a in expr.args)


class ParamPusher:
    """The compiled update of one persistent HiGHS instance (build it after ``set_instance``)."""

    def __init__(self, opt: Any) -> None:
        from pyomo.contrib.solver.solvers.highs import _MutableConstraintBounds, _MutableLinearCoefficient

        self.opt = opt
        self.highs = opt._solver_model
        con_map, var_map = opt._pyomo_con_to_solver_con_map, opt._pyomo_var_to_solver_var_map
        self.coefs: list[tuple[int, int, Fn]] = []
        self.row_bounds: list[tuple[int, Fn, Fn]] = []
        supported = not opt._mutable_bounds and not opt._mutable_objective.quadratic_coefs
        for con, helpers in opt._mutable_helpers.items():
            for h in helpers:
                if isinstance(h, _MutableLinearCoefficient):
                    self.coefs.append((con_map[h.pyomo_con], var_map[h.pyomo_var_id], compile_value(h.expr)))
                elif isinstance(h, _MutableConstraintBounds):
                    self.row_bounds.append((con_map[h.con], compile_value(h.lower_expr), compile_value(h.upper_expr)))
                else:
                    supported = False
        obj = opt._mutable_objective
        self.offset = compile_value(obj.constant.expr)
        self.cost_cols = np.array([var_map[c.pyomo_var_id] for c in obj.linear_coefs], dtype=np.int32)
        self.costs = [compile_value(c.expr) for c in obj.linear_coefs]
        self.supported = supported

    def push(self, coefficients: bool = True) -> None:
        """What ``opt.update_parameters()`` does, with the compiled values. ``coefficients=False``: the rows'
        coefficients are known not to have changed since the last push (the switch to stage 2 changes only
        the objective's ``w2`` and the guard row's bound)."""
        opt = self.opt
        if not self.supported:
            opt.update_parameters()
            return
        opt._sol = None
        if opt._last_results_object is not None:
            opt._last_results_object.solution_loader.invalidate()
        highs = self.highs
        if coefficients:
            for row, col, f in self.coefs:
                highs.changeCoeff(row, col, f())
        for row, lo, up in self.row_bounds:
            highs.changeRowBounds(row, lo(), up())
        highs.changeObjectiveOffset(self.offset())
        if len(self.cost_cols):
            highs.changeColsCost(len(self.cost_cols), self.cost_cols, np.array([f() for f in self.costs]))
