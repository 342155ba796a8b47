"""Bookings end to end: availability, booking (site-level and a specific EVSE), overlap, grid-aware admission,
ReserveNow at lead time reaching simulator chargers of both versions, the reserved connector refusing other
tokens and accepting the booked one (Active -> Completed), cancellation (CancelReservation), and no-show
expiry freeing the connector (on a fake CSMS clock, moved past the grace by the test)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from csms.app import CsmsApp
from csms.config import Config
from csms.domain.clock import FakeClock
from simulator.station import TransitionError

from .conftest import charger, ev, eventually, make_config, running

KEY = "e2e-booking-key-0123456789"
DRIVER = "e2e-driver-key-0123456789"
SETUP = f"""
api: {{enabled: true, port: 0, keys: {{ops: {{key: {KEY}, role: operator}},
                                      dana: {{key: {DRIVER}, role: driver, id_tokens: [TAG-BOOK]}}}}}}
# A booking starting within 30 minutes is reserved at once; a no-show expires 15 minutes after its start.
bookings: {{reserve_lead_min: 30, no_show_grace_min: 15, check_interval_s: 30}}
smart_charging: {{debounce_s: 0}}   # clock seconds: a fake clock stands still until the test moves it
sites:
  - {{id: s1, grid_limit_kw: 100}}
  - {{id: small, grid_limit_kw: 11}}
chargers:
  - {{id: CP-B, site: s1}}
  - {{id: CP-C, site: s1}}
  - {{id: CP-D, site: s1}}
  - {{id: SM-1, site: small}}
  - {{id: SM-2, site: small}}
