"""Billing end to end: the whole CSMS on ephemeral ports, a simulator charger of each OCPP version, a
session whose EV stays plugged in after it is full; the invoice bills the overstay from the timestamps
the charger sent, exactly once.

The CSMS and the charger share an accelerated clock (1 real second = 1 simulated minute); billing is
configured through the config's `billing:` section, as an operator would.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from csms.app import CsmsApp
from csms.domain.clock import AcceleratedClock
from csms.services.billing import BillingService
from simulator.charger import Charger, ChargerConfig
from simulator.clock import SimClock

from .conftest import ev, eventually, make_config, url_of

SPEEDUP = 60.0
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
BILLING = {"overstay": {"fee_per_minute": "0.10", "grace_min": 5, "warn_before_min": 0}, "tick_s": 30}


@pytest.mark.parametrize("protocol", ["1.6", "2.0.1"])
async def test_overstay_after_full_is_invoiced_once(sqlite_url: str, protocol: str) -> None:
    cfg = make_config(sqlite_url, "sites: [{id: s1, grid_limit_kw: 100}]\nchargers: [{id: CP-1, site: s1}]\n"
                                  "id_tokens: [{value: TAG-OK}]\n"
                                  f"billing: {json.dumps(BILLING)}")
    app = CsmsApp(cfg, clock=AcceleratedClock(START, SPEEDUP))
    await app.start()
    billing = app.billing
    assert isinstance(billing, BillingService)
    try:
        clock = SimClock(start=START, speedup=SPEEDUP)
        cp = Charger(ChargerConfig("CP-1", url=url_of(app), protocol=protocol, meter_interval_s=60), clock)
        await cp.connect(timeout=10)
        await cp.plug_in(ev(clock, need_wh=3_000, hours=8), "TAG-OK")  # ~8 simulated minutes at 22 kW
        await cp.start_charging()
        await eventually(lambda: cp.energy_wh >= 2_900 and cp.power_w < 50, timeout=30, what="EV full")
        await asyncio.sleep(20)  # ~20 simulated minutes plugged in after full
        if protocol == "1.6":
            await cp.stop("Local")  # 1.6: the driver badges out first, then unplugs (Finishing -> Available)
        await cp.unplug()           # 2.0.1: the transaction ends at the unplug (EVDisconnected)
        await cp.flush()

        async def invoices() -> list[dict]:  # type: ignore[type-arg]
            await billing.drain()
            return await billing.list_invoices(limit=None)

        [inv] = await eventually(invoices, timeout=15, what="invoice")
        async with app.store.session() as s:
            track = await s.billing_session(inv["tx_key"])
        await cp.close()
    finally:
        await app.stop()
    assert track is not None and track.charging_finished_at is not None and track.finalised
    assert track.unplugged_at is not None
    expected = int((track.unplugged_at - track.charging_finished_at - timedelta(minutes=5))
                   // timedelta(minutes=1))
    assert expected >= 5  # the EV really overstayed
    assert inv["overstay_minutes"] == expected
    assert inv["overstay_fee"] == f"{expected * 0.10:.2f}"
    assert 2_900 <= float(inv["energy_wh"]) <= 3_100
    assert inv["reason"] == "unplugged" and inv["id_token"] == "TAG-OK"
