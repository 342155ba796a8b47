"""The slot timer re-plans a handful of sites at once, and spreads many over TIMER_SPREAD_S of clock time: 91
sites planned at the same instant (snapshots, then deliveries) held the event loop for seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.config import Config, SiteConfig, SmartChargingConfig
from csms.domain.clock import FakeClock
from csms.services.smart.control import ControlState
from csms.services.smart.dwell import DwellHistory
from csms.services.smart.live import Live
from csms.services.smart.triggers import TIMER_SPREAD_S, TIMER_TOGETHER_SITES, Triggers
from csms.store.memory import MemoryStore

T0 = datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC)


async def planned_at(n_sites: int) -> dict[str, datetime]:
    clock = FakeClock(T0)
    cfg = Config(sites=[SiteConfig(id=f"s{i}", grid_limit_kw=50.0) for i in range(n_sites)],
                 smart_charging=SmartChargingConfig(debounce_s=0, replan_interval_s=300))
    live = Live(cfg)
    planned: dict[str, datetime] = {}

    async def replan(site_id: str) -> None:
        planned.setdefault(site_id, clock.now())

    async def ready(station_id: str) -> None:
        return None

    triggers = Triggers(live, MemoryStore(), clock, ControlState(live), DwellHistory(), replan=replan, ready=ready)
    triggers.start()
    try:
        await clock.run_for(minutes=15)      # past the first slot boundary (10:15)
    finally:
        await triggers.stop()
    return planned


async def test_a_few_sites_replan_together_at_the_boundary() -> None:
    planned = await planned_at(TIMER_TOGETHER_SITES)
    boundary = datetime(2026, 12, 7, 10, 5, 30, tzinfo=UTC)   # replan_interval_s after the start comes first
    assert len(planned) == TIMER_TOGETHER_SITES and set(planned.values()) == {boundary}


async def test_many_sites_are_spread_over_the_spread_window() -> None:
    n = 91
    planned = await planned_at(n)
    times = sorted(planned.values())
    assert len(planned) == n
    boundary = datetime(2026, 12, 7, 10, 5, 30, tzinfo=UTC)
    assert times[0] == boundary and times[-1] <= boundary + timedelta(seconds=TIMER_SPREAD_S)
    assert times[-1] - times[0] >= timedelta(seconds=0.9 * TIMER_SPREAD_S)
    assert max(sum(1 for t in times if t == u) for u in times) == 1   # one site at a time
