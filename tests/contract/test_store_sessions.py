"""What a session is, in every store: one transaction, committed on a normal exit, rolled back on an error;
`write(work)` returns work's result once committed. And the suite covers every port method."""

from __future__ import annotations

import inspect
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from csms.domain import store_ports
from csms.domain.records import StationSettings

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


async def _ids(store: Any) -> list[str]:
    async with store.session() as s:
        return [st.id for st in await s.stations()]


async def test_a_session_commits_on_exit_and_others_see_it_only_then(store: Any) -> None:
    async with store.session() as s:
        await s.save_station_settings("A", StationSettings())
        assert await _ids(store) == []  # not committed yet: another session does not see it
        assert [st.id for st in await s.stations()] == ["A"]  # its own session does
    assert await _ids(store) == ["A"]


async def test_a_session_that_raises_leaves_nothing(store: Any) -> None:
    with pytest.raises(RuntimeError):
        async with store.session() as s:
            await s.save_station_settings("A", StationSettings())
            await s.upsert_group("g", 2.0)
            raise RuntimeError("boom")
    assert await _ids(store) == []
    async with store.session() as s:
        assert await s.groups() == {}


async def test_write_returns_the_result_once_committed(store: Any) -> None:
    async def work(s: store_ports.StoreSession) -> str:
        await s.save_station_settings("W", StationSettings(site_id="x"))
        return "done"

    assert await store.write(work) == "done"
    assert await _ids(store) == ["W"]


async def test_a_failing_write_raises_and_commits_nothing(store: Any) -> None:
    async def work(s: store_ports.StoreSession) -> None:
        await s.save_station_settings("W", StationSettings())
        raise ValueError("bad")

    with pytest.raises(ValueError):
        await store.write(work)
    assert await _ids(store) == []


def test_every_port_method_is_exercised_by_this_suite() -> None:
    """A method added to a port without a contract test would let the stores drift apart unseen."""
    methods = {name for name, _ in inspect.getmembers(store_ports.StoreSession, inspect.isfunction)
               if not name.startswith("_")}
    assert len(methods) > 50
    here = Path(__file__).parent
    source = "\n".join(p.read_text() for p in here.glob("test_*.py") if p.name != Path(__file__).name)
    called = set(re.findall(r"\.(\w+)\(", source))
    assert methods - called == set()
