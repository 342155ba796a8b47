"""One site limit for every user, through the whole CSMS (CsmsApp, REST API over HTTP) on a fake clock: a
limit-schedule window in force now and an operator's override change the API headroom, the plan and
billing's utilisation (demand tiers) alike; bookings are admitted against the same limits, circuits
included."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from csms.app import CsmsApp
from csms.config import Config, parse_config
from csms.domain.clock import FakeClock
from csms.domain.enums import ChargingState, Measurand, TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import MeterSample, SampledValue, TxEvent

from .conftest import client, eventually

T0 = datetime(2026, 1, 12, 17, 0, tzinfo=UTC)  # Monday 18:00 in Berlin: the 18:00-21:00 window is in force
E1 = EvseRef(1)
CONFIG = """
server: {{port: 0, heartbeat_interval_s: 60, security_profile: 0}}
database: {{url: "{db_url}"}}
api: {{port: 0}}
smart_charging: {{debounce_s: 0}}                 # clock seconds: the fake clock stands still
sites:
  - id: s1
    grid_limit_kw: 50
    grid_limit_a: 100                  # 100 A x 230 V x 3 = 69 kW: not the lowest here
    timezone: Europe/Berlin
    limit_schedule: [{{start: 18:00, end: 21:00, limit_kw: 24}}]
    circuits: [{{name: row-a, max_current_a: 16, chargers: [CP-1, CP-2]}}]    # 16 A x 690 W = 11.04 kW
  - id: s2
    grid_limit_kw: 100
    limit_schedule: [{{start: "00:00", end: "00:00", limit_kw: 11.04}}]        # all day
chargers:
  - {{id: CP-1, site: s1}}
  - {{id: CP-2, site: s1}}
  - {{id: CP-3, site: s1}}
  - {{id: N-1, site: s2}}
  - {{id: N-2, site: s2}}
id_tokens: [{{value: TAG-A}}, {{value: TAG-B}}, {{value: TAG-C}}]
billing:
  tariff:
    energy_price_per_kwh: "0.30"
    demand_tiers:
      - {{name: medium, from_utilisation: 0.5, multiplier: 1.2}}
      - {{name: high, from_utilisation: 0.8, multiplier: 1.5}}
