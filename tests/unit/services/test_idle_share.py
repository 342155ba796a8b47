"""The idle EVSEs' TxDefault: their equal share of what base load, fixed draws and the plan leave, per limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.scheduling import (
    BaseLoad,
    CircuitSpec,
    EvseSpec,
    FixedDraw,
    SchedulingInput,
    SessionSpec,
    SitePlanner,
    check_limits,
)
from csms.services.smart.idle_share import IdleEvse, reserves, shares, station_defaults

NOW = datetime(2026, 11, 27, 8, 5, tzinfo=UTC)


def site(limit_w: float, keys: list[str], *, phases: dict[str, tuple[int, ...]] | None = None,
         circuits: tuple[CircuitSpec, ...] = (), base_w: float = 0.0, fixed: tuple[FixedDraw, ...] = (),
         sessions: tuple[SessionSpec, ...] = ()) -> SchedulingInput:
    below = {k for c in circuits for k in c.evse_keys}
    root = CircuitSpec("s", None, max_power_w=limit_w, evse_keys=tuple(k for k in keys if k not in below))
    evses = tuple(EvseSpec(k, 32.0, 6.0, (phases or {}).get(k, (1, 2, 3))) for k in keys)
    base = (BaseLoad.balanced_power("s", base_w),) if base_w else ()
    return SchedulingInput(start=NOW, circuits=(root, *circuits), evses=evses, sessions=sessions,
                           fixed_draws=fixed, base_loads=base, slot_s=900, horizon_slots=8, first_slot_s=600)


def idle(*keys: str) -> list[IdleEvse]:
    return [IdleEvse(k, k.split("#")[0], 6.0, 32.0) for k in keys]


def test_equal_shares_of_the_site_to_0_1_a() -> None:
    inp = site(22_000, ["A#1", "B#1", "C#1"])
    assert shares(inp, idle("A#1", "B#1", "C#1"), {}, None) == {"A#1": 10.6, "B#1": 10.6, "C#1": 10.6}


def test_what_sessions_base_load_and_fixed_draws_take_is_not_shared() -> None:
    inp = site(44_000, ["A#1", "B#1", "C#1", "D#1"], base_w=6_900, fixed=(FixedDraw("D#1", 10.0),))
    planned = {"C#1": [20.0] * 8}
    # 44 kW - 6.9 kW base - 6.9 kW (D) - 13.8 kW (C) = 16.4 kW for two: 11.8 A each
    assert shares(inp, idle("A#1", "B#1"), planned, None) == {"A#1": 11.8, "B#1": 11.8}


def test_the_lowest_slot_and_every_limit_on_the_path_count() -> None:
    row = CircuitSpec("row", "s", max_current_a=16.0, evse_keys=("A#1", "B#1"))
    inp = site(100_000, ["A#1", "B#1", "C#1"], circuits=(row,))
    got = shares(inp, idle("A#1", "B#1", "C#1"), {"C#1": [0.0] * 7 + [32.0]}, None)
    assert got == {"A#1": 8.0, "B#1": 8.0, "C#1": 32.0}  # the row's 16 A for two; C alone under 100 kW


def test_one_phase_evses_share_their_phase() -> None:
    inp = site(100_000, ["A#1", "B#1", "C#1"], phases={"A#1": (1,), "B#1": (1,), "C#1": (2,)},
               circuits=(CircuitSpec("row", "s", max_current_a=20.0, evse_keys=("A#1", "B#1", "C#1")),))
    assert shares(inp, idle("A#1", "B#1", "C#1"), {}, None) == {"A#1": 10.0, "B#1": 10.0, "C#1": 20.0}


def test_0_a_when_the_minimum_does_not_fit_and_the_operator_bound() -> None:
    overloaded = site(22_000, ["A#1", "B#1"], base_w=20_000)
    assert shares(overloaded, idle("A#1", "B#1"), {}, None) == {"A#1": 0.0, "B#1": 0.0}
    assert reserves(overloaded, idle("A#1", "B#1"), None) == {"A#1": 0.0, "B#1": 0.0}
    inp = site(22_000, ["A#1", "B#1"])
    assert shares(inp, idle("A#1", "B#1"), {}, 8.0) == {"A#1": 8.0, "B#1": 8.0}
    assert shares(inp, idle("A#1", "B#1"), {}, 0.0) == {"A#1": 0.0, "B#1": 0.0}
    assert reserves(inp, idle("A#1", "B#1"), None) == {"A#1": 6.0, "B#1": 6.0}


def test_a_station_takes_the_smallest_share_of_its_idle_evses() -> None:
    evses = [IdleEvse("A#1", "A", 6, 32), IdleEvse("A#2", "A", 6, 32), IdleEvse("B#1", "B", 6, 32)]
    assert station_defaults(evses, {"A#1": 12.0, "A#2": 9.5, "B#1": 16.0}) == {"A": 9.5, "B": 16.0}


@settings(max_examples=40, deadline=None)
@given(limit_kw=st.sampled_from([11.0, 22.0, 40.0]), n_idle=st.integers(1, 4), n_busy=st.integers(0, 3),
       base_kw=st.sampled_from([0.0, 3.0, 15.0]), row_a=st.sampled_from([None, 16.0, 40.0]))
def test_plan_plus_tx_defaults_stay_within_every_limit(limit_kw: float, n_idle: int, n_busy: int, base_kw: float,
                                                       row_a: float | None) -> None:
    """What the live service does: reserve the minimum for idle EVSEs, plan, share the rest. The plan with
    every idle EVSE drawing its TxDefault passes the independent limit checker."""
    keys = [f"E{i}#1" for i in range(n_idle + n_busy)]
    idle_evses = idle(*keys[:n_idle])
    sessions = tuple(SessionSpec(f"s{k}", k, 30_000.0, departure=NOW + timedelta(hours=6)) for k in keys[n_idle:])
    circuits = (CircuitSpec("row", "s", max_current_a=row_a, evse_keys=tuple(keys[::2])),) if row_a else ()
    bare = site(limit_kw * 1000, keys, circuits=circuits, base_w=base_kw * 1000, sessions=sessions)
    reserve = reserves(bare, idle_evses, None)
    inp = SchedulingInput(**{**{f: getattr(bare, f) for f in bare.__dataclass_fields__},
                             "fixed_draws": tuple(FixedDraw(k, a) for k, a in reserve.items() if a > 0)})
    sch = SitePlanner().plan(inp)
    got = shares(bare, idle_evses, {p.evse_key: p.current_a for p in sch.sessions}, None)
    assert all(got[k] >= reserve[k] for k in got)  # never below what the plan kept free
    with_defaults = SchedulingInput(**{**{f: getattr(bare, f) for f in bare.__dataclass_fields__},
                                       "fixed_draws": tuple(FixedDraw(k, a) for k, a in got.items() if a > 0)})
    assert check_limits(with_defaults, sch, tol_a=1e-3, tol_w=1.0) == []


def test_shares_move_on_a_ladder_rounded_down_with_hysteresis() -> None:
    """Issue 10: an equal share moved with every EVSE that joined, and every decrease is sent: a 1,000-charger
    ramp sent 15,469 TxDefault decreases. On the ladder a falling share crosses a handful of levels."""
    from csms.services.smart.idle_share import LADDER_RATIO, on_ladder

    idle = [IdleEvse("A#1", "A", 6.0, 16.0)]
    seen = []
    for tenth in range(160, 59, -1):  # a share falling from 16 A to 6 A in 0.1 A steps
        a = on_ladder({"A": tenth / 10}, idle)["A"]
        assert tenth / 10 / LADDER_RATIO - 0.1 <= a <= tenth / 10  # never above the share, at most a level below
        if not seen or seen[-1] != a:
            seen.append(a)
    assert seen == [16.0, 12.8, 10.2, 8.1, 6.5, 6.0], seen  # 5 decreases instead of 100
    assert on_ladder({"A": 5.0}, idle)["A"] == 0.0 and on_ladder({"A": 0.0}, idle)["A"] == 0.0
    # Held 8.1 A: kept while the share stays at or above it and a tenth less would not reach the next level.
    assert on_ladder({"A": 11.0}, idle, {"A": 8.1})["A"] == 8.1
    assert on_ladder({"A": 11.3}, idle, {"A": 8.1})["A"] == 10.2
    assert on_ladder({"A": 8.0}, idle, {"A": 8.1})["A"] == 6.5  # below what it holds: down, always
    assert on_ladder({"A": 7.0}, idle, {"A": 0.0})["A"] == 6.5  # from 0 A, up as soon as the minimum fits
