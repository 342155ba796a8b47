"""A boot storm on one site: its chargers come online a few at a time, faster than our commands are answered
(after an outage). Each one that connects holds an unknown TxDefault: it counts at its maximum until it took
our 0 A, and the idle EVSEs' shares shrink and grow back meanwhile. A bound on what that costs in commands:
each idle station gets its 0 A, at most one interim share and its final share (a load run with 200 chargers
was seen sending about seven per charger, docs/performance.md; not reproduced with this fake gateway, so this
is a regression bound, not a fix)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from csms.config import parse_config
from csms.domain.clock import FakeClock
from csms.domain.enums import ProfilePurpose, RegistrationStatus
from csms.domain.events import StationOnline
from csms.domain.ids import StationId
from csms.domain.model import ChargingProfile, CommandResult, Station
from csms.services.bus import EventBus
from csms.services.smart import SmartChargingService, delivery
from csms.services.smart.idle_share import LADDER_RATIO

from .test_safety_invariant import T0, FakeCharger, FakeGateway, Store, World


class CountingGateway(FakeGateway):
    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.defaults: Counter[str] = Counter()
        self.limits: dict[str, list[float]] = {}

    async def set_charging_profile(self, station_id: str, evse_id: int, profile: ChargingProfile) -> CommandResult:
        if profile.purpose is ProfilePurpose.TX_DEFAULT:
            self.defaults[station_id] += 1
            self.limits.setdefault(station_id, []).append(profile.periods[0].limit)
        await asyncio.sleep(0.005)   # a round trip: answers come back while other chargers connect
        return await super().set_charging_profile(station_id, evse_id, profile)


async def _storm(n: int, limit_kw: float) -> tuple[CountingGateway, World]:
    ids = [f"C{i:02d}" for i in range(n)]
    chargers = ", ".join(f"{{id: {i}, site: s, max_current_a: 32}}" for i in ids)
    cfg = parse_config(f"sites: [{{id: s, grid_limit_kw: {limit_kw}}}]\nchargers: [{chargers}]\n"
                       "smart_charging: {debounce_s: 0, planner_processes: 0}", env={})
    clock = FakeClock(T0)
    failures: list[str] = []
    world = World(clock, {i: FakeCharger(32.0) for i in ids}, [], lambda phase: None)
    stations = {i: Station(StationId(i), "s", RegistrationStatus.ACCEPTED, online=False, last_seen=T0,
                           max_current_a=32.0) for i in ids}
    store = Store(stations)
    bus = EventBus()
    gw = CountingGateway(world)
    svc = SmartChargingService(cfg, store, bus, gw, clock)  # type: ignore[arg-type]

    async def drain() -> None:
        for _ in range(50):
            pending = svc.triggers.pending()
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    # Chargers connect one after the other, a few at a time, faster than their 0 A lands.
    for k in range(0, n, 3):
        for i in ids[k:k + 3]:
            store._stations[i] = Station(StationId(i), "s", RegistrationStatus.ACCEPTED, online=True,
                                         last_seen=clock.now(), max_current_a=32.0)
            bus.publish(StationOnline(i, True, clock.now()))
            await svc.station_ready(i)
        clock.advance(seconds=1)
        await asyncio.sleep(0.003)
    await drain()
    await asyncio.sleep(delivery.BOOT_WINDOW_S + 0.1)  # TxDefault rises wait until the site stopped booting
    clock.advance(seconds=120)
    await svc.replan("s")
    await drain()
    await svc.stop()
    assert not failures
    return gw, world


def test_a_boot_storm_sends_each_idle_station_few_tx_defaults(monkeypatch: Any) -> None:
    monkeypatch.setattr(delivery, "BOOT_WINDOW_S", 0.3)
    gw, world = asyncio.run(_storm(30, 200.0))
    worst = max(gw.defaults.values())
    assert worst <= 3, (worst, {k: v for k, v in gw.limits.items() if len(v) > 3})
    # ... and once it is over, every idle station holds its share of the site (200 kW over 30: 9.66 A at 690
    # W/A), rounded down to a level of the ladder (idle_share.on_ladder).
    held = {i: c.tx_default.periods[0].limit for i, c in world.chargers.items() if c.tx_default is not None}
    fair_a = 200_000 / 30 / 690
    assert len(held) == 30 and len(set(held.values())) == 1, held
    assert fair_a / LADDER_RATIO <= min(held.values()) <= fair_a, held


def test_a_storm_over_many_sites_plans_few_at_a_time_and_every_site_gets_its_plan() -> None:
    """Issue 10: in a boot storm every reconnect asks its site for a plan at once; all sites snapshotting and
    solving together took the core from the boots (3,000 chargers on 30 sites reconnecting within 60 s:
    boot p99 13.8-17.5 s; 2.3 s with the bound). At most PLANS_AT_ONCE sites plan together, a site waiting for
    its turn gathers the requests made meanwhile into its next plan, and each site ends up planned."""
    from csms.services.smart.service import PLANS_AT_ONCE

    sites, per_site = 8, 6
    ids = {f"S{s}": [f"S{s}C{i}" for i in range(per_site)] for s in range(sites)}
    chargers = ", ".join(f"{{id: {c}, site: {s}, max_current_a: 32}}" for s, cs in ids.items() for c in cs)
    site_list = ", ".join(f"{{id: {s}, grid_limit_kw: 60}}" for s in ids)
    cfg = parse_config(f"sites: [{site_list}]\nchargers: [{chargers}]\n"
                       "smart_charging: {debounce_s: 0, planner_processes: 0}", env={})
    clock = FakeClock(T0)
    all_ids = [c for cs in ids.values() for c in cs]
    world = World(clock, {i: FakeCharger(32.0) for i in all_ids}, [], lambda phase: None)
    store = Store({i: Station(StationId(i), i[:2], RegistrationStatus.ACCEPTED, online=False, last_seen=T0,
                              max_current_a=32.0) for i in all_ids})
    bus = EventBus()
    gw = CountingGateway(world)

    async def run() -> tuple[int, int, Counter[str]]:
        svc = SmartChargingService(cfg, store, bus, gw, clock)  # type: ignore[arg-type]
        building, most, plans = 0, 0, Counter[str]()
        build = svc.snapshots.build

        async def counted(site: Any, *a: Any, **kw: Any) -> Any:
            nonlocal building, most
            building += 1
            most = max(most, building)
            plans[site.id] += 1
            try:
                await asyncio.sleep(0.01)  # the database reads of a snapshot
                return await build(site, *a, **kw)
            finally:
                building -= 1
        svc.snapshots.build = counted  # type: ignore[method-assign]
        for i in all_ids:  # every charger of every site reconnects at once
            store._stations[i] = Station(StationId(i), i[:2], RegistrationStatus.ACCEPTED, online=True,
                                         last_seen=clock.now(), max_current_a=32.0)
            bus.publish(StationOnline(i, True, clock.now()))
            await svc.station_ready(i)
        for _ in range(50):
            pending = svc.triggers.pending()
            if not pending:
                break
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.sleep(0.2)
        await svc.stop()
        return most, sum(plans.values()), plans

    most, total, plans = asyncio.run(run())
    assert most <= PLANS_AT_ONCE < sites, most
    assert set(plans) == set(ids) and total < len(all_ids), (total, plans)  # requests gathered, none left out
    assert all(gw.defaults[i] >= 1 for i in all_ids), gw.defaults  # every charger was given its TxDefault
