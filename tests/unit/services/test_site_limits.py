"""The one owner of a site's limits (services.site_limits), and the plan input built from it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.config import SiteConfig, SmartChargingConfig
from csms.services.plan_input import EvseState, build_input, evse_key
from csms.services.site_limits import SiteLimits, slot_edges

AT = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)
PEAK = [{"start": "17:00", "end": "20:00", "limit_kw": 60}]


def site(**kw: Any) -> SiteConfig:
    kw.setdefault("grid_limit_kw", 100)
    return SiteConfig(id="s", **kw)


def t(hh: int, mm: int = 0) -> datetime:
    return AT.replace(hour=hh, minute=mm)


def test_limit_schedule_and_external_signal() -> None:
    limits = SiteLimits(site(limit_schedule=PEAK))
    series = limits.power_limit_kw_by_slot(slot_edges(AT, 900, 16))
    assert series[:2] == [100, 100] and series[2:14] == [60] * 12 and series[14] == 100
    assert SiteLimits(site(limit_schedule=PEAK), 40).power_limit_kw_by_slot(slot_edges(AT, 900, 4)) == [40] * 4
    assert SiteLimits(site(limit_schedule=PEAK), 80).power_limit_kw_at(t(17)) == 60  # the lower one


def test_a_slot_takes_the_lowest_limit_in_force_during_it() -> None:
    """A window that opens or closes inside a slot caps the whole slot (it used to take the value at the
    slot's start, so the plan ran over the window until the next slot)."""
    limits = SiteLimits(site(limit_schedule=[{"start": "17:05", "end": "19:50", "limit_kw": 60}]))
    edges = slot_edges(t(17), 900, 13)  # 17:00 ... 20:15
    series = limits.power_limit_kw_by_slot(edges)
    assert series[0] == 60  # [17:00, 17:15): the window opens at 17:05
    assert series[11] == 60  # [19:45, 20:00): it closes at 19:50
    assert series[12] == 100


def test_slots_need_not_be_uniform() -> None:
    """Slot 0 runs from now to the next grid boundary (SchedulingInput.first_slot_s)."""
    edges = slot_edges(t(16, 53), 900, 3, first_slot_s=420)
    assert edges == [t(16, 53), t(17), t(17, 15), t(17, 30)]
    assert SiteLimits(site(limit_schedule=PEAK)).power_limit_kw_by_slot(edges) == [100, 60, 60]


def test_a_midnight_to_midnight_window_is_all_day() -> None:
    limits = SiteLimits(site(limit_schedule=[{"start": "00:00", "end": "00:00", "limit_kw": 30}]))
    assert limits.power_limit_kw_by_slot(slot_edges(AT, 3600, 24)) == [30] * 24


def test_the_current_limit_counts_as_power_at_the_site_voltage() -> None:
    limits = SiteLimits(site(grid_limit_a=100, voltage_v=230))  # 100 A x 230 V x 3 = 69 kW
    assert limits.limit_a == 100
    assert limits.power_limit_kw_at(AT) == 100
    assert limits.limit_kw_at(AT) == pytest.approx(69.0) and limits.binding_at(AT) == "grid_limit_a"
    assert SiteLimits(site(grid_limit_kw=None, grid_limit_a=32)).limit_kw_at(AT) == pytest.approx(22.08)
    assert SiteLimits(site(limit_schedule=PEAK)).binding_at(t(18)) == "limit_schedule"
    assert SiteLimits(site(limit_schedule=PEAK), 50).binding_at(t(18)) == "external"
    assert SiteLimits(site()).binding_at(AT) == "grid_limit_kw"


def test_base_load_takes_the_highest_in_force_during_a_slot() -> None:
    s = site(base_load={"constant_kw": 2, "windows": [{"start": "17:05", "end": "18:00", "limit_kw": 10}]})
    limits = SiteLimits(s)
    assert limits.base_load_kw_by_slot(slot_edges(t(16, 45), 900, 6)) == [2, 12, 12, 12, 12, 2]
    [base] = limits.base_loads(slot_edges(t(16, 45), 900, 2))
    assert base.circuit == "s" and base.current_a(1, 1) == pytest.approx(12_000 / 690)


TREE = [
    {"name": "main", "max_power_kw": 50, "chargers": ["CP3"]},
    {"name": "row-a", "parent": "main", "max_current_a": 32, "chargers": ["CP1", "CP2"]},
]
EVSES = [(evse_key(c, 1), c) for c in ("CP1", "CP2", "CP3", "CP4")]


def test_circuits_and_the_planner_tree() -> None:
    limits = SiteLimits(site(grid_limit_a=200, circuits=TREE, limit_schedule=PEAK))
    main, row = limits.circuits
    assert (main.parent, main.stations, main.effective_limit_kw) == ("s", {"CP1", "CP2", "CP3"}, 50)
    assert (row.parent, row.stations, row.limit_a) == ("main", {"CP1", "CP2"}, 32)
    assert row.effective_limit_kw == pytest.approx(22.08)
    root, c_main, c_row = limits.circuit_specs(EVSES, slot_edges(t(16, 45), 900, 2))
    assert (root.name, root.parent, root.max_current_a, root.evse_keys) == ("s", None, 200, ("CP4#1",))
    assert root.power_limit_w_by_slot == (100_000, 60_000)
    assert (c_main.parent, c_main.max_power_w, c_main.evse_keys) == ("s", 50_000, ("CP3#1",))
    assert (c_row.parent, c_row.max_current_a, c_row.evse_keys) == ("main", 32, ("CP1#1", "CP2#1"))
    no_kw = SiteLimits(site(grid_limit_kw=None, grid_limit_a=100)).circuit_specs(EVSES, slot_edges(AT, 900, 1))
    assert no_kw[0].power_limit_w_by_slot == (math.inf,)


def evse(sid: str) -> EvseState:
    return EvseState(evse_key(sid, 1), sid, 1, 32.0, 6.0, (1, 2, 3), 230.0, True, 0.0)


def test_the_plan_input_takes_its_limits_from_the_owner() -> None:
    """build_input: the root's per-slot limit, its current limit, the circuits and the base load are the
    owner's, slot for slot."""
    s = site(grid_limit_a=200, circuits=TREE, base_load={"constant_kw": 3},
             limit_schedule=[{"start": "00:00", "end": "00:00", "limit_kw": 45}])  # all day
    circuit_of = {"CP1": "row-a", "CP2": "row-a", "CP3": "main"}
    inp = build_input(s, [evse(c) for c in ("CP1", "CP2", "CP3", "CP4")], [], AT, SmartChargingConfig(),
                      circuit_of=circuit_of, external_limit_kw=None)
    limits = SiteLimits(s)
    edges = [inp.slot_start(k) for k in range(inp.horizon_slots + 1)]
    assert inp.circuits == limits.circuit_specs(EVSES, edges)
    assert inp.base_loads == limits.base_loads(edges)
    assert inp.circuits[0].power_limit_w(0) == 45_000  # the all-day window is in force now
    capped = build_input(s, [], [], AT, SmartChargingConfig(), circuit_of={}, external_limit_kw=20)
    assert capped.circuits[0].power_limit_w(0) == 20_000


def test_a_window_opening_inside_the_current_slot_caps_the_plan_now() -> None:
    s = site(limit_schedule=[{"start": "16:40", "end": "20:00", "limit_kw": 60}])
    inp = build_input(s, [evse("A")], [], AT + timedelta(minutes=2), SmartChargingConfig(), circuit_of={})
    assert inp.circuits[0].power_limit_w(0) == 60_000  # slot [16:30, 16:45) contains 16:40
