"""The billing REST routes over ASGI: invoices (pagination, filters, drivers see their own), CSV export,
tariffs, revenue report, and the sessions API's live cost and overstay view."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from csms.api.app import create_app
from csms.api.metrics import make_router
from csms.api.routes import billing as billing_routes
from csms.domain.enums import ChargingState, TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import TxEvent

from .conftest import ADMIN_KEY, DRIVER_KEY, T0, Core, run_session

ADMIN = {"X-API-Key": ADMIN_KEY}
DRIVER = {"X-API-Key": DRIVER_KEY}


@pytest.fixture
async def api(core: Core) -> AsyncIterator[httpx.AsyncClient]:
    await run_session(core, "CP1", "a", "TAG1", T0, kwh=10, idle_min=40)
    await run_session(core, "CP2", "b", "TAG2", T0 + timedelta(hours=2), kwh=5, idle_min=5)
    await run_session(core, "CP1", "c", "TAG1", T0 + timedelta(days=1), kwh=2, idle_min=0)
    app = create_app(core, extra_routers=(billing_routes.router,))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t/api/v1") as c:
        yield c


async def test_invoice_list_pagination_filters_and_driver_scope(api: httpx.AsyncClient) -> None:
    r = await api.get("/invoices", params={"limit": 2}, headers=ADMIN)
    assert r.status_code == 200
    page = r.json()
    assert [i["tx_key"] for i in page["items"]] == ["CP1/c", "CP2/b"] and page["next_offset"] == 2
    r = await api.get("/invoices", params={"offset": 2, "limit": 2}, headers=ADMIN)
    assert [i["tx_key"] for i in r.json()["items"]] == ["CP1/a"] and r.json()["next_offset"] is None
    r = await api.get("/invoices", params={"since": "2026-03-02T00:00:00Z", "until": "2026-03-03T00:00:00Z"},
                      headers=ADMIN)
    assert {i["tx_key"] for i in r.json()["items"]} == {"CP1/a", "CP2/b"}
    r = await api.get("/invoices", params={"station_id": "CP1"}, headers=ADMIN)
    assert {i["tx_key"] for i in r.json()["items"]} == {"CP1/a", "CP1/c"}
    r = await api.get("/invoices", headers=DRIVER)
    assert [i["tx_key"] for i in r.json()["items"]] == ["CP2/b"]
    r = await api.get("/invoices", params={"since": "2026-03-03T00:00:00Z", "until": "2026-03-02T00:00:00Z"},
                      headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


async def test_single_invoice_and_driver_cannot_see_others(api: httpx.AsyncClient) -> None:
    r = await api.get("/invoices/CP1/a", headers=ADMIN)
    assert r.status_code == 200
    inv = r.json()
    assert inv["overstay_minutes"] == 30 and inv["overstay_fee"] == "2.00" and inv["total"] == "6.55"
    assert [ln["kind"] for ln in inv["lines"]] == ["energy", "session_fee", "overstay"]
    assert (await api.get("/invoices/CP1/a", headers=DRIVER)).status_code == 404
    assert (await api.get("/invoices/CP2/b", headers=DRIVER)).status_code == 200
    assert (await api.get("/invoices/CP9/zz", headers=ADMIN)).status_code == 404
    assert (await api.get("/invoices/CP1/a")).status_code == 401


async def test_csv_export(api: httpx.AsyncClient) -> None:
    r = await api.get("/invoices/export.csv", headers=ADMIN)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [x["tx_key"] for x in rows] == ["CP1/c", "CP2/b", "CP1/a"]
    assert rows[2]["energy_kwh"] == "10.000" and rows[2]["total"] == "6.55" and rows[2]["overstay_minutes"] == "30"
    r = await api.get("/invoices/export.csv", headers=DRIVER)
    assert [x["tx_key"] for x in csv.DictReader(io.StringIO(r.text))] == ["CP2/b"]


async def test_tariffs_and_revenue(api: httpx.AsyncClient) -> None:
    t = (await api.get("/tariffs", headers=DRIVER)).json()
    assert t["currency"] == "EUR" and t["default"]["energy_price_per_kwh"] == "0.30"
    assert t["overstay"]["fee_per_minute"] == "0.10" and t["overstay"]["cap"] == "2.00"
    r = await api.get("/reports/revenue", params={"since": "2026-03-02T00:00:00Z", "until": "2026-03-03T00:00:00Z"},
                      headers=ADMIN)
    rep = r.json()
    assert rep["sessions"] == 2 and rep["energy_kwh"] == "15.000" and rep["currency"] == "EUR"
    assert (await api.get("/reports/revenue", headers=DRIVER)).status_code == 403


async def test_sessions_api_shows_live_cost_and_overstay(core: Core, api: httpx.AsyncClient) -> None:
    at = T0 + timedelta(days=2)
    core.clock.t = at
    await core.charging.transaction(TxEvent(TxEventKind.STARTED, StationId("CP2"), at, "live", EvseRef(1), "TAG2",
                                            seq_no=0, charging_state=ChargingState.SUSPENDED_EV))
    await core.charging.transaction(TxEvent(TxEventKind.UPDATED, StationId("CP2"), at, "live", EvseRef(1),
                                            seq_no=1, charging_state=ChargingState.CHARGING))
    core.clock.t = at + timedelta(minutes=5)
    await core.charging.transaction(TxEvent(TxEventKind.UPDATED, StationId("CP2"), core.clock.t, "live", EvseRef(1),
                                            seq_no=2, charging_state=ChargingState.SUSPENDED_EV))
    await core.billing.drain()
    core.clock.t = at + timedelta(minutes=30)
    s = (await api.get("/sessions/CP2/live", headers=DRIVER)).json()
    assert s["cost_so_far"] == "2.38" and s["currency"] == "EUR"  # (session fee 0.50 + 15 min overstay 1.50) x 1.19
    assert s["overstay"]["phase"] == "overstaying" and s["overstay"]["minutes"] == 15


async def test_billing_status_and_metrics_show_the_gap(core: Core, api: httpx.AsyncClient) -> None:
    at = T0 + timedelta(days=3)
    core.clock.t = at
    await core.charging.transaction(TxEvent(TxEventKind.STARTED, StationId("CP2"), at, "gap", EvseRef(1), "TAG2",
                                            seq_no=0, charging_state=ChargingState.CHARGING))
    core.clock.t = at + timedelta(minutes=30)
    await core.charging.transaction(TxEvent(TxEventKind.ENDED, StationId("CP2"), core.clock.t, "gap", EvseRef(1),
                                            seq_no=1, stop_reason="Local"))  # ended, still plugged in
    await core.billing.reconcile()
    st = (await api.get("/billing/status", headers=ADMIN)).json()
    assert st["uninvoiced_ended"] == 1 and st["overdue"] == 0 and st["open_sessions"] == 1
    assert set(st["repairs"]) == {"untracked_ended", "missing_end", "untracked_active", "missing_unplug"}
    assert (await api.get("/billing/status", headers=DRIVER)).status_code == 403
    app = FastAPI()
    app.include_router(make_router(core))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        text = (await c.get("/metrics")).text
    values = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert values["csms_billing_uninvoiced_ended"] == 1 and values["csms_billing_overdue"] == 0
