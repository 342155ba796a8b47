"""Builders shared by the scheduling tests (exposed as the session fixture ``b``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from csms.scheduling import CircuitSpec, EvseSpec, SchedulingInput, SessionSpec

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)
SLOT_S = 900


def at(slot: float) -> datetime:
    return T0 + timedelta(seconds=slot * SLOT_S)


def evse(key: str, max_a: float = 32.0, phases: tuple[int, ...] = (1,), **kw: Any) -> EvseSpec:
    return EvseSpec(key, max_a, phases=phases, **kw)


def session(key: str, evse_key: str, kwh: float, dep: float | None = None, arr: float | None = None,
            **kw: Any) -> SessionSpec:
    return SessionSpec(key, evse_key, kwh * 1000.0, departure=None if dep is None else at(dep),
                       arrival=None if arr is None else at(arr), **kw)


def site(evses: list[EvseSpec], sessions: list[SessionSpec], limit_a: float | None = None,
         horizon: int = 8, circuits: list[CircuitSpec] | None = None, **kw: Any) -> SchedulingInput:
    circuits = circuits or [CircuitSpec("site", max_current_a=limit_a, evse_keys=tuple(e.evse_key for e in evses))]
    return SchedulingInput(start=T0, circuits=tuple(circuits), evses=tuple(evses), sessions=tuple(sessions),
                           horizon_slots=horizon, slot_s=SLOT_S, **kw)


def kwh_per_slot(amps: float, phases: int = 1, volts: float = 230.0) -> float:
    return amps * volts * phases * SLOT_S / 3600.0 / 1000.0


@pytest.fixture(scope="session")
def b() -> SimpleNamespace:
    return SimpleNamespace(T0=T0, at=at, evse=evse, session=session, site=site, kwh_per_slot=kwh_per_slot)
