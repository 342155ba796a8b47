"""Management (stations, id tokens, groups), the sessions list (pagination, time filters, CSV), /metrics and
the OpenAPI document, over real HTTP against the whole CSMS on a real database."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta, timezone

from prometheus_client.parser import text_string_to_metric_families

from csms.api.metrics import LAG_PROBE_S
from csms.app import CsmsApp
from csms.domain.enums import ChargingState, Measurand, TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import MeterSample, SampledValue, TxEvent
from simulator.charger import Charger, ChargerConfig
from simulator.clock import SimClock

from .conftest import ADMIN_KEY, VIEWER_KEY, api_config, client, error_of, eventually, running


def sim(app: CsmsApp, ident: str, protocol: str) -> Charger:
    url = f"ws://127.0.0.1:{app.ocpp_port}{app.cfg.server.path_prefix}"
    return Charger(ChargerConfig(ident, url=url, protocol=protocol, meter_interval_s=1), SimClock(speedup=1))


async def test_station_crud_and_accepting_a_pending_charger(db_url: str) -> None:
    cfg = api_config(db_url, "").model_copy()
    cfg = cfg.model_copy(update={"server": cfg.server.model_copy(update={"allow_unknown_chargers": True,
                                                                        "heartbeat_interval_s": 1})})
    async with running(cfg) as app, client(app) as c:
        r = await c.post("/api/v1/stations", json={"id": "CP-NEW", "site_id": "s2", "max_current_a": 16,
                                                   "phases": 1, "password": "a-long-password"})
        assert r.status_code == 201, r.text
        st = r.json()
        assert (st["id"], st["site_id"], st["registration"], st["max_current_a"], st["phases"], st["online"]) == (
            "CP-NEW", "s2", "Accepted", 16, 1, False)
        r = await c.post("/api/v1/stations", json={"id": "CP-NEW", "site_id": "s2"})
        assert r.status_code == 409 and "CP-NEW" in error_of(r)["message"]
        assert "CP-NEW" in [s["id"] for s in (await c.get("/api/v1/stations", params={"site_id": "s2"})).json()["items"]]
        assert "CP-NEW" not in [s["id"] for s in (await c.get("/api/v1/stations", params={"site_id": "s1"})).json()["items"]]
        # every list is a page: {items, offset, limit, next_offset}, next_offset null on the last page
        first = (await c.get("/api/v1/stations", params={"limit": 1})).json()
        assert len(first["items"]) == 1 and first["next_offset"] == 1 and first["limit"] == 1
        rest = (await c.get("/api/v1/stations", params={"offset": 1, "limit": 1000})).json()
        assert rest["next_offset"] is None and first["items"][0]["id"] not in [x["id"] for x in rest["items"]]
        for path in ("/api/v1/sites", "/api/v1/groups", "/api/v1/id-tokens", "/api/v1/bookings",
                     "/api/v1/sessions", "/api/v1/invoices"):
            page = (await c.get(path)).json()
            assert set(page) == {"items", "offset", "limit", "next_offset"}, path

        # An unknown charger is registered Pending; the operator accepts it through the API.
        cp = sim(app, "CP-STRANGER", "2.0.1")
        await cp.start()
        try:
            async def pending() -> bool:
                r = await c.get("/api/v1/stations/CP-STRANGER")
                return r.status_code == 200 and r.json()["registration"] == "Pending" and r.json()["online"]
            await eventually(pending, what="stranger registered Pending")
            await eventually(lambda: cp.registration_status == "Pending", what="the charger told Pending")
            r = await c.patch("/api/v1/stations/CP-STRANGER", json={"registration": "Accepted", "site_id": "s1"})
            assert r.status_code == 200 and r.json()["registration"] == "Accepted" and r.json()["site_id"] == "s1"
            await eventually(lambda: cp.registration_status == "Accepted", timeout=10,
                             what="the charger's next boot is Accepted")
            await eventually(lambda: cp.recorder.received("SetChargingProfile"), what="it gets smart charging")
            r = await c.get("/api/v1/stations/CP-STRANGER")
            assert r.json()["protocol"] == "ocpp2.0.1" and r.json()["vendor"]
            assert [(x["evse_id"], x["status"]) for x in r.json()["connectors"]] == [(1, "Available")]
        finally:
            await cp.close()

        r = await c.delete("/api/v1/stations/CP-NEW")
        assert r.status_code == 204 and r.content == b""
        assert (await c.get("/api/v1/stations/CP-NEW")).status_code == 404
        assert (await c.delete("/api/v1/stations/CP-NEW")).status_code == 404


async def test_tokens_and_groups_are_persisted_across_a_restart(db_url: str) -> None:
    cfg = api_config(db_url)
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    async with running(cfg) as app, client(app) as c:
        r = await c.put("/api/v1/groups/vip", json={"name": "vip", "priority": 5})
        assert r.status_code == 200 and r.json() == {"name": "vip", "priority": 5}
        r = await c.put("/api/v1/id-tokens/NEW-1", json={"value": "NEW-1", "group": "vip",
                                                          "expires_at": expires.isoformat()})
        assert r.status_code == 200, r.text
        # the path names the token: the body need not repeat it
        r = await c.put("/api/v1/id-tokens/NEW-2", json={"status": "Blocked"})
        assert r.status_code == 200 and r.json()["value"] == "NEW-2" and r.json()["status"] == "Blocked"
        assert (await c.put("/api/v1/id-tokens/GONE", json={"value": "GONE"})).status_code == 200
        assert (await c.delete("/api/v1/id-tokens/GONE")).status_code == 204
        assert (await c.put("/api/v1/groups/tmp", json={"name": "tmp"})).status_code == 200
        assert (await c.delete("/api/v1/groups/tmp")).status_code == 204
        # a group in use cannot be deleted (its tokens would silently lose their priority)
        r = await c.delete("/api/v1/groups/vip")
        assert r.status_code == 409 and "NEW-1" in error_of(r)["message"]
        assert (await app.charging.authorize("CP-1", "NEW-1")).status.value == "Accepted"
        assert (await app.charging.authorize("CP-1", "NEW-2")).status.value == "Blocked"
    async with running(cfg) as app, client(app, VIEWER_KEY) as c:
        groups = {g["name"]: g["priority"] for g in (await c.get("/api/v1/groups")).json()["items"]}
        assert groups == {"fleet": 2, "vip": 5}
        tokens = {t["value"]: t for t in (await c.get("/api/v1/id-tokens")).json()["items"]}
        assert set(tokens) == {"TAG-D", "TAG-X", "NEW-1", "NEW-2"}
        assert tokens["NEW-1"]["group"] == "vip"
        assert datetime.fromisoformat(tokens["NEW-1"]["expires_at"]) == expires
        assert tokens["NEW-2"]["status"] == "Blocked"
        assert (await app.charging.authorize("CP-1", "NEW-1")).status.value == "Accepted"
        assert (await app.charging.authorize("CP-1", "GONE")).status.value == "Invalid"


async def _session(app: CsmsApp, station: str, tx_id: str, token: str, at: datetime, kwh: float,
                   ended: bool) -> None:
    def ev(kind: TxEventKind, t: datetime, seq: int, wh: float, **kw: object) -> TxEvent:
        samples = (MeterSample(t, (SampledValue(Measurand.ENERGY_IMPORT_WH, wh),
                                   SampledValue(Measurand.POWER_IMPORT_W, 11000.0))),)
        return TxEvent(kind, StationId(station), t, tx_id, EvseRef(1), seq_no=seq, samples=samples,
                       **kw)  # type: ignore[arg-type]

    await app.charging.transaction(ev(TxEventKind.STARTED, at, 0, 0.0, id_token=token,
                                      charging_state=ChargingState.CHARGING))
    if ended:
        await app.charging.transaction(ev(TxEventKind.ENDED, at + timedelta(minutes=30), 1, kwh * 1000,
                                          stop_reason="EVDisconnected"))


async def test_sessions_pagination_time_filters_and_csv(db_url: str) -> None:
    t0 = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    async with running(api_config(db_url)) as app, client(app, VIEWER_KEY) as c:
        for i in range(7):  # one session per hour on CP-1 / CP-3 alternately; the last one still running
            await _session(app, ("CP-1", "CP-3")[i % 2], f"tx-{i}", ("TAG-D", "TAG-X")[i % 2],
                           t0 + timedelta(hours=i), kwh=i + 1.5, ended=i < 6)
        seen: list[str] = []
        offset: int | None = 0
        pages = 0
        while offset is not None:
            r = await c.get("/api/v1/sessions", params={"limit": 3, "offset": offset})
            assert r.status_code == 200
            page = r.json()
            assert page["offset"] == offset and page["limit"] == 3 and len(page["items"]) <= 3
            seen += [s["transaction_id"] for s in page["items"]]
            offset = page["next_offset"]
            pages += 1
        assert pages == 3
        assert seen == [f"tx-{i}" for i in reversed(range(7))]  # newest first, each exactly once

        r = await c.get("/api/v1/sessions", params={"since": (t0 + timedelta(hours=2)).isoformat(),
                                                    "until": (t0 + timedelta(hours=5)).isoformat()})
        assert [s["transaction_id"] for s in r.json()["items"]] == ["tx-4", "tx-3", "tx-2"]
        r = await c.get("/api/v1/sessions", params={"since": (t0 + timedelta(hours=5)).isoformat()})
        assert [s["transaction_id"] for s in r.json()["items"]] == ["tx-6", "tx-5"]
        # an offset other than UTC means the same instant
        local = (t0 + timedelta(hours=5)).astimezone(timezone(timedelta(hours=2)))
        r = await c.get("/api/v1/sessions", params={"since": local.isoformat()})
        assert [s["transaction_id"] for s in r.json()["items"]] == ["tx-6", "tx-5"]
        r = await c.get("/api/v1/sessions", params={"station_id": "CP-3"})
        assert [s["transaction_id"] for s in r.json()["items"]] == ["tx-5", "tx-3", "tx-1"]
        r = await c.get("/api/v1/sessions", params={"active": "true"})
        assert [s["transaction_id"] for s in r.json()["items"]] == ["tx-6"]
        r = await c.get("/api/v1/sessions", params={"active": "false", "limit": 4})
        assert [s["transaction_id"] for s in r.json()["items"]] == ["tx-5", "tx-4", "tx-3", "tx-2"]
        assert r.json()["next_offset"] == 4
        one = (await c.get("/api/v1/sessions/CP-1/tx-2")).json()
        assert one["id_token"] == "TAG-D" and one["energy_wh"] == 3500 and not one["active"]
        assert one["stop_reason"] == "EVDisconnected"
        # its meter samples: a page too, oldest first, one item per sampled value (energy and power twice)
        first = (await c.get("/api/v1/sessions/CP-1/tx-2/samples", params={"limit": 3})).json()
        assert [(x["measurand"], x["value"]) for x in first["items"]][:2] == [
            ("Energy.Active.Import.Register", 0.0), ("Power.Active.Import", 11000.0)]
        assert len(first["items"]) == 3 and first["next_offset"] == 3
        rest = (await c.get("/api/v1/sessions/CP-1/tx-2/samples", params={"offset": 3})).json()
        assert [x["measurand"] for x in rest["items"]] == ["Power.Active.Import"] and rest["next_offset"] is None
        assert first["items"][2]["value"] == 3500.0   # the register at the end

        r = await c.get("/api/v1/sessions/export.csv", params={"until": (t0 + timedelta(hours=6)).isoformat()})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [row["transaction_id"] for row in rows] == [f"tx-{i}" for i in reversed(range(6))]
        for row in rows:
            i = int(row["transaction_id"][3:])
            assert float(row["energy_wh"]) == (i + 1.5) * 1000
            assert datetime.fromisoformat(row["started_at"]) == t0 + timedelta(hours=i)
            assert datetime.fromisoformat(row["ended_at"]) == t0 + timedelta(hours=i, minutes=30)
            assert row["station_id"] == ("CP-1", "CP-3")[i % 2] and row["id_token"] == ("TAG-D", "TAG-X")[i % 2]
            assert row["group"] == ("", "fleet")[i % 2]


async def test_metrics_openapi_and_docs(sqlite_url: str) -> None:
    async with running(api_config(sqlite_url)) as app, client(app, None) as c:
        cps = [sim(app, "CP-1", "1.6"), sim(app, "CP-2", "2.0.1")]
        try:
            for cp in cps:
                await cp.connect(timeout=10)
            await eventually(lambda: app.smart.solve_times_s, what="a plan")

            def sample(text: str, name: str, **labels: str) -> float | None:
                for fam in text_string_to_metric_families(text):
                    for s in fam.samples:
                        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                            return float(s.value)
                return None

            # The loop-lag probe observes every LAG_PROBE_S (0.1 s): on an idle machine the chargers connect and
            # the first plan lands sooner than that, and the scrape below then saw a count of 0.
            await asyncio.sleep(3 * LAG_PROBE_S)
            r = await c.get("/metrics")  # no key needed: scrapers do not carry one
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            assert sample(r.text, "csms_connected_chargers", protocol="ocpp1.6") == 1
            assert sample(r.text, "csms_connected_chargers", protocol="ocpp2.0.1") == 1
            count = sample(r.text, "csms_plan_solve_seconds_count")
            assert count is not None and count >= 1
            assert sample(r.text, "csms_plan_solve_seconds_bucket", le="+Inf") == count
            # Histograms updated as messages are handled: every charger CALL, by action and protocol.
            boots = sample(r.text, "csms_ocpp_message_seconds_count", protocol="ocpp1.6", action="BootNotification")
            assert boots is not None and boots >= 1
            assert sample(r.text, "csms_ocpp_message_seconds_count", protocol="ocpp2.0.1",
                          action="BootNotification") >= 1
            assert sample(r.text, "csms_ocpp_message_seconds_bucket", protocol="ocpp1.6", action="BootNotification",
                          le="+Inf") == boots
            answered = sample(r.text, "csms_ocpp_call_latency_seconds_count", protocol="ocpp1.6",
                              action="GetConfiguration", result="answered")
            assert answered is not None and answered >= 1  # the capabilities query at connect
            assert sample(r.text, "csms_event_loop_lag_seconds_count") >= 1
            assert sample(r.text, "csms_db_commits_total") >= 1
            assert sample(r.text, "csms_db_commit_units_total") >= sample(r.text, "csms_db_commits_total")
            await cps[0].close()
            await eventually(lambda: not app.gateway.is_connected("CP-1"), what="CP-1 gone")
            r = await c.get("/metrics")
            assert sample(r.text, "csms_connected_chargers", protocol="ocpp1.6") == 0
        finally:
            for cp in cps:
                await cp.close()

        r = await c.get("/openapi.json")
        assert r.status_code == 200
        doc = r.json()
        paths = doc["paths"]
        for p in ("/api/v1/stations", "/api/v1/stations/{station_id}", "/api/v1/sessions",
                  "/api/v1/sessions/{station_id}/{transaction_id}/needs", "/api/v1/stations/{station_id}/commands/raw",
                  "/api/v1/sites/{site_id}", "/api/v1/sites/{site_id}/plan", "/api/v1/sites/{site_id}/limit",
                  "/api/v1/sites/{site_id}/availability", "/api/v1/bookings", "/api/v1/bookings/{booking_id}",
                  "/api/v1/id-tokens/{value}", "/api/v1/groups/{name}"):
            assert p in paths, p
        assert "post" in paths["/api/v1/bookings"] and "409" in paths["/api/v1/bookings"]["post"]["responses"]
        schemes = doc["components"]["securitySchemes"]
        assert any(s.get("type") == "apiKey" and s.get("name") == "X-API-Key" for s in schemes.values())
        r = await c.get("/docs")
        assert r.status_code == 200 and "swagger" in r.text.lower()
        r = await c.get("/healthz")
        assert r.json() == {"status": "ok"}
    assert ADMIN_KEY  # keys are configured: /metrics, /docs and /openapi.json stay public


async def test_station_history_and_events_are_pages_newest_first(db_url: str) -> None:
    from csms.domain.enums import ConnectorStatus

    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    statuses = [ConnectorStatus.AVAILABLE, ConnectorStatus.OCCUPIED, ConnectorStatus.AVAILABLE,
                ConnectorStatus.FAULTED, ConnectorStatus.AVAILABLE]
    async with running(api_config(db_url)) as app, client(app, VIEWER_KEY) as c:
        async with app.store.session() as s:
            for k, st in enumerate(statuses):
                await s.record_status("CP-1", EvseRef(1), st, t0 + timedelta(minutes=k), None, None)
            for k in range(3):
                await s.add_station_event("CP-1", "FirmwareStatusNotification", {"status": f"step-{k}"},
                                          t0 + timedelta(minutes=k))
        page = (await c.get("/api/v1/stations/CP-1/history", params={"limit": 2})).json()
        assert set(page) == {"items", "offset", "limit", "next_offset"}
        assert [h["status"] for h in page["items"]] == ["Available", "Faulted"] and page["next_offset"] == 2
        rest = (await c.get("/api/v1/stations/CP-1/history", params={"offset": 2, "limit": 10})).json()
        assert [h["status"] for h in rest["items"]] == ["Available", "Occupied", "Available"]
        assert rest["next_offset"] is None and rest["items"][-1]["at"].startswith("2026-03-02T08:00")
        ev = (await c.get("/api/v1/stations/CP-1/events", params={"limit": 2})).json()
        assert [e["detail"]["status"] for e in ev["items"]] == ["step-2", "step-1"] and ev["next_offset"] == 2
        assert ev["items"][0]["kind"] == "FirmwareStatusNotification"
        r = await c.get("/api/v1/stations/NOPE/events")
        assert r.status_code == 404 and error_of(r)["code"] == "unknown_station"
        assert (await c.get("/api/v1/stations/CP-2/history")).json()["items"] == []
