"""``SitePlanner``: keeps one persistent HiGHS model per site and re-plans by pushing only what changed.

Design (see docs/scheduling.md, "Re-planning"): the model is built once per ``(Topology, ObjectiveWeights)``
and loaded into HiGHS through Pyomo. Each ``plan()`` compiles the input to arrays and diffs them against what
the solver already holds; re-plans then talk to that HiGHS instance directly: changed bounds by column index,
changed Params through ``param_push``, ``run()``, and the solution read for the cells that can be non-zero.
Each plan solves twice (objectives.py): stage 1 for energy, stage 2 for peak, price and earliness under a guard
that keeps the stage-1 value; each stage restarts from its own previous optimal basis, and both solves share
one time budget. Rolling the horizon forward is the same diff: a session's window shifts by one slot, which
changes a couple of bounds per session.

``plan()`` never raises for infeasibility or solver trouble: it returns ``heuristics.equal_share`` with
``status="fallback"`` and the reason. Only ``InvalidInput`` (a caller bug) propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from csms.scheduling.expected import is_virtual, with_expected
from csms.scheduling.heuristics import _admit_then_fill, _walk, fair_shares
from csms.scheduling.model import SiteModel, build_model
from csms.scheduling.objectives import LEX_OPEN
from csms.scheduling.network import (
    Array, Network, Topology, change_kind, compile_network, highs_method, lp_bounds, lp_params, topology_of,
)
from csms.scheduling.param_push import ParamPusher, compile_pusher
from csms.scheduling.postpass import enforce_min_current
from csms.scheduling.problem import (
    Infeasible, ObjectiveWeights, SchedulingInput, SolverOptions, SolverUnavailable,
)
from csms.scheduling.result import Schedule, build_schedule

SolverFactoryFn = Callable[[], Any]


def _highs() -> Any:
    from pyomo.contrib.solver.common.factory import SolverFactory  # import late: only the LP path needs it

    return SolverFactory("highs")


class SitePlanner:
    """Stateful planner for one site. Not thread-safe: give each site (or worker) its own instance.

    ``solver_factory`` returns a fresh pyomo.contrib.solver persistent solver; tests inject a failing one.

    Memory (docs/performance.md, "Warm models that fit, plan budgets that start with the solve, and the heap"): the Pyomo model is needed only to build and load the
    LP. Once the Param updates are compiled (``param_push``) it is dropped and the planner keeps the HiGHS
    instance (~150 KB per EVSE at 96 slots instead of ~480 with Pyomo). ``hibernate`` goes further: it keeps
    only HiGHS's copy of the LP and the stages' optimal bases (~25-35 KB per EVSE), and the next plan loads
    them into a new instance (a few ms, then a re-factorisation) instead of building the model again
    (0.5-1.5 s at 100 EVSEs). ``keep_model=True`` (tests) keeps the Pyomo model.
    """

    def __init__(self, options: SolverOptions | None = None, solver_factory: SolverFactoryFn = _highs,
                 keep_model: bool = False) -> None:
        self.options = options or SolverOptions()
        self._factory = solver_factory
        self.keep_model = keep_model
        self._lp: Any = None                      # a dormant planner's LP (hibernate); its instance is gone
        self._key: tuple[Topology, ObjectiveWeights] | None = None
        self._sm: SiteModel | None = None
        self._opt: Any = None
        self._pushed: dict[str, Array] = {}
        self._params: ParamPusher | None = None   # compiled Param updates of the current HiGHS instance
        self._cols: _Columns | None = None        # HiGHS column indices of the current instance (re-plans)
        self._highs_options: dict[str, Any] = {}  # options the current instance holds (set only on change)
        self.builds = 0            # how many times the model was (re)built; handy in tests and metrics

    def plan(self, inp: SchedulingInput) -> Schedule:
        """Plan ``inp``. Raises only ``InvalidInput``; any solver problem yields the fallback schedule."""
        tick = time.perf_counter()     # diagnostics and the per-plan budget; never influences the plan itself
        # The cars expected later join the LP as flexible sessions on virtual EVSEs (expected.py); they never
        # reach the schedule, and the fallback heuristics never see them.
        lp_inp = with_expected(inp)
        net = compile_network(lp_inp, topology_of(lp_inp))
        virtual = np.array([is_virtual(k) for k in net.topo.evse_keys], dtype=bool)
        if self.options.force_fallback:
            return _fallback(inp, net if lp_inp is inp else None, "forced", tick)
        if not net.ub[~virtual].any():
            return build_schedule(lp_inp, net, np.zeros(net.ub.shape), "optimal", time.perf_counter() - tick,
                                  hidden=virtual)
        try:
            x_lp, terms = self._solve_lp(lp_inp, net, deadline=tick + self.options.time_limit_s)
        except Exception as exc:  # noqa: BLE001 - Pyomo/HiGHS raise assorted types (issue #2920)
            self._reset()              # the persistent state may be half-updated: rebuild next time
            return _fallback(inp, net if lp_inp is inp else None, f"{type(exc).__name__}: {exc}", tick)
        if self._params is not None and not self.keep_model:
            self._sm = self._opt = None    # compiled: HiGHS and the pusher hold all that re-plans need
        post = time.perf_counter()
        x = enforce_min_current(net, x_lp)
        terms["postpass_s"] = time.perf_counter() - post
        if virtual.any():
            terms["expected_kwh"] = float((x[virtual] * net.kwh_et[virtual]).sum())
            x[virtual] = 0.0
        return build_schedule(lp_inp, net, x, "optimal", time.perf_counter() - tick, extra_terms=terms,
                              hidden=virtual)

    def _reset(self) -> None:
        self._key, self._sm, self._opt, self._pushed, self._params = None, None, None, {}, None
        self._cols, self._highs_options, self._lp = None, {}, None

    @property
    def highs(self) -> Any:
        """The live HiGHS instance (None before the first plan, or while dormant)."""
        return self._cols.highs if self._cols is not None else None

    @property
    def dormant(self) -> bool:
        return self._lp is not None

    def hibernate(self) -> bool:
        """Give up the HiGHS instance, keeping its LP and the stages' bases for the next plan; False when there
        is nothing to give up (no plan yet, already dormant, or a Pyomo model kept that holds the instance)."""
        cols = self._cols
        if cols is None or cols.highs is None or self._sm is not None:
            return False
        self._lp = cols.highs.getLp()     # a copy (pybind11 copies a returned const reference)
        cols.sleep()
        if self._params is not None:
            self._params.highs = None
        return True

    def _wake(self) -> bool:
        """Load a dormant planner's LP into a new HiGHS instance, from the basis it left; False if HiGHS
        refused it (the caller builds the model again)."""
        import highspy

        cols = self._cols
        if cols is None or self._lp is None:
            return True
        highs = _new_highs()
        for key, val in self._highs_options.items():
            highs.setOptionValue(key, val)
        if highs.passModel(self._lp) != highspy.HighsStatus.kOk:
            return False
        self._lp = None
        if not cols.wake(highs):
            return False
        if self._params is not None:
            self._params.highs = highs
        return True

    def _solve_lp(self, inp: SchedulingInput, net: Network, deadline: float) -> tuple[Array, dict[str, float]]:
        key = (net.topo, inp.weights)
        cold = self._cols is None or self._key != key
        build_s = 0.0
        if not cold and not self._wake():
            cold = True
        if cold:
            t0 = time.perf_counter()
            self._reset()
            self._sm = build_model(net.topo, inp.weights)
            self._opt = self._factory()
            if not self._opt.available():
                raise SolverUnavailable("HiGHS is not available")
            self._key = key
            self.builds += 1
            build_s = time.perf_counter() - t0
        sm, opt = self._sm, self._opt
        w = inp.weights
        two_stages = w.lexicographic and _stage2_can_cost_energy(net, w)
        changed, tightened, shares_tightened = _push_bounds(sm, net, self._pushed, None if cold else self._cols)
        target = self._param_target()
        target.set("w2", 0.0 if two_stages else 1.0)
        target.set("lex_rhs", LEX_OPEN)
        need_changed = _push_params(target, net, self._pushed)
        n_cols = _i_cols(sm, None if cold else self._cols)
        change = change_kind(tightened or need_changed, shares_tightened)
        method = self.options.cold_method if cold else self.options.warm_method
        value1, secs1 = self._run(sm, opt, cold, changed, highs_method(method, cold, change, n_cols), deadline,
                                  stage=1)
        terms = {"lp_cold": float(cold), "bounds_pushed": float(len(changed)), "build_s": build_s,
                 "stage1_s": secs1, "stage1_objective": value1, "stage1_iterations": self._iterations()}
        if not two_stages or value1 != value1:     # NaN: no incumbent objective, nothing to hold in stage 2
            terms["lp_objective"] = value1
            return self._solution(net), terms
        x1 = self._solution(net)
        # Stage 2 keeps the stage-1 optimum feasible (it only adds a guard it satisfies): primal simplex from
        # it. From the previous plan's stage-2 basis (see _Columns.start_from), dual simplex.
        target = self._param_target()
        target.set("w2", 1.0)
        target.set("lex_rhs", value1 + w.lex_tolerance * max(1.0, abs(value1)))
        start2 = "restart" if self._cols is not None and self._cols.has_basis(2) else "relax"
        try:
            value2, secs2 = self._run(sm, opt, False, [], highs_method(self.options.warm_method, False, start2, n_cols),
                                      deadline, coefficients_changed=False, stage=2)
            x = self._solution(net)
        except (Infeasible, SolverUnavailable):
            # Numerical trouble in stage 2 only: the stage-1 plan is a correct plan, just not peak-shaved. The
            # next plan sets the stage switch and the guard afresh.
            terms["stage2_failed"] = 1.0
            return x1, terms
        terms.update(lp_objective=value2, stage2_s=secs2, lp_solve_s=secs1 + secs2, stage2_iterations=self._iterations())
        return x, terms

    def _param_target(self) -> Any:
        """Where Params are set: the compiled pusher once there is one, else the Pyomo model (a cold build,
        before its load, or a model the pusher cannot compile)."""
        if self._params is not None:
            return self._params
        assert self._sm is not None
        return _PyomoParams(self._sm.m)

    def _iterations(self) -> float:
        """Simplex iterations of the last solve (IPM's on a cold solve: its crossover's)."""
        assert self._cols is not None
        return float(self._cols.highs.getInfo().simplex_iteration_count)

    def _run(self, sm: SiteModel | None, opt: Any, cold: bool, changed: Any, options: dict[str, Any],
             deadline: float, coefficients_changed: bool = True, stage: int = 1) -> tuple[float, float]:
        """One HiGHS solve with what is left of this plan's budget; returns (objective, seconds). A persistent
        HiGHS instance compares ``time_limit`` with its whole run time (HiGHS #1331, #1477), so the limit is
        set relative to it.

        Pyomo loads the model into HiGHS (``_load_model``); every solve, the cold one included, runs on that
        HiGHS instance directly. On a re-solve the bounds were pushed by column index (``_push_bounds``), the
        Params by the compiled pusher; the solve and the solution read are plain highspy calls. Pyomo's own
        ``solve``/``update_variables``/solution loader cost more than HiGHS's re-solve here (output capture
        with a thread and file descriptors, a config object and index-map rebuilds per solve, a ComponentMap
        per read: 14 of 59 ms per plan on 42 EVSEs with the forecast)."""
        remaining = max(0.05, deadline - time.perf_counter())
        if cold:
            assert sm is not None
            tick = time.perf_counter()
            highs = _load_model(opt, sm.m)
            self._highs_options = {"output_flag": False}
            threads = {} if self.options.threads is None else {"threads": self.options.threads}
            for key, val in {**options, **threads}.items():
                highs.setOptionValue(key, val)
                self._highs_options[key] = val
            highs.setOptionValue("time_limit", float(highs.getRunTime()) + remaining)
            highs.run()
            seconds = time.perf_counter() - tick
            _check_status(highs)
            self._params = compile_pusher(opt)
            self._cols = _Columns(sm, opt)
            return _objective(highs), seconds
        assert self._cols is not None
        highs = self._cols.highs
        if len(changed):
            highs.changeColsBounds(int(len(changed)), changed, *self._cols.pending)
        if self._params is not None:
            self._params.push(coefficients=coefficients_changed)
        else:
            opt.update_parameters()
        self._cols.start_from(stage)
        for key, val in options.items():
            if self._highs_options.get(key) != val:
                highs.setOptionValue(key, val)
                self._highs_options[key] = val
        highs.setOptionValue("time_limit", float(highs.getRunTime()) + remaining)
        tick = time.perf_counter()
        highs.run()
        seconds = time.perf_counter() - tick
        _check_status(highs)
        return _objective(highs), seconds

    def _solution(self, net: Network) -> Array:
        """The planned currents (E×T) of the last solve; only cells that can be non-zero are read."""
        assert self._cols is not None
        col_value = np.asarray(self._cols.highs.getSolution().col_value)
        x = col_value[self._cols.i]
        multi = list(net.topo.multi_phase)
        if multi:
            one = net.one_phase[multi]
            x[np.array(multi)[one]] = col_value[self._cols.i1[one]]
        return np.where(net.ub > 0, x, 0.0)


def _load_model(opt: Any, model: Any) -> Any:
    """Load ``model`` into a new HiGHS instance held by ``opt`` (Pyomo's ``set_instance``), and return it.

    Pyomo's own ``set_instance`` and ``solve`` wrap their work in ``capture_output(capture_fd=True)``: they
    point the process's file descriptors 1 and 2 at a pipe read by a thread. In the CSMS that swallowed every
    log line other threads wrote meanwhile (a 1,000-EVSE site builds for seconds), and two planner threads
    capturing at once raised in Pyomo's reader threads ("Exception in thread ... (_mergedReader)", seen at
    10,000 chargers). This is the same sequence without the capture. HiGHS prints its banner once per process,
    when the first instance is created; output is switched off before the model is added (HiGHS warns on
    stdout for every zero coefficient otherwise)."""
    opt._reinit()
    opt._model = model
    opt._solver_model = highs = _new_highs()
    opt.add_block(model)
    if opt._objective is None:
        opt.set_objective(None)
    return highs


def _new_highs() -> Any:
    """A HiGHS instance with its output off (HiGHS warns on stdout for every zero coefficient otherwise)."""
    import highspy

    new_highs: Any = highspy.Highs             # untyped in highspy's stubs
    highs = new_highs()
    highs.setOptionValue("output_flag", False)
    return highs


class _Columns:
    """HiGHS column indices of a built model's variables, by bound block (``network.lp_bounds``'s names)."""

    def __init__(self, sm: SiteModel, opt: Any) -> None:
        self.highs = opt._solver_model
        var_map = opt._pyomo_var_to_solver_var_map

        def cols(rows: list[list[Any]], width: int) -> NDArray[np.int32]:
            return np.array([[var_map[id(v)] for v in row] for row in rows], dtype=np.int32).reshape(len(rows), width)

        n_t = len(sm.bl)
        self.i = cols(sm.i, n_t)
        self.i1 = cols(sm.i1, n_t)
        self.blocks: dict[str, NDArray[np.int32]] = {
            "i": self.i, "i1": self.i1, "seg": cols(sm.seg, len(sm.seg[0]) if sm.seg else 0),
            "y": cols(sm.y, n_t), "bl": cols([sm.bl], n_t), "free": cols([sm.free], len(sm.free)),
            "fs": cols(sm.fs, len(sm.fs[0]) if sm.fs else 0),
            "peak": cols([[sm.m.peak_kw]], 1), "now": cols([[sm.m.now_kw]], 1),
        }
        self.pending: tuple[Array, Array] = (np.zeros(0), np.zeros(0))   # bounds of the columns to change
        self.basis_stage = 1                  # the stage whose last optimum the instance's basis is
        self._saved: dict[int, Any] = {}      # stage -> that stage's last optimal basis (the other stage's)

    def sleep(self) -> None:
        """Keep the current stage's optimal basis beside the other stage's and let go of the instance."""
        self._saved[self.basis_stage] = self.highs.getBasis()
        self.highs = None

    def wake(self, highs: Any) -> bool:
        """Hold ``highs`` (the same LP, loaded again) and start it from the basis ``sleep`` kept."""
        self.highs = highs
        saved = self._saved.pop(self.basis_stage, None)
        if saved is None:
            return True
        import highspy

        return bool(highs.setBasis(saved) == highspy.HighsStatus.kOk)

    def has_basis(self, stage: int) -> bool:
        return stage == self.basis_stage or stage in self._saved

    def start_from(self, stage: int) -> None:
        """Start the next solve from ``stage``'s own last optimal basis. Stage 1 (energy) and stage 2 (peak,
        earliness) have different objectives, so each plan's stage 1 used to start from the previous plan's
        stage-2 optimum and walk back, and stage 2 then walked forth again from the stage-1 optimum. A
        stage's previous optimum is much closer to its new one (JPL 2-day replay: stage 1 107 -> 25 simplex
        iterations on average, stage 2 227 -> 101 with dual simplex). Plans with one stage never switch."""
        if stage == self.basis_stage:
            return
        self._saved[self.basis_stage] = self.highs.getBasis()
        saved = self._saved.pop(stage, None)
        if saved is not None:
            self.highs.setBasis(saved)
        self.basis_stage = stage


def _stage2_can_cost_energy(net: Network, w: ObjectiveWeights) -> bool:
    """Whether a one-shot weighted solve could trade energy for stage 2's terms. Earliness and fairness
    weights are far below the value of a kWh (≤ 1 against 100), so they never can; the peak and price terms
    can, but only if prices differ between slots or the site's load could rise above the peak floor. When
    neither can (a site at its limit without time-of-use prices: most plans), one solve gives the
    lexicographic optimum and the second is skipped."""
    if w.cost_weight > 0 and net.price.size and float(np.ptp(net.price)) > 0:
        return True
    if w.peak_per_kw <= 0:
        return False
    most_kw = float(net.peak_load_kw.max()) + float((net.ub.max(axis=1) * net.kw_per_a).sum())
    return most_kw > net.peak_floor_kw + 1e-6


def plan(inp: SchedulingInput, options: SolverOptions | None = None) -> Schedule:
    """One-shot plan (builds a fresh model). Services that re-plan should keep a ``SitePlanner`` per site."""
    return SitePlanner(options).plan(inp)


def _fallback(inp: SchedulingInput, net: Network | None, reason: str, tick: float) -> Schedule:
    """The heuristic plan of ``inp`` (``net``: its compiled network, None to compile it here)."""
    net = net or compile_network(inp, topology_of(inp))
    x = _walk(net, _admit_then_fill)
    return build_schedule(inp, net, x, "fallback", time.perf_counter() - tick, reason=reason)


def _i_cols(sm: SiteModel | None, cols: _Columns | None) -> int:
    """How many current columns ``i[e,t]`` the model has."""
    if cols is not None:
        return int(cols.i.size)
    assert sm is not None
    return len(sm.i) * len(sm.i[0]) if sm.i else 0


def _push_bounds(sm: SiteModel | None, net: Network, pushed: dict[str, Array],
                 cols: _Columns | None = None) -> tuple[Any, bool, bool]:
    """Find the bounds that differ from what the solver holds; return them, whether any bound got tighter and
    whether a fair share did (which decide the warm-start method). ``cols`` None (a cold build): set them on
    the Pyomo variables, which ``set_instance`` loads, and return the variables. Otherwise return the HiGHS
    column indices and leave their bounds in ``cols.pending`` for one ``changeColsBounds`` call: after the
    build the Pyomo variables are not read again (their bounds stay those of the build), and are dropped."""
    if cols is not None:
        n_seg, n_share = cols.blocks["seg"].shape[1], cols.blocks["fs"].shape[1]
    else:
        assert sm is not None
        n_seg, n_share = len(sm.seg[0]), len(sm.fs[0]) if sm.fs else 0
    handles: dict[str, Callable[[int, int], Any]] = {
        "i": lambda a, b: sm.i[a][b], "seg": lambda a, b: sm.seg[a][b], "y": lambda a, b: sm.y[a][b],
        "bl": lambda a, b: sm.bl[b], "free": lambda a, b: sm.free[b], "fs": lambda a, b: sm.fs[a][b],
        "peak": lambda a, b: sm.m.peak_kw, "now": lambda a, b: sm.m.now_kw, "i1": lambda a, b: sm.i1[a][b],
    } if sm is not None else {}
    changed: list[Any] = []
    idx: list[NDArray[np.int32]] = []
    los: list[Array] = []
    his: list[Array] = []
    tightened = shares_tightened = False
    shares = fair_shares(net, n_share)
    for name, (lb, ub) in lp_bounds(net, n_seg, shares).items():
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
        if cols is not None:
            if diff.any():
                idx.append(cols.blocks[name][diff])
                los.append(lb[diff])
                his.append(ub[diff])
        else:
            for a, b in np.argwhere(diff).tolist():
                v, lo, hi = handles[name](a, b), float(lb[a, b]), float(ub[a, b])
                v.setlb(None if np.isinf(lo) else lo)
                v.setub(None if np.isinf(hi) else hi)
                changed.append(v)
        pushed[name] = np.stack([lb, ub])
    if cols is None:
        return changed, tightened, shares_tightened
    cols.pending = (np.concatenate(los), np.concatenate(his)) if idx else (np.zeros(0), np.zeros(0))
    return (np.concatenate(idx) if idx else np.zeros(0, dtype=np.int32)), tightened, shares_tightened


class _PyomoParams:
    """Sets Params on the Pyomo model: before its load (a cold build), or when no pusher could be compiled."""

    def __init__(self, m: Any) -> None:
        self.m = m

    def set(self, name: str, new: Array | float, changed: list[int] | None = None) -> None:
        param = getattr(self.m, name)
        if not isinstance(new, np.ndarray):
            param.set_value(float(new))
            return
        for j in (range(len(new)) if changed is None else changed):
            param[j] = float(new[j])


def _push_params(target: Any, net: Network, pushed: dict[str, Array]) -> bool:
    """Set changed Params on ``target`` (a ``ParamPusher`` or ``_PyomoParams``); returns whether a need or the
    slot-0 coefficient of an active session changed: both are row coefficients, so the previous optimum may
    be infeasible."""
    params = lp_params(net)
    was_active = pushed.get("p:prio", np.zeros(len(params["prio"]))) > 0
    # An idle EVSE's coefficients multiply variables fixed at 0: changing them cannot break feasibility.
    row_changed = False
    for name in ("need", "kwh0"):
        old = pushed.get("p:" + name, params[name])
        row_changed |= bool(was_active[params[name] != old].any())
    old1 = pushed.get("p:kwh0_1", params["kwh0_1"])
    row_changed |= bool((params["kwh0_1"] != old1).any())
    for name, new in params.items():
        sent = pushed.get("p:" + name)
        if sent is not None and np.array_equal(sent, new):
            continue
        if isinstance(target, ParamPusher):
            target.set(name, new)
        else:
            target.set(name, new, None if sent is None else np.nonzero(new != sent)[0].tolist())
        pushed["p:" + name] = new.copy()
    return row_changed


def _objective(highs: Any) -> float:
    """The incumbent objective, NaN when the solver reports none (seen in the office scenario, 5 plans a day:
    the plan was then the fallback). Without it there is no stage-1 value to hold, so the caller keeps the
    stage-1 plan and skips stage 2."""
    info = highs.getInfo()
    return float(info.objective_function_value) if info.primal_solution_status == 2 else float("nan")


def _check_status(highs: Any) -> None:
    """Raise unless the last run on the HiGHS instance ended optimal (the statuses Pyomo maps the same way)."""
    import highspy

    status = highs.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        if status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
            raise Infeasible(str(status))
        raise SolverUnavailable(f"HiGHS stopped: {status}")