"""


def config(db_url: str) -> Config:
    return parse_config(CONFIG.format(db_url=db_url), env={})


@contextlib.asynccontextmanager
async def running(cfg: Config, clock: FakeClock) -> AsyncIterator[CsmsApp]:
    app = CsmsApp(cfg, clock=clock)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def site(c: httpx.AsyncClient, site_id: str = "s1") -> dict[str, Any]:
    r = await c.get(f"/api/v1/sites/{site_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def planned_limit_w(c: httpx.AsyncClient) -> float | None:
    plan = (await c.get("/api/v1/sites/s1/plan")).json()
    return plan["forecast"][0]["limit_w"] if plan.get("planned") else None


async def test_schedule_and_override_change_headroom_plan_and_utilisation_alike(db_url: str) -> None:
    clock = FakeClock(T0)
    async with running(config(db_url), clock) as app, client(app, None) as c:

        async def event(kind: TxEventKind, minutes: int, seq: int, w: float | None = None,
                        reason: str | None = None) -> None:
            at = clock.t = T0 + timedelta(minutes=minutes)
            samples = () if w is None else (MeterSample(at, (
                SampledValue(Measurand.ENERGY_IMPORT_WH, 12_000.0 * minutes / 60),
                SampledValue(Measurand.POWER_IMPORT_W, w))),)
            await app.charging.transaction(TxEvent(
                kind, StationId("CP-3"), at, "t1", E1, "TAG-C" if kind is TxEventKind.STARTED else None,
                seq_no=seq, charging_state=ChargingState.CHARGING if w else None, stop_reason=reason,
                samples=samples))
            await app.billing.drain()

        # The evening window (24 kW) is in force now: the API's limit is the window's, not grid_limit_kw.
        view = await site(c)
        assert (view["limit_w"], view["headroom_w"], view["binding_limit"]) == (24_000, 24_000, "limit_schedule")
        assert view["limit_a"] == 100 and view["circuits"][0]["limit_w"] == 11_040

        await event(TxEventKind.STARTED, 0, 0, w=12_000)  # 12 kW: half the window's 24 kW
        view = await site(c)
        assert (view["load_w"], view["headroom_w"]) == (12_000, 12_000)
        # ... and the plan works with the same limit.
        await eventually(lambda: planned_limit_w(c), what="a plan")
        assert await planned_limit_w(c) == view["limit_w"]

        for seq, m in enumerate(range(5, 31, 5), start=1):
            await event(TxEventKind.UPDATED, m, seq, w=12_000)
        # The operator caps the site at 12 kW (REST; MQTT limit/set takes the same path).
        r = await c.put("/api/v1/sites/s1/limit", json={"limit_kw": 12})
        assert r.status_code == 200, r.text
        view = await site(c)
        assert (view["limit_w"], view["headroom_w"], view["binding_limit"]) == (12_000, 0, "external")
        assert view["external_limit_kw"] == 12
        assert await planned_limit_w(c) == 12_000

        for seq, m in enumerate(range(35, 61, 5), start=7):
            await event(TxEventKind.UPDATED, m, seq, w=12_000)
        await event(TxEventKind.ENDED, 60, 99, reason="EVDisconnected")
        [inv] = (await c.get("/api/v1/invoices")).json()["items"]
    # Billing measured utilisation against the same limits: 12 of 24 kW (medium) in the first half hour,
    # 12 of 12 kW (high) after the override. Against grid_limit_kw alone (50 kW) it would be 24 %: base.
    lines = [(ln["quantity"], ln["unit_price"], ln["amount"]) for ln in inv["lines"] if ln["kind"] == "energy"]
    assert lines == [("6.000", "0.360", "2.16"), ("6.000", "0.450", "2.70")]


async def test_bookings_are_admitted_against_the_same_limits_circuits_included(db_url: str) -> None:
    clock = FakeClock(T0)
    async with running(config(db_url), clock) as app, client(app, None) as c:
        start, end = (T0 + timedelta(hours=2)).isoformat(), (T0 + timedelta(hours=3)).isoformat()

        async def book(station: str, tag: str, **kw: Any) -> httpx.Response:
            return await c.post("/api/v1/bookings", json={"station_id": station, "evse_id": 1, "id_token": tag,
                                                          "start": start, "end": end, "energy_kwh": 11, **kw})

        # Circuit row-a (16 A, 11.04 kW) carries CP-1 and CP-2; the site has 24 kW then.
        r = await book("CP-1", "TAG-A")
        assert r.status_code == 201 and r.json()["guaranteed_energy_kwh"] == 11, r.text
        r = await book("CP-2", "TAG-B")  # behind the circuit CP-1's booking fills
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict", r.text
        r = await book("CP-2", "TAG-B", accept_partial=True)  # a guarantee of 0 kWh is refused, not booked
        assert r.status_code == 409 and "guarantee 0.0 kWh" in r.json()["error"]["message"], r.text
        r = await book("CP-3", "TAG-C")  # not behind the circuit: the site still has room
        assert r.status_code == 201 and r.json()["guaranteed_energy_kwh"] == 11, r.text

        # Site s2: its all-day (00:00-00:00) window of 11.04 kW is the limit, not grid_limit_kw (100 kW).
        assert (await site(c, "s2"))["limit_w"] == 11_040
        r = await book("N-1", "TAG-A")
        assert r.status_code == 201 and r.json()["guaranteed_energy_kwh"] == 11, r.text
        r = await book("N-2", "TAG-B")
        assert r.status_code == 409, r.text


async def test_load_history_serves_the_metered_buckets_with_the_limit_in_force_then(db_url: str) -> None:
    """A chart opened now gets the hours before it from the server: the site-load meter's 5-minute buckets
    (mean power and the limit then), oldest first, as a page; and the circuits say which chargers they carry."""
    clock = FakeClock(T0)
    async with running(config(db_url), clock) as app, client(app, None) as c:
        async def event(kind: TxEventKind, minutes: int, seq: int, w: float | None = None) -> None:
            at = clock.t = T0 + timedelta(minutes=minutes)
            samples = () if w is None else (MeterSample(at, (
                SampledValue(Measurand.ENERGY_IMPORT_WH, 12_000.0 * minutes / 60),
                SampledValue(Measurand.POWER_IMPORT_W, w))),)
            await app.charging.transaction(TxEvent(
                kind, StationId("CP-3"), at, "t1", E1, "TAG-C" if kind is TxEventKind.STARTED else None,
                seq_no=seq, charging_state=ChargingState.CHARGING if w else None,
                stop_reason="EVDisconnected" if kind is TxEventKind.ENDED else None, samples=samples))
            await app.billing.drain()

        assert (await c.get("/api/v1/sites/s1/load-history")).json() == {
            "items": [], "offset": 0, "limit": 500, "next_offset": None}
        await event(TxEventKind.STARTED, 0, 0, w=12_000)
        for seq, m in enumerate(range(5, 31, 5), start=1):
            await event(TxEventKind.UPDATED, m, seq, w=6_000 if m > 15 else 12_000)
        r = await c.put("/api/v1/sites/s1/limit", json={"limit_kw": 12})
        assert r.status_code == 200, r.text
        for seq, m in enumerate(range(35, 61, 5), start=7):
            await event(TxEventKind.UPDATED, m, seq, w=6_000)

        page = (await c.get("/api/v1/sites/s1/load-history")).json()   # default: the 6 hours before now
        items = page["items"]
        assert page["next_offset"] is None and len(items) == 12, items
        starts = [datetime.fromisoformat(i["start"]) for i in items]
        assert starts == [T0 + timedelta(minutes=5 * k) for k in range(12)]        # oldest first, no gaps
        assert [i["load_w"] for i in items] == [12_000] * 4 + [6_000] * 8          # the mean of each bucket
        assert [i["limit_w"] for i in items[:6]] == [24_000] * 6                    # the evening window
        assert items[-1]["limit_w"] == 12_000                                       # the operator's cap

        # paged like every list, and a window narrows it
        p1 = (await c.get("/api/v1/sites/s1/load-history", params={"limit": 5})).json()
        assert len(p1["items"]) == 5 and p1["next_offset"] == 5
        p3 = (await c.get("/api/v1/sites/s1/load-history", params={"limit": 5, "offset": 10})).json()
        assert [i["start"] for i in p3["items"]] == [i["start"] for i in items[10:]] and p3["next_offset"] is None
        window = {"since": (T0 + timedelta(minutes=10)).isoformat().replace("+00:00", "Z"),
                  "until": (T0 + timedelta(minutes=20)).isoformat().replace("+00:00", "Z")}
        got = (await c.get("/api/v1/sites/s1/load-history", params=window)).json()["items"]
        assert [i["start"] for i in got] == [i["start"] for i in items[2:4]]
        # another site has its own (none); mistakes are named
        assert (await c.get("/api/v1/sites/s2/load-history")).json()["items"] == []
        r = await c.get("/api/v1/sites/s1/load-history", params={"since": window["until"], "until": window["since"]})
        assert r.status_code == 400 and "since" in r.json()["error"]["message"]
        assert (await c.get("/api/v1/sites/nope/load-history")).status_code == 404

        [row_a] = (await site(c))["circuits"]
        assert row_a["name"] == "row-a" and row_a["stations"] == ["CP-1", "CP-2"]
