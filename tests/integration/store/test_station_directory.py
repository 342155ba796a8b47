"""The stations' access records are read from memory (Store.stations, a StationDirectory) on the
connect path, and a change made through the store is seen at once: by the next handshake and by the
next boot, whether the change commits before or while a lookup runs (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from csms.domain.clock import FakeClock
from csms.domain.enums import RegistrationStatus
from csms.domain.model import StationInfo
from csms.domain.records import StationSettings
from csms.services.bus import EventBus
from csms.services.charging import ChargingService
from csms.store.db import create_engine, migrate
from csms.store.repositories import Store

T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)


@pytest.fixture
async def core(db_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(db_url)
    await migrate(engine)
    store = Store(engine)
    async with store.session() as s:
        for sid in ("CP1", "CP2"):
            await s.save_station_settings(sid, StationSettings(registration=RegistrationStatus.ACCEPTED,
                                                               password_hash="h1"))
    selects: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_a: selects.append(sql) if sql.lstrip().upper().startswith("SELECT")
                 else None)
    yield store, selects
    await engine.dispose()


async def access(store: Store, sid: str):  # type: ignore[no-untyped-def]
    async with store.session() as s:
        return await s.station_access(sid)


async def test_known_stations_are_read_once_then_from_memory(core) -> None:  # type: ignore[no-untyped-def]
    store, selects = core
    assert (await access(store, "CP1")).password_hash == "h1"
    assert len(selects) == 1  # the first lookup loads every station
    assert (await access(store, "CP2")).registration is RegistrationStatus.ACCEPTED
    assert (await access(store, "CP1")) is not None
    assert len(selects) == 1
    assert await access(store, "nope") is None  # an unknown one is read each time (not remembered)
    assert await access(store, "nope") is None
    assert len(selects) == 3


async def test_a_committed_change_is_seen_by_the_next_lookup(core) -> None:  # type: ignore[no-untyped-def]
    store, _ = core
    await access(store, "CP1")  # loaded
    async with store.session() as s:
        st = await s.station_settings("CP1")
        await s.save_station_settings("CP1", replace(st, registration=RegistrationStatus.REJECTED,
                                                     password_hash="h2", security_profile=2))
        # inside the writing session: its own uncommitted write
        assert (await s.station_access("CP1")).registration is RegistrationStatus.REJECTED
    got = await access(store, "CP1")
    assert (got.registration, got.password_hash, got.security_profile) == (RegistrationStatus.REJECTED, "h2", 2)
    async with store.session() as s:
        await s.save_station_settings("CP3", StationSettings(registration=RegistrationStatus.ACCEPTED))
    assert (await access(store, "CP3")) is not None  # created after the load
    async with store.session() as s:
        assert await s.delete_station("CP3")
    assert await access(store, "CP3") is None


async def test_a_rolled_back_change_leaves_the_committed_record(core) -> None:  # type: ignore[no-untyped-def]
    store, _ = core
    await access(store, "CP1")
    with pytest.raises(RuntimeError):
        async with store.session() as s:
            await s.save_station_settings("CP1", StationSettings(registration=RegistrationStatus.REJECTED))
            raise RuntimeError("rolled back")
    assert (await access(store, "CP1")).registration is RegistrationStatus.ACCEPTED


async def test_a_lookup_during_an_uncommitted_change_does_not_keep_the_old_record(core) -> None:  # type: ignore[no-untyped-def]
    """A lookup that reads the old row while a change is written but not committed may answer with it,
    but must not keep it: once the change commits, lookups see the new record."""
    store, _ = core
    await access(store, "CP1")
    written, commit = asyncio.Event(), asyncio.Event()

    async def change() -> None:
        async with store.session() as s:
            await s.save_station_settings("CP1", StationSettings(registration=RegistrationStatus.REJECTED))
            await s.s.flush()
            written.set()
            await commit.wait()

    task = asyncio.create_task(change())
    await written.wait()
    during = await access(store, "CP1")  # the committed (old) row: read from the database, it was dropped
    assert during is not None and during.registration is RegistrationStatus.ACCEPTED
    commit.set()
    await task
    assert (await access(store, "CP1")).registration is RegistrationStatus.REJECTED


async def test_boot_answers_the_registration_an_operator_just_set(core) -> None:  # type: ignore[no-untyped-def]
    """The boot reads the registration from memory: a change through the store (the API's path) between
    two boots of a connected charger is answered on the second one."""
    store, _ = core
    svc = ChargingService(store, EventBus(), FakeClock(T0), heartbeat_interval_s=60)
    info = StationInfo(vendor="V", model="M")
    assert (await svc.booted("CP1", info, None)).status is RegistrationStatus.ACCEPTED
    async with store.session() as s:
        st = await s.station_settings("CP1")
        await s.save_station_settings("CP1", replace(st, registration=RegistrationStatus.REJECTED))
    assert (await svc.booted("CP1", info, None)).status is RegistrationStatus.REJECTED
    assert (await svc.access("CP1")).registration is RegistrationStatus.REJECTED
