"""The planner worker keeps at most `planner_warm_evses` EVSEs' models warm (memory per EVSE bounded, issue 10):
the sites planned least recently give theirs up, the site being planned always stays. Real HiGHS, through the
worker's own request loop."""

from __future__ import annotations

import io
import pickle
from datetime import UTC, datetime

from csms.scheduling import CircuitSpec, EvseSpec, SchedulingInput, SessionSpec, SitePlanner, SolverOptions
from csms.services.planner_worker import HEADER, encode, serve
from csms.services.warm_planners import WarmPlanners

T0 = datetime(2026, 12, 7, 8, tzinfo=UTC)


def site_input(evses: int) -> SchedulingInput:
    keys = tuple(f"e{i}" for i in range(evses))
    return SchedulingInput(start=T0, circuits=(CircuitSpec("site", max_current_a=16.0 * evses, evse_keys=keys),),
                           evses=tuple(EvseSpec(k, 16.0) for k in keys),
                           sessions=(SessionSpec("s", keys[0], 5000.0),), horizon_slots=4)


def answers(requests: list[tuple[object, ...]], warm_evses: int) -> list[tuple[object, ...]]:
    out = io.BytesIO()
    serve(io.BytesIO(b"".join(encode(r) for r in requests)), out, warm_evses)
    raw, got = out.getvalue(), []
    while raw:
        (n,) = HEADER.unpack(raw[:HEADER.size])
        got.append(pickle.loads(raw[HEADER.size:HEADER.size + n]))
        raw = raw[HEADER.size + n:]
    return got[1:]  # after "ready"


def test_the_worker_keeps_only_the_most_recent_sites_warm_within_its_evse_bound() -> None:
    opts = SolverOptions()
    plans = [(i, "plan", site, opts, site_input(3)) for i, site in enumerate(["a", "b", "c", "a"], 1)]
    got = answers(plans, warm_evses=6)
    assert all(ok for _, ok, _, _ in got)
    assert [s["warm_evses"] for *_, s in got] == [3, 6, 6, 6]  # "a" gave its model up to "c", "b" to "a"
    assert [s["sites"] for *_, s in got] == [1, 2, 2, 2]
    unbounded = answers(plans, warm_evses=0)
    assert [s["warm_evses"] for *_, s in unbounded] == [3, 6, 9, 9]


def test_the_site_being_planned_stays_warm_even_above_the_bound() -> None:
    warm = WarmPlanners(max_evses=10)
    big = warm.get("big", SolverOptions(), 50)
    assert not warm.trim() and "big" in warm
    warm.get("small", SolverOptions(), 5)
    assert warm.trim() and "big" not in warm and warm.warm_evses == 5
    assert warm.get("big", SolverOptions(), 50) is not big  # planned cold again
    assert isinstance(big, SitePlanner)
