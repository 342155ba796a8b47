"""Group commit on a real database: writes queued together share a transaction, each returns after the
commit, and one failing unit fails alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from csms.domain.records import StationSettings
from csms.store.repositories import Store, StoreSession

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


async def _stations(store: Store) -> set[str]:
    async with store.session() as s:
        return {st.id for st in await s.stations()}


async def test_writes_queued_together_share_one_commit_and_are_visible_when_they_return(store: Store) -> None:
    seen_after: dict[str, bool] = {}

    async def add(i: int) -> None:
        sid = f"GC-{i}"
        await store.write(lambda s: s.save_station_settings(sid, StationSettings()))
        # Returned: committed, so another session (another connection) sees it.
        seen_after[sid] = sid in await _stations(store)

    await asyncio.gather(*(add(i) for i in range(50)))
    assert all(seen_after.values()) and len(seen_after) == 50
    gc = store.group_commit
    assert gc.units == 50
    assert gc.commits < 50, "50 writes queued at once were committed one by one"


async def test_a_failing_unit_fails_alone_and_the_others_commit(store: Store) -> None:
    async def bad(s: StoreSession) -> None:
        await s.save_station_settings("GC-BAD", StationSettings())
        raise ValueError("bad message")

    results = await asyncio.gather(
        store.write(lambda s: s.save_station_settings("GC-A", StationSettings())), store.write(bad),
        store.write(lambda s: s.save_station_settings("GC-B", StationSettings())), return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert await _stations(store) == {"GC-A", "GC-B"}  # the failed unit's own write is rolled back


async def test_touch_updates_last_seen_of_many_stations_in_one_statement(store: Store) -> None:
    for i in range(3):
        await store.write(lambda s, i=i: s.save_station_settings(f"T-{i}", StationSettings()))
    await store.write(lambda s: s.touch({f"T-{i}": T0 for i in range(3)}))
    async with store.session() as s:
        assert all(st.last_seen == T0 for st in await s.stations())


async def test_touch_of_a_station_deleted_meanwhile_is_no_error(store: Store) -> None:
    await store.write(lambda s: s.save_station_settings("T-KEEP", StationSettings()))
    await store.write(lambda s: s.touch({"T-KEEP": T0, "T-GONE": T0}))
    async with store.session() as s:
        assert [st.last_seen for st in await s.stations()] == [T0]
