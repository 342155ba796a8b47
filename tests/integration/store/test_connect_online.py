"""A connect's "online" is written with the station's BootNotification, not in a unit of its own (one unit
and one commit fewer per reconnect in a boot storm, issue 10); a station that does not boot is marked online
shortly after connecting; StationOnline is published once it is committed (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from csms.config import ChargerConfig, Config, SiteConfig
from csms.domain.clock import FakeClock
from csms.domain.events import DomainEvent, StationOnline
from csms.domain.model import StationInfo
from csms.services import charging
from csms.services.bus import EventBus
from csms.services.charging import ChargingService
from csms.services.provisioning import seed_from_config
from csms.store.db import create_engine, migrate
from csms.store.repositories import Store

T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)


@pytest.fixture
async def core(db_url: str):  # type: ignore[no-untyped-def]
    cfg = Config(sites=[SiteConfig(id="s1", grid_limit_kw=50.0)],
                 chargers=[ChargerConfig(id="CP1", site="s1"), ChargerConfig(id="CP2", site="s1")])
    engine = create_engine(db_url)
    await migrate(engine)
    store = Store(engine)
    await seed_from_config(store, cfg)
    bus = EventBus()
    seen: list[DomainEvent] = []
    bus.subscribe(seen.append)
    svc = ChargingService(store, bus, FakeClock(T0), heartbeat_interval_s=60)
    yield svc, store, seen
    svc.close()  # its deferred online write must not fire into a later test, after this database is gone
    await engine.dispose()


async def online(store: Store, station_id: str) -> bool:
    async with store.session() as s:
        st = await s.station(station_id)
    assert st is not None
    return st.online


def onlines(seen: list[DomainEvent]) -> list[tuple[str, bool]]:
    return [(e.station_id, e.online) for e in seen if isinstance(e, StationOnline)]


async def test_the_boot_writes_the_connects_online(core) -> None:  # type: ignore[no-untyped-def]
    svc, store, seen = core
    units = store.group_commit.units
    await svc.connected("CP1", "ocpp1.6")
    assert onlines(seen) == []  # nothing committed yet, nothing published
    await svc.booted("CP1", StationInfo("V", "M"), None)
    assert store.group_commit.units == units + 1  # connect and boot: one unit of work
    assert await online(store, "CP1")
    assert onlines(seen) == [("CP1", True)]
    await asyncio.sleep(charging.ONLINE_DEFER_S * 2)
    assert store.group_commit.units == units + 1 and onlines(seen) == [("CP1", True)]  # not written twice


async def test_a_station_that_does_not_boot_is_marked_online_shortly(core) -> None:  # type: ignore[no-untyped-def]
    svc, store, seen = core
    await svc.connected("CP1", "ocpp1.6")
    await svc.connected("CP2", "ocpp2.0.1")
    units = store.group_commit.units
    for _ in range(40):
        if onlines(seen):
            break
        await asyncio.sleep(charging.ONLINE_DEFER_S / 4)
    assert await online(store, "CP1") and await online(store, "CP2")
    assert store.group_commit.units == units + 1  # both in one unit
    assert sorted(onlines(seen)) == [("CP1", True), ("CP2", True)]
    async with store.session() as s:
        assert [st.protocol.value if st.protocol else None for st in await s.stations()] == ["ocpp1.6", "ocpp2.0.1"]


async def test_a_disconnect_before_the_write_leaves_it_offline(core) -> None:  # type: ignore[no-untyped-def]
    svc, store, seen = core
    await svc.connected("CP1", "ocpp1.6")
    await svc.disconnected("CP1")
    await asyncio.sleep(charging.ONLINE_DEFER_S * 2)
    assert not await online(store, "CP1")
    assert onlines(seen) == [("CP1", False)]


async def test_an_online_write_that_failed_is_tried_again(core, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from csms.domain.errors import StoreUnavailable

    svc, store, seen = core
    monkeypatch.setattr(charging, "ONLINE_RETRY_S", charging.ONLINE_DEFER_S)
    write, calls = store.write, []

    async def down_once(work):  # type: ignore[no-untyped-def]
        calls.append(work)
        if len(calls) == 1:
            raise StoreUnavailable("database unavailable")
        return await write(work)

    monkeypatch.setattr(store, "write", down_once)
    await svc.connected("CP1", "ocpp1.6")
    for _ in range(40):
        if onlines(seen):
            break
        await asyncio.sleep(charging.ONLINE_DEFER_S / 4)
    assert len(calls) == 2 and await online(store, "CP1")
    assert onlines(seen) == [("CP1", True)]
    svc.close()


async def test_boots_and_statuses_of_a_batch_share_one_hop_to_sqlite(core, db_url: str,  # type: ignore[no-untyped-def]
                                                                    request: pytest.FixtureRequest) -> None:
    """On SQLite the writes of boots and StatusNotifications wait for the batch's one hop (with its COMMIT),
    however many units share it: each hop waits for its turn in a busy event loop, and 2-3 of them per
    message made the writer, not the CPU, the limit of a boot ramp (issue 10)."""
    if not db_url.startswith("sqlite"):
        pytest.skip("counts aiosqlite's thread hops")
    from csms.domain.enums import ConnectorStatus
    from csms.domain.ids import EvseRef
    svc, store, seen = core
    await svc.booted("CP1", StationInfo("V", "M"), None)  # the station directory is loaded, the pool warm
    hops = request.getfixturevalue("hops")  # counting from here on
    units = store.group_commit.units
    commits = store.group_commit.commits
    at = datetime(2026, 1, 12, 10, 1, tzinfo=UTC)
    await asyncio.gather(
        svc.booted("CP1", StationInfo("V", "M2", "SN"), None), svc.booted("CP2", StationInfo("V", "M"), None),
        *(svc.status_changed(sid, EvseRef(1), ConnectorStatus.AVAILABLE, at, None, None) for sid in ("CP1", "CP2")))
    assert store.group_commit.units == units + 4
    n_commits = store.group_commit.commits - commits
    assert len(hops) <= 2 * n_commits, hops  # BEGIN and the batch's writes with the COMMIT, per transaction
    async with store.session() as s:
        cp1 = await s.station("CP1")
        assert cp1 is not None and cp1.info == StationInfo("V", "M2", "SN")
        assert [c.status for c in await s.connectors("CP2")] == [ConnectorStatus.AVAILABLE]
