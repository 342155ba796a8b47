"""What a booking guarantees, through the whole CSMS (CsmsApp, REST API over HTTP) on a fake clock.

A 32 A three-phase charger delivers 22.08 kW (32 A x 230 V x 3). Issue 11: a one-hour booking on a free
charger guaranteed 16.56 kWh (three whole 15-minute slots) because the what-if plan dropped the partial first
and last slots of a window off the 15-minute grid.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
import pytest

from csms.app import CsmsApp
from csms.config import Config, parse_config
from csms.domain.clock import FakeClock
from csms.services.bookings import aligned_grid

from .conftest import client

T0 = datetime(2026, 1, 12, 10, 2, tzinfo=UTC)  # two minutes into a 15-minute slot
CHARGER_KW = 32 * 230 * 3 / 1000  # 22.08
CONFIG = """
server: {{port: 0, heartbeat_interval_s: 60, security_profile: 0}}
database: {{url: "{db_url}"}}
api: {{port: 0}}
smart_charging: {{debounce_s: 0}}                 # clock seconds: the fake clock stands still
sites: [{{id: s1, grid_limit_kw: 100}}]
chargers: [{{id: CP-1, site: s1}}, {{id: CP-2, site: s1}}, {{id: CP-3, site: s1}}, {{id: CP-4, site: s1}}]
id_tokens: [{{value: TAG-A}}, {{value: TAG-B}}, {{value: TAG-C}}, {{value: TAG-D}}]
"""


@contextlib.asynccontextmanager
async def running(cfg: Config, clock: FakeClock) -> AsyncIterator[CsmsApp]:
    app = CsmsApp(cfg, clock=clock)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def test_the_what_if_grid_puts_the_booking_window_on_slot_edges() -> None:
    at = T0.replace(minute=0)
    # From now (10:02) to a booking 10:07-11:07: a 5-minute slot 0, then four 15-minute slots.
    assert aligned_grid(T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=65), 900) == (300, 900, 5)
    # 50 minutes: four slots of 12.5 minutes (never longer than the operator's slot); 31 minutes: three.
    assert aligned_grid(at, at, at + timedelta(minutes=50), 900) == (750, 750, 4)
    first, step, n = aligned_grid(at, at + timedelta(minutes=40), at + timedelta(minutes=71), 900)
    assert (step, n) == (620, 3 + 4) and first == pytest.approx(2400 - 3 * 620)
    with pytest.raises(Exception, match="after start"):
        aligned_grid(at, at, at, 900)


@pytest.mark.parametrize(("start_min", "minutes", "kwh"), [
    (5, 60, CHARGER_KW),            # within the planning horizon, off the 15-minute grid at both ends
    (24 * 60 + 3, 60, CHARGER_KW),  # beyond the horizon: planned from its own start
    (8, 50, CHARGER_KW * 50 / 60),  # 18.40 kWh
    (13, 17, CHARGER_KW * 17 / 60),  # 6.256 kWh: shorter than two slots, in neither's grid
])
async def test_a_booking_on_a_free_charger_guarantees_what_its_window_can_deliver(
        db_url: str, start_min: int, minutes: int, kwh: float) -> None:
    clock = FakeClock(T0)
    async with running(parse_config(CONFIG.format(db_url=db_url), env={}), clock) as app, \
            client(app, None) as c:
        start = T0 + timedelta(minutes=start_min)
        r = await c.post("/api/v1/bookings", json={
            "station_id": "CP-1", "evse_id": 1, "id_token": "TAG-A", "start": start.isoformat(),
            "end": (start + timedelta(minutes=minutes)).isoformat(), "energy_kwh": 40, "accept_partial": True})
        assert r.status_code == 201, r.text
        assert r.json()["guaranteed_energy_kwh"] == pytest.approx(kwh, abs=0.002)  # was 16.56 for an hour
        # Asking for exactly that is not refused.
        r = await c.post("/api/v1/bookings", json={
            "station_id": "CP-2", "evse_id": 1, "id_token": "TAG-B", "start": start.isoformat(),
            "end": (start + timedelta(minutes=minutes)).isoformat(), "energy_kwh": round(kwh, 3)})
        assert r.status_code == 201, r.text
