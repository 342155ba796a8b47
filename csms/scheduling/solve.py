"""``SitePlanner``: keeps one persistent HiGHS model per site and re-plans by pushing only what changed.

Design (see docs/scheduling.md, "Re-planning"): the model is built once per ``(Topology, ObjectiveWeights)``.
Each ``plan()`` compiles the input to arrays, diffs them against what the solver already holds, and pushes
changed variable bounds with ``update_variables(changed)`` plus the few mutable Params with
``update_parameters()``; auto-updates are off and the solution is read back only for cells that can be
non-zero. Rolling the horizon forward is the same diff: a session's window shifts by one slot, which changes
a couple of bounds per session.

``plan()`` never raises for infeasibility or solver trouble: it returns ``heuristics.equal_share`` with
``status="fallback"`` and the reason. Only ``InvalidInput`` (a caller bug) propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from csms.scheduling.heuristics import _admit_then_fill, _walk, fair_shares
from csms.scheduling.model import SiteModel, build_model
from csms.scheduling.network import (
    Array, Network, Topology, change_kind, compile_network, highs_method, lp_bounds, lp_params, topology_of,
)
from csms.scheduling.postpass import enforce_min_current
from csms.scheduling.problem import (
    Infeasible, ObjectiveWeights, SchedulingInput, SolverOptions, SolverUnavailable,
)
from csms.scheduling.result import Schedule, build_schedule

# Everything off: we tell the solver exactly what changed (DEPENDENCIES.md, "Re-solving ... quickly").
_NO_AUTO_UPDATES = dict(
    check_for_new_or_removed_constraints=False, check_for_new_or_removed_vars=False,
    check_for_new_or_removed_params=False, check_for_new_objective=False, update_constraints=False,
    update_vars=False, update_parameters=False, update_named_expressions=False, update_objective=False,
)

SolverFactoryFn = Callable[[], Any]


def _highs() -> Any:
    from pyomo.contrib.solver.common.factory import SolverFactory  # import late: only the LP path needs it

    return SolverFactory("highs")


class SitePlanner:
    """Stateful planner for one site. Not thread-safe: give each site (or worker) its own instance.

    ``solver_factory`` returns a fresh pyomo.contrib.solver persistent solver; tests inject a failing one.
    """

    def __init__(self, options: SolverOptions | None = None, solver_factory: SolverFactoryFn = _highs) -> None:
        self.options = options or SolverOptions()
        self._factory = solver_factory
        self._key: tuple[Topology, ObjectiveWeights] | None = None
        self._sm: SiteModel | None = None
        self._opt: Any = None
        self._pushed: dict[str, Array] = {}
        self.builds = 0            # how many times the model was (re)built; handy in tests and metrics

    def plan(self, inp: SchedulingInput) -> Schedule:
        """Plan ``inp``. Raises only ``InvalidInput``; any solver problem yields the fallback schedule."""
        tick = time.perf_counter()     # diagnostics only (solve_time_s); never influences the plan
        net = compile_network(inp, topology_of(inp))
        if self.options.force_fallback:
            return _fallback(inp, net, "forced", tick)
        if not net.ub.any():
            return build_schedule(inp, net, np.zeros(net.ub.shape), "optimal", time.perf_counter() - tick)
        try:
            x_lp, terms = self._solve_lp(inp, net)
        except Exception as exc:  # noqa: BLE001 - Pyomo/HiGHS raise assorted types (issue #2920)
            self._reset()              # the persistent state may be half-updated: rebuild next time
            return _fallback(inp, net, f"{type(exc).__name__}: {exc}", tick)
        x = enforce_min_current(net, x_lp)
        return build_schedule(inp, net, x, "optimal", time.perf_counter() - tick, extra_terms=terms)

    def _reset(self) -> None:
        self._key, self._sm, self._opt, self._pushed = None, None, None, {}

    def _solve_lp(self, inp: SchedulingInput, net: Network) -> tuple[Array, dict[str, float]]:
        key = (net.topo, inp.weights)
        cold = self._sm is None or self._key != key
        if cold:
            self._reset()
            self._sm = build_model(net.topo, inp.weights)
            self._opt = self._factory()
            if not self._opt.available():
                raise SolverUnavailable("HiGHS is not available")
            self._key = key
            self.builds += 1
        sm, opt = self._sm, self._opt
        assert sm is not None
        changed, tightened, shares_tightened = _push_bounds(sm, net, self._pushed)
        params_changed, need_changed = _push_params(sm, net, self._pushed)
        method = self.options.cold_method if cold else self.options.warm_method
        n_cols = len(sm.i) * len(sm.i[0]) if sm.i else 0
        kwargs: dict[str, Any] = dict(
            load_solutions=False, raise_exception_on_nonoptimal_result=False, time_limit=self.options.time_limit_s,
            solver_options=highs_method(method, cold, change_kind(tightened or need_changed, shares_tightened),
                                        n_cols),
        )
        if cold:
            if self.options.threads is not None:
                kwargs["threads"] = self.options.threads
            res = opt.solve(sm.m, **kwargs)
        else:
            if changed:
                opt.update_variables(changed)
            if params_changed:
                opt.update_parameters()
            res = opt.solve(sm.m, auto_updates=_NO_AUTO_UPDATES, **kwargs)
        return _read_solution(sm, net, res), {
            "lp_objective": float(res.incumbent_objective), "lp_solve_s": float(res.timing_info.wall_time),
            "lp_cold": float(cold), "bounds_pushed": float(len(changed)),
        }


def plan(inp: SchedulingInput, options: SolverOptions | None = None) -> Schedule:
    """One-shot plan (builds a fresh model). Services that re-plan should keep a ``SitePlanner`` per site."""
    return SitePlanner(options).plan(inp)


def _fallback(inp: SchedulingInput, net: Network, reason: str, tick: float) -> Schedule:
    x = _walk(net, _admit_then_fill)
    return build_schedule(inp, net, x, "fallback", time.perf_counter() - tick, reason=reason)


def _push_bounds(sm: SiteModel, net: Network, pushed: dict[str, Array]) -> tuple[list[Any], bool, bool]:
    """Set the bounds that differ from what the solver holds; return the touched variables, whether any
    bound got tighter and whether a fair share did (which decide the warm-start method)."""
    handles: dict[str, Callable[[int, int], Any]] = {
        "i": lambda a, b: sm.i[a][b], "seg": lambda a, b: sm.seg[a][b], "y": lambda a, b: sm.y[a][b],
        "bl": lambda a, b: sm.bl[b], "free": lambda a, b: sm.free[b], "fs": lambda a, b: sm.fs[a][b],
    }
    changed: list[Any] = []
    tightened = shares_tightened = False
    shares = fair_shares(net, len(sm.fs[0]) if sm.fs else 0)
    for name, (lb, ub) in lp_bounds(net, len(sm.seg[0]), shares).items():
        old = pushed.get(name)
        diff = np.ones(ub.shape, dtype=bool) if old is None else (ub != old[1]) | (lb != old[0])
        # free[e] closing on an arrival does cut off the old optimum (via z), but only through the tie-break
        # row, and primal simplex still re-solves arrivals ~5x faster than dual: not tightening. Shrinking
        # fair shares (also on arrivals) get dual simplex but never interior point (network.highs_method).
        tighter = old is not None and name != "free" and bool(((ub < old[1]) | (lb > old[0])).any())
        if name == "fs":
            shares_tightened |= tighter
        else:
            tightened |= tighter
        for a, b in np.argwhere(diff).tolist():
            v, lo, hi = handles[name](a, b), float(lb[a, b]), float(ub[a, b])
            v.setlb(None if np.isinf(lo) else lo)
            v.setub(None if np.isinf(hi) else hi)
            changed.append(v)
        pushed[name] = np.stack([lb, ub])
    return changed, tightened, shares_tightened


def _push_params(sm: SiteModel, net: Network, pushed: dict[str, Array]) -> tuple[bool, bool]:
    """Push changed Params; returns (anything changed, a need changed). A need is a row coefficient, so
    changing it can make the previous optimum infeasible."""
    changed = need_changed = False
    params = lp_params(net)
    was_active = pushed.get("p:prio", np.zeros(len(params["prio"]))) > 0
    # An idle EVSE's need coefficient multiplies variables fixed at 0: changing it cannot break feasibility.
    need_changed = bool(was_active[params["need"] != pushed.get("p:need", params["need"])].any())
    for name, new in params.items():
        old = pushed.get("p:" + name)
        if old is not None and np.array_equal(old, new):
            continue
        param = getattr(sm.m, name)
        for j in (range(len(new)) if old is None else np.nonzero(new != old)[0].tolist()):
            param[j] = float(new[j])
        pushed["p:" + name] = new.copy()
        changed = True
    return changed, need_changed


def _read_solution(sm: SiteModel, net: Network, res: Any) -> Array:
    from pyomo.contrib.solver.common.results import TerminationCondition

    tc = res.termination_condition
    if tc != TerminationCondition.convergenceCriteriaSatisfied:
        if tc in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded):
            raise Infeasible(str(tc))
        raise SolverUnavailable(f"HiGHS stopped: {tc}")
    cells = np.argwhere(net.ub > 0).tolist()     # only these can be non-zero: read nothing else
    values = res.solution_loader.get_vars([sm.i[e][t] for e, t in cells])
    x = np.zeros(net.ub.shape)
    for e, t in cells:
        x[e, t] = values[sm.i[e][t]]
    return x
