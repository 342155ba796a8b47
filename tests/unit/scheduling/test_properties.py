"""Property: on random sites, arrivals, failures and limit drops, no plan ever breaks a hard limit."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.scheduling import (
    BaseLoad, CircuitSpec, EvseSpec, FixedDraw, SchedulingInput, SessionSpec, SitePlanner, check_limits, edf,
    equal_share, llf,
)


T0 = datetime(2025, 6, 1, tzinfo=timezone.utc)
SLOT_S = 900


def at(slot: int) -> datetime:
    return T0 + timedelta(seconds=slot * SLOT_S)


limits_a = st.one_of(st.none(), st.sampled_from([0.0, 6.0, 10.0, 16.0, 25.0, 32.0, 63.0]))
limits_w = st.one_of(st.none(), st.sampled_from([3_000.0, 7_400.0, 11_000.0, 22_000.0]))
phase_sets = st.sampled_from([(1,), (2,), (3,), (1, 2, 3), (2, 3, 1), (3, 1, 2), (1, 2)])


@st.composite
def sites(draw: st.DrawFn) -> SchedulingInput:
    horizon = draw(st.integers(3, 10))
    n_circuits = draw(st.integers(1, 4))
    n_evses = draw(st.integers(1, 6))
    parents = [None] + [draw(st.integers(0, i - 1)) for i in range(1, n_circuits)]
    owner = [draw(st.integers(0, n_circuits - 1)) for _ in range(n_evses)]
    keys = [f"E{i}" for i in range(n_evses)]
    evses = tuple(
        EvseSpec(k, draw(st.sampled_from([10.0, 16.0, 32.0])), draw(st.sampled_from([6.0, 8.0])), draw(phase_sets))
        for k in keys
    )
    circuits = tuple(
        CircuitSpec(
            f"C{c}", None if parents[c] is None else f"C{parents[c]}", draw(limits_a), draw(limits_w),
            tuple(k for k, o in zip(keys, owner) if o == c),
            current_limit_a_by_slot=tuple(draw(st.lists(st.sampled_from([0.0, 8.0, 20.0, 40.0]), max_size=horizon))),
        )
        for c in range(n_circuits)
    )
    sessions = []
    for i, k in enumerate(keys):
        if draw(st.booleans()):
            arr = draw(st.integers(0, horizon))
            dep = draw(st.one_of(st.none(), st.integers(arr, horizon + 2).map(at),
                                 st.integers(1, 899).map(lambda s: T0 + timedelta(seconds=s))))
            sessions.append(SessionSpec(
                f"s{i}", k, draw(st.floats(0.0, 40_000.0)), departure=dep,
                arrival=None if arr == 0 else at(arr), max_current_a=draw(st.sampled_from([None, 7.0, 13.0, 40.0])),
                priority=draw(st.sampled_from([0.5, 1.0, 3.0])), ev_phases=draw(st.sampled_from([None, None, 1, 2])),
            ))
    fixed = tuple(FixedDraw(k, draw(st.sampled_from([0.0, 6.0, 16.0, 32.0])))
                  for k in keys if draw(st.integers(0, 4)) == 0)
    base = tuple(BaseLoad(f"C{draw(st.integers(0, n_circuits - 1))}",
                          tuple(draw(st.sampled_from([0.0, 5.0, 12.0])) for _ in range(3)))   # type: ignore[arg-type]
                 for _ in range(draw(st.integers(0, 2))))
    prices = tuple(draw(st.lists(st.sampled_from([0.1, 0.2, 0.5]), max_size=horizon)))
    return SchedulingInput(start=T0, circuits=circuits, evses=evses, sessions=tuple(sessions), fixed_draws=fixed,
                           base_loads=base, price_per_kwh=prices, slot_s=SLOT_S, horizon_slots=horizon,
                           first_slot_s=draw(st.sampled_from([None, 60.0, 450.0])),
                           replan_s=draw(st.sampled_from([None, 300.0])),
                           peak_floor_kw=draw(st.sampled_from([0.0, 20.0])))


PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(sites())
def test_plan_never_breaks_a_hard_limit(inp: SchedulingInput) -> None:
    for planner in (SitePlanner(),):
        s = planner.plan(inp)
        assert s.status == "optimal", s.reason
        assert check_limits(inp, s) == []


@PROPS
@given(sites())
def test_fallback_and_baselines_never_break_a_hard_limit(inp: SchedulingInput) -> None:
    for heuristic in (equal_share, edf, llf):
        assert check_limits(inp, heuristic(inp)) == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites(), st.data())
def test_warm_replans_never_break_a_hard_limit(inp: SchedulingInput, data: st.DataObject) -> None:
    """A planner that saw one input and then gets a changed one (limit drop, arrival, failure, time step)."""
    planner = SitePlanner()
    planner.plan(inp)
    drop = data.draw(st.sampled_from([0.0, 6.0, 12.0]))
    circuits = tuple(dataclasses.replace(c, current_limit_a_by_slot=(drop,) * 2) if i == 0 else c
                     for i, c in enumerate(inp.circuits))
    fail = tuple(FixedDraw(e.evse_key, e.max_current_a) for e in inp.evses[:1])
    late = tuple(s for s in inp.sessions if s.evse_key != inp.evses[0].evse_key)
    for changed in (dataclasses.replace(inp, circuits=circuits),
                    dataclasses.replace(inp, fixed_draws=fail, sessions=late),
                    dataclasses.replace(inp, start=inp.start + timedelta(seconds=SLOT_S))):
        s = planner.plan(changed)
        assert s.status == "optimal", s.reason
        assert check_limits(changed, s) == []