id_tokens: [{{value: TAG-BOOK}}, {{value: TAG-OTHER}}, {{value: TAG-NOSHOW}}, {{value: TAG-CANCEL}}]
"""


def api(app: CsmsApp, key: str = KEY) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}/api/v1", headers={"X-API-Key": key},
                             timeout=10)


def iso(t: datetime) -> str:
    return t.isoformat()


async def status_of(c: httpx.AsyncClient, booking_id: int) -> str:
    return (await c.get(f"/bookings/{booking_id}")).json()["status"]  # type: ignore[no-any-return]


async def connector(c: httpx.AsyncClient, station: str) -> str | None:
    conns = (await c.get(f"/stations/{station}")).json()["connectors"]
    return next((x["status"] for x in conns if x["evse_id"] == 1), None)


def reservation_ids(cp: Any, action: str) -> list[int]:
    return [m.payload.get("reservationId", m.payload.get("id")) for m in cp.recorder.received(action)]


@contextlib.asynccontextmanager
async def on_fake_clock(cfg: Config) -> AsyncIterator[CsmsApp]:
    """The CSMS on a fake clock standing at the real now (the chargers' clocks agree) until the test moves it."""
    app = CsmsApp(cfg, clock=FakeClock(datetime.now(UTC)))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.mark.parametrize("protocol", ["1.6", "2.0.1"])
async def test_booking_lifecycle(db_url: str, protocol: str) -> None:
    async with on_fake_clock(make_config(db_url, SETUP, api=True)) as app, api(app) as c, \
            api(app, DRIVER) as drv:
        # No NotifyEVChargingNeeds (2.0.1): what the EV states would take precedence over the booking's needs.
        cps = {i: charger(app, i, protocol, send_charging_needs=False) for i in ("CP-B", "CP-C", "CP-D")}
        for cp in cps.values():
            await cp.connect(timeout=10)
        try:
            await _lifecycle(app, c, drv, cps["CP-B"])
            await _cancel(c, cps["CP-C"])
            await _no_show(app, c, cps["CP-D"])
        finally:
            for cp in cps.values():
                await cp.close()


async def _lifecycle(app: CsmsApp, c: httpx.AsyncClient, drv: httpx.AsyncClient, cp: Any) -> None:
    now = datetime.now(UTC)
    start, end = now + timedelta(minutes=5), now + timedelta(minutes=65)

    page = (await c.get("/sites/s1/availability", params={"start": iso(start), "end": iso(end)})).json()
    assert page["next_offset"] is None and page["offset"] == 0  # a page, like every list
    avail = page["items"]
    assert {(a["station_id"], a["evse_id"]) for a in avail} == {("CP-B", 1), ("CP-C", 1), ("CP-D", 1)}
    assert all(len(a["free"]) == 1 for a in avail)
    # pages of one EVSE each cover the same EVSEs
    first = (await c.get("/sites/s1/availability", params={"start": iso(start), "end": iso(end), "limit": 1})).json()
    assert len(first["items"]) == 1 and first["next_offset"] == 1

    # The driver books a specific EVSE with its own token; it is inside the lead time: reserved at once.
    r = await drv.post("/bookings", json={"station_id": "CP-B", "evse_id": 1, "id_token": "TAG-BOOK",
                                          "start": iso(start), "end": iso(end), "energy_kwh": 10})
    assert r.status_code == 201, r.text
    b = r.json()
    assert (b["station_id"], b["evse_id"], b["site_id"], b["status"]) == ("CP-B", 1, "s1", "Reserved")
    assert b["energy_kwh"] == b["guaranteed_energy_kwh"] == 10
    await eventually(lambda: b["id"] in reservation_ids(cp, "ReserveNow"), what="ReserveNow at the charger")
    [reserve] = cp.recorder.received("ReserveNow")
    assert "TAG-BOOK" in str(reserve.payload)
    await eventually(lambda: _connector_is(c, "CP-B", "Reserved"), what="connector Reserved in the CSMS")

    # The booked window is gone from availability; the same EVSE cannot be booked twice.
    avail = (await c.get("/sites/s1/availability", params={"start": iso(start), "end": iso(end)})).json()["items"]
    assert [a["free"] for a in avail if a["station_id"] == "CP-B"] == [[]]
    r = await c.post("/bookings", json={"station_id": "CP-B", "evse_id": 1, "id_token": "TAG-OTHER",
                                        "start": iso(start + timedelta(minutes=30)),
                                        "end": iso(end + timedelta(minutes=30))})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert "already booked" in r.json()["error"]["message"]

    # While reserved, the charger refuses another token...
    await cp.plug_in(ev(cp.clock), "TAG-OTHER")
    with pytest.raises(TransitionError, match="reserved"):
        await cp.start_charging()
    await cp.unplug()
    async with app.store.session() as s:
        assert [t for t in await s.transactions(station_id="CP-B") if t.id_token == "TAG-OTHER"] == []
    assert await status_of(c, b["id"]) == "Reserved"

    # ...and accepts the booked one: the booking becomes Active, then Completed when the session ends.
    await cp.plug_in(ev(cp.clock), "TAG-BOOK")
    await cp.start_charging()

    async def active() -> dict[str, Any] | None:
        got = (await c.get(f"/bookings/{b['id']}")).json()
        return got if got["status"] == "Active" else None
    got = await eventually(active, what="booking Active")
    assert got["transaction_key"] and got["transaction_key"].startswith("CP-B/")
    # the optimizer plans the session to the booking (its end and energy)
    await eventually(lambda: _planned_to(c, got["transaction_key"], end), what="plan uses the booking")
    r = await c.delete(f"/bookings/{b['id']}")
    assert r.status_code == 409 and "Active" in r.json()["error"]["message"]
    await cp.stop("Local")
    await cp.unplug()
    await eventually(lambda: _status_is(c, b["id"], "Completed"), what="booking Completed")
    await eventually(lambda: _connector_is(c, "CP-B", "Available"), what="connector Available")


async def _cancel(c: httpx.AsyncClient, cp: Any) -> None:
    now = datetime.now(UTC)
    window = {"start": iso(now + timedelta(minutes=10)), "end": iso(now + timedelta(minutes=40))}
    r = await c.post("/bookings", json={"station_id": "CP-B", "id_token": "TAG-OTHER", **window})
    assert r.status_code == 201 and r.json()["evse_id"] == 1
    on_b = r.json()["id"]
    # Site-level: the first EVSE without a booking in the window is assigned (CP-B is booked).
    r = await c.post("/bookings", json={"site_id": "s1", "id_token": "TAG-CANCEL", "energy_kwh": 5, **window})
    assert r.status_code == 201, r.text
    b = r.json()
    assert (b["station_id"], b["evse_id"], b["status"]) == ("CP-C", 1, "Reserved")
    await eventually(lambda: _connector_is(c, "CP-C", "Reserved"), what="CP-C Reserved")
    r = await c.delete(f"/bookings/{b['id']}")
    assert r.status_code == 200 and r.json()["status"] == "Cancelled"
    assert b["id"] in reservation_ids(cp, "CancelReservation")
    await eventually(lambda: _connector_is(c, "CP-C", "Available"), what="CP-C free again")
    r = await c.delete(f"/bookings/{b['id']}")
    assert r.status_code == 409 and "Cancelled" in r.json()["error"]["message"]
    # the connector takes anyone now
    await cp.plug_in(ev(cp.clock), "TAG-OTHER")
    await cp.start_charging()
    await cp.stop("Local")
    await cp.unplug()
    assert (await c.delete(f"/bookings/{on_b}")).json()["status"] == "Cancelled"


async def _no_show(app: CsmsApp, c: httpx.AsyncClient, cp: Any) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    now = clock.now()
    r = await c.post("/bookings", json={"station_id": "CP-D", "id_token": "TAG-NOSHOW", "start": iso(now),
                                        "end": iso(now + timedelta(minutes=30))})
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["status"] == "Reserved" and b["energy_kwh"] is None
    await clock.run_for(minutes=14, seconds=50)  # within the grace: the booking loop leaves it alone
    assert await status_of(c, b["id"]) == "Reserved"
    await clock.run_for(seconds=40)  # past it: the next check (every 30 clock seconds) expires it
    await eventually(lambda: _status_is(c, b["id"], "Expired"), timeout=10, what="no-show expired")
    await eventually(lambda: b["id"] in reservation_ids(cp, "CancelReservation") or not cp.evses[1].reservation,
                     what="reservation gone at the charger")
    await eventually(lambda: _connector_is(c, "CP-D", "Available"), what="CP-D Available again")
    listed = (await c.get("/bookings", params={"status": "Expired"})).json()["items"]
    assert [x["id"] for x in listed] == [b["id"]]


async def _status_is(c: httpx.AsyncClient, booking_id: int, status: str) -> bool:
    return await status_of(c, booking_id) == status


async def _connector_is(c: httpx.AsyncClient, station: str, status: str) -> bool:
    return await connector(c, station) == status


async def _planned_to(c: httpx.AsyncClient, tx_key: str, end: datetime) -> bool:
    plan = (await c.get("/sites/s1/plan")).json()
    for s in plan.get("sessions", []):
        if s["session_key"] == tx_key:
            return bool(s["departure"]) and datetime.fromisoformat(s["departure"]) == end \
                and s["requested_energy_wh"] == 10_000
    return False


async def test_admission_control(sqlite_url: str) -> None:
    """The 11 kW site can deliver 22 kWh in two hours: more is refused with what it can guarantee."""
    day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    window = {"start": iso(day), "end": iso(day + timedelta(hours=2))}
    async with running(make_config(sqlite_url, SETUP, api=True)) as app, api(app) as c:
        r = await c.post("/bookings", json={"site_id": "small", "id_token": "TAG-BOOK", "energy_kwh": 40, **window})
        assert r.status_code == 409, r.text
        msg = r.json()["error"]["message"]
        assert "40.0 kWh" in msg and "guarantee 22.0 kWh" in msg and "accept_partial" in msg
        assert (await c.get("/bookings")).json()["items"] == []

        r = await c.post("/bookings", json={"site_id": "small", "id_token": "TAG-BOOK", "energy_kwh": 40,
                                            "accept_partial": True, **window})
        assert r.status_code == 201, r.text
        b = r.json()
        assert b["energy_kwh"] == 40 and b["guaranteed_energy_kwh"] == pytest.approx(22.0, abs=0.05)
        assert b["status"] == "Confirmed"  # two days ahead: not reserved yet

        # The other charger is free in that window, but the grid is not: the first guarantee stands.
        r = await c.post("/bookings", json={"site_id": "small", "id_token": "TAG-OTHER", "energy_kwh": 5, **window})
        assert r.status_code == 409 and "guarantee 0.0 kWh" in r.json()["error"]["message"]
        # A later window is free again; a booking without energy is only checked for overlap.
        later = {"start": iso(day + timedelta(hours=3)), "end": iso(day + timedelta(hours=4))}
        r = await c.post("/bookings", json={"site_id": "small", "id_token": "TAG-OTHER", "energy_kwh": 5, **later})
        assert r.status_code == 201 and r.json()["guaranteed_energy_kwh"] == 5
        r = await c.post("/bookings", json={"site_id": "small", "id_token": "TAG-OTHER", **window})
        assert r.status_code == 201 and r.json()["station_id"] == "SM-2"
        r = await c.post("/bookings", json={"site_id": "small", "id_token": "TAG-NOSHOW", **window})
        assert r.status_code == 409 and "no connector is free" in r.json()["error"]["message"]
        # ...and a lower site limit shows in what can be guaranteed
        day2 = {"start": iso(day + timedelta(days=1)), "end": iso(day + timedelta(days=1, hours=2))}
        r = await c.put("/sites/small/limit", json={"limit_kw": 5.5})
        assert r.status_code == 200
        r = await c.post("/bookings", json={"site_id": "small", "id_token": "TAG-BOOK", "energy_kwh": 20, **day2})
        assert r.status_code == 409 and "guarantee 11.0 kWh" in r.json()["error"]["message"]


async def test_bookings_see_occupied_connectors_and_refuse_a_zero_guarantee(sqlite_url: str) -> None:
    """Issue 11: a booking on a connector a car occupies was accepted with the full guarantee, availability
    listed it free, and accept_partial booked a guarantee of 0 kWh."""
    async with running(make_config(sqlite_url, SETUP, api=True)) as app, api(app) as c:
        cp = charger(app, "CP-B", "1.6")  # 1.6: the car states no departure
        await cp.connect(timeout=10)
        try:
            await cp.plug_in(ev(cp.clock, need_wh=30_000, hours=6), "TAG-OTHER")
            await cp.start_charging()
            await eventually(lambda: app.bookings is not None and _has_tx(app), what="session running")
            now = datetime.now(UTC)
            start, end = now + timedelta(minutes=5), now + timedelta(minutes=65)
            avail = (await c.get("/sites/s1/availability", params={"start": iso(start), "end": iso(end)})).json()
            free = {a["station_id"]: a["free"] for a in avail["items"]}
            assert free["CP-B"] == [] and len(free["CP-C"]) == 1  # occupied: busy for the stay assumed (8 h)
            r = await c.post("/bookings", json={"station_id": "CP-B", "evse_id": 1, "id_token": "TAG-BOOK",
                                                "start": iso(start), "end": iso(end), "energy_kwh": 5})
            assert r.status_code == 409 and "occupied by a charging session" in r.json()["error"]["message"]
            r = await c.post("/bookings", json={"site_id": "s1", "id_token": "TAG-BOOK", "start": iso(start),
                                                "end": iso(end), "energy_kwh": 5})
            assert r.status_code == 201 and r.json()["station_id"] != "CP-B"
            # A window after the car is expected to have left is bookable on that connector.
            later = {"start": iso(now + timedelta(hours=9)), "end": iso(now + timedelta(hours=10))}
            r = await c.post("/bookings", json={"station_id": "CP-B", "evse_id": 1, "id_token": "TAG-BOOK", **later})
            assert r.status_code == 201, r.text
        finally:
            await cp.close()

        day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
        window = {"start": iso(day), "end": iso(day + timedelta(hours=2))}
        r = await c.post("/bookings", json={"site_id": "small", "id_token": "TAG-BOOK", "energy_kwh": 40,
                                            "accept_partial": True, **window})
        assert r.status_code == 201 and r.json()["guaranteed_energy_kwh"] == pytest.approx(22.0, abs=0.05)
        r = await c.post("/bookings", json={"site_id": "small", "id_token": "TAG-OTHER", "energy_kwh": 5,
                                            "accept_partial": True, **window})
        assert r.status_code == 409 and "guarantee 0.0 kWh" in r.json()["error"]["message"]


def _has_tx(app: CsmsApp) -> Any:
    async def check() -> bool:
        async with app.store.session() as s:
            return bool(await s.active_transactions("CP-B"))
    return check()
