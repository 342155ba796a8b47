"""Meter values as the simulated stations send them, and the adapters' call plumbing (pure / no network)."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from simulator.ocpp import v16, v201
from simulator.ocpp.base import AdapterBase, ChargerOffline, MeterSample

T = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)


def _current(values: list[dict[str, Any]]) -> dict[str | None, float]:
    return {v.get("phase"): float(v["value"]) for v in values if v["measurand"] == "Current.Import"}


def test_one_phase_car_on_three_phase_evse_loads_l1_only() -> None:
    s = MeterSample(T, 1000.0, 7360.0, 32.0, 50.0, phases=1, station_phases=3)
    assert s.phase_currents() == [("L1", 32.0), ("L2", 0.0), ("L3", 0.0)]
    for values in (v16.sampled_values(s), v201.sampled_values(s)):
        assert _current(values) == {None: 32.0, "L1": 32.0, "L2": 0.0, "L3": 0.0}


def test_three_phase_car_and_one_phase_evse() -> None:
    three = MeterSample(T, 0.0, 11_000.0, 15.94, None, phases=3, station_phases=3)
    assert _current(v201.sampled_values(three)) == {None: 15.94, "L1": 15.94, "L2": 15.94, "L3": 15.94}
    one = MeterSample(T, 0.0, 7360.0, 32.0, None, phases=1, station_phases=1)
    assert _current(v16.sampled_values(one)) == {None: 32.0, "L1": 32.0}
    idle = MeterSample(T, 0.0, 0.0, 0.0, None, phases=3, station_phases=3)
    assert set(_current(v16.sampled_values(idle)).values()) == {0.0}


class _Link:
    """Stands in for the ``ocpp`` ChargePoint: a call that fails once the socket is gone."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inner: list[asyncio.Task[Any]] = []

    async def call(self, payload: Any, suppress: bool = False) -> Any:
        self.inner.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await asyncio.sleep(3600)
        finally:
            raise ConnectionError("socket closed")     # like websockets' ConnectionClosedOK on send/recv


class _Charger:
    class config:  # noqa: N801 - attribute namespace
        charger_id = "SIM-X"


async def test_cancelled_call_leaves_no_unretrieved_task_exception(caplog: pytest.LogCaptureFixture) -> None:
    adapter = AdapterBase(_Charger())  # type: ignore[arg-type]
    adapter.link = link = _Link()
    outer = asyncio.create_task(adapter.call("Heartbeat"))
    await asyncio.sleep(0.01)
    outer.cancel()                                     # Charger.close() cancels the outbox worker
    with pytest.raises(asyncio.CancelledError):
        await outer
    await asyncio.sleep(0.01)
    assert link.inner[0].done()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        del outer, link
        adapter.link = None
        gc.collect()
        await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text


async def test_connection_lost_during_call_raises_offline(caplog: pytest.LogCaptureFixture) -> None:
    adapter = AdapterBase(_Charger())  # type: ignore[arg-type]
    adapter.link = link = _Link()
    pending = asyncio.create_task(adapter.call("Heartbeat"))
    await asyncio.sleep(0.01)
    link.closed.set_result(None)
    with pytest.raises(ChargerOffline):
        await pending
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        del pending, link
        adapter.link = None
        gc.collect()
        await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text
