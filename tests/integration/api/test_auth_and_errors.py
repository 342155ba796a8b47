"""API keys and roles, and the one error shape: JSON with a readable message, and a 4xx (never a 500) for
anything the caller got wrong. Real HTTP against the whole CSMS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.app import CsmsApp
from csms.domain.enums import ChargingState, TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import TxEvent

from .conftest import ADMIN_KEY, DRIVER_KEY, OPERATOR_KEY, VIEWER_KEY, api_config, client, error_of, running


async def _session(app: CsmsApp, station: str, tx_id: str, token: str, at: datetime) -> None:
    await app.charging.transaction(TxEvent(TxEventKind.STARTED, StationId(station), at, tx_id, EvseRef(1),
                                           id_token=token, seq_no=0, charging_state=ChargingState.CHARGING))


async def test_no_key_or_a_wrong_key_is_401_when_keys_are_configured(app: CsmsApp) -> None:
    for key in (None, "not-a-key-0123456789"):
        async with client(app, key) as c:
            for path in ("/api/v1/stations", "/api/v1/sessions", "/api/v1/bookings", "/api/v1/sites/s1"):
                r = await c.get(path)
                assert r.status_code == 401, (path, r.text)
                assert error_of(r)["code"] == "unauthorized"
                assert "API key" in error_of(r)["message"]
                assert r.headers.get("www-authenticate") == "Bearer"
    # a Bearer token is as good as X-API-Key; the public endpoints need none
    async with client(app, None, headers={"Authorization": f"Bearer {VIEWER_KEY}"}) as c:
        assert (await c.get("/api/v1/stations")).status_code == 200
        assert (await c.get("/healthz")).status_code == 200


async def test_roles(app: CsmsApp) -> None:
    reset = ("/api/v1/stations/CP-1/commands/reset", {"hard": False})
    raw = ("/api/v1/stations/CP-1/commands/raw", {"action": "GetConfiguration", "payload": {}})
    async with client(app, VIEWER_KEY) as viewer, client(app, OPERATOR_KEY) as op, client(app, ADMIN_KEY) as admin:
        assert (await viewer.get("/api/v1/stations")).status_code == 200
        assert (await viewer.get("/api/v1/sites/s1/plan")).status_code == 200
        r = await viewer.post(reset[0], json=reset[1])
        assert r.status_code == 403 and error_of(r)["code"] == "forbidden"
        assert "operator" in error_of(r)["message"] and "viewer" in error_of(r)["message"]
        r = await viewer.put("/api/v1/sites/s1/limit", json={"limit_kw": 10})
        assert r.status_code == 403
        # operators command chargers (this one is offline: answered at once, not a hang)
        r = await op.post(reset[0], json=reset[1])
        assert r.status_code == 200 and r.json()["status"] == "Offline"
        # raw OCPP and management are admin-only
        for method, path, body in [("POST", *raw), ("POST", "/api/v1/stations", {"id": "CP-9", "site_id": "s1"}),
                                   ("PATCH", "/api/v1/stations/CP-1", {"max_current_a": 16}),
                                   ("DELETE", "/api/v1/stations/CP-2", None),
                                   ("PUT", "/api/v1/id-tokens/T9", {"value": "T9"}),
                                   ("PUT", "/api/v1/groups/g9", {"name": "g9"}),
                                   ("POST", "/api/v1/stations/CP-1/commands/change-configuration",
                                    {"key": "HeartbeatInterval", "value": "30"})]:
            r = await op.request(method, path, json=body)
            assert r.status_code == 403, (path, r.text)
            assert "admin" in error_of(r)["message"]
        r = await admin.post(*raw[:1], json=raw[1])
        assert r.status_code == 200 and r.json()["status"] == "Offline"
        r = await admin.post("/api/v1/stations", json={"id": "CP-9", "site_id": "s1"})
        assert r.status_code == 201


async def test_driver_sees_only_its_own_sessions_and_bookings(app: CsmsApp) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    await _session(app, "CP-1", "mine", "TAG-D", t0)
    await _session(app, "CP-2", "theirs", "TAG-X", t0 + timedelta(minutes=1))
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    window = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
    async with client(app, DRIVER_KEY) as drv, client(app, ADMIN_KEY) as admin:
        r = await drv.get("/api/v1/sessions")
        assert r.status_code == 200
        assert [s["transaction_id"] for s in r.json()["items"]] == ["mine"]
        assert (await drv.get("/api/v1/sessions/CP-1/mine")).status_code == 200
        r = await drv.get("/api/v1/sessions/CP-2/theirs")
        assert r.status_code == 404 and error_of(r)["code"] == "unknown_session"
        csv_text = (await drv.get("/api/v1/sessions/export.csv")).text
        assert "mine" in csv_text and "theirs" not in csv_text
        r = await drv.put("/api/v1/sessions/CP-2/theirs/needs", json={"energy_kwh": 5})
        assert r.status_code == 404
        # a driver states the needs of its own session (the departure must lie ahead)
        past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        r = await drv.put("/api/v1/sessions/CP-1/mine/needs", json={"departure_time": past})
        assert r.status_code == 400 and "departure_time" in error_of(r)["message"]
        r = await drv.put("/api/v1/sessions/CP-1/mine/needs", json={})
        assert r.status_code == 400 and "energy_kwh" in error_of(r)["message"]
        r = await drv.put("/api/v1/sessions/CP-1/mine/needs", json={"energy_kwh": 5})
        assert r.status_code == 200 and r.json()["status"] == "Accepted"
        # booking with someone else's token is forbidden; with its own it works
        r = await drv.post("/api/v1/bookings", json={"site_id": "s1", "id_token": "TAG-X", **window})
        assert r.status_code == 403 and "TAG-X" in error_of(r)["message"]
        r = await drv.post("/api/v1/bookings", json={"site_id": "s1", "id_token": "TAG-D", **window})
        assert r.status_code == 201, r.text
        mine = r.json()["id"]
        r = await admin.post("/api/v1/bookings", json={"site_id": "s1", "id_token": "TAG-X", **window})
        assert r.status_code == 201, r.text
        theirs = r.json()["id"]
        assert [b["id"] for b in (await drv.get("/api/v1/bookings")).json()["items"]] == [mine]
        assert {b["id"] for b in (await admin.get("/api/v1/bookings")).json()["items"]} == {mine, theirs}
        r = await drv.get(f"/api/v1/bookings/{theirs}")
        assert r.status_code == 404 and error_of(r)["code"] == "unknown_booking"
        assert (await drv.delete(f"/api/v1/bookings/{theirs}")).status_code == 404
        r = await drv.delete(f"/api/v1/bookings/{mine}")
        assert r.status_code == 200 and r.json()["status"] == "Cancelled"
        # drivers see no fleet data and cannot command chargers
        assert (await drv.get("/api/v1/stations")).status_code == 403
        assert (await drv.get("/api/v1/id-tokens")).status_code == 403
        assert (await drv.post("/api/v1/stations/CP-1/commands/reset", json={})).status_code == 403


async def test_open_api_when_no_keys_are_configured(sqlite_url: str) -> None:
    async with running(api_config(sqlite_url, keys=False)) as app, client(app, None) as c:
        assert (await c.get("/api/v1/stations")).status_code == 200
        assert (await c.post("/api/v1/stations", json={"id": "CP-8", "site_id": "s1"})).status_code == 201


D = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()  # within bookings.max_days_ahead

CASES = [
    ("GET", "/api/v1/stations/NOPE", None, 404, "unknown_station", ["unknown station", "NOPE"]),
    ("GET", "/api/v1/stations/NOPE/history", None, 404, "unknown_station", ["NOPE"]),
    ("POST", "/api/v1/stations/NOPE/commands/reset", {}, 404, "unknown_station", ["NOPE"]),
    ("GET", "/api/v1/sites/nope", None, 404, "unknown_site", ["unknown site", "nope"]),
    ("GET", "/api/v1/sites/nope/plan", None, 404, "unknown_site", ["nope"]),
    ("PUT", "/api/v1/sites/nope/limit", {"limit_kw": 5}, 404, "unknown_site", ["nope"]),
    ("GET", "/api/v1/sites/nope/availability?start={D}T00:00:00Z&end={D}T02:00:00Z", None, 404,
     "unknown_site", ["nope"]),
    ("GET", "/api/v1/bookings/12345", None, 404, "unknown_booking", ["12345"]),
    ("GET", "/api/v1/sessions/CP-1/42", None, 404, "unknown_session", ["CP-1/42"]),
    ("DELETE", "/api/v1/id-tokens/NOPE", None, 404, "unknown_id_token", ["NOPE"]),
    ("DELETE", "/api/v1/groups/nope", None, 404, "not_found", ["nope"]),
    # bad bodies: 422 naming the field
    ("POST", "/api/v1/stations", {"id": "CP-7", "max_current_a": -1}, 422, "invalid_request", ["max_current_a"]),
    ("POST", "/api/v1/stations", {"id": "CP-7", "phases": 4}, 422, "invalid_request", ["phases"]),
    ("POST", "/api/v1/stations", {"id": "CP-7", "colour": "red"}, 422, "invalid_request", ["colour"]),
    ("POST", "/api/v1/stations", {"id": "CP-7", "site_id": "nope"}, 400, "invalid_request", ["site_id", "nope"]),
    ("PATCH", "/api/v1/stations/CP-1", {"site_id": "nope"}, 400, "invalid_request", ["site_id"]),
    ("PATCH", "/api/v1/stations/CP-1", {"registration": "Maybe"}, 422, "invalid_request", ["registration"]),
    ("PUT", "/api/v1/sites/s1/limit", {"limit_kw": -3}, 422, "invalid_request", ["limit_kw"]),
    ("PUT", "/api/v1/sites/s1/limit", {}, 422, "invalid_request", ["limit_kw"]),
    ("PUT", "/api/v1/id-tokens/T1", {"value": "T2"}, 400, "invalid_request", ["value"]),
    ("PUT", "/api/v1/id-tokens/T1", {"value": "T1", "group": "nope"}, 400, "invalid_request", ["group"]),
    ("PUT", "/api/v1/id-tokens/T1", {"value": "T1", "expires_at": "{D}T00:00:00"}, 422, "invalid_request",
     ["expires_at", "UTC offset"]),
    ("POST", "/api/v1/stations/CP-1/commands/remote-start", {"evse_id": 1}, 422, "invalid_request", ["id_token"]),
    ("POST", "/api/v1/stations/CP-1/commands/unlock", {"evse_id": 0}, 422, "invalid_request", ["evse_id"]),
    ("POST", "/api/v1/stations/CP-1/commands/trigger", {"message": "Coffee"}, 422, "invalid_request", ["message"]),
    ("POST", "/api/v1/stations/CP-1/commands/raw", {"action": "Get Configuration"}, 422, "invalid_request",
     ["action"]),
    ("POST", "/api/v1/bookings", {"site_id": "s1", "id_token": "TAG-D", "start": "{D}T10:00:00",
                                  "end": "{D}T11:00:00Z"}, 422, "invalid_request", ["start", "UTC offset"]),
    ("POST", "/api/v1/bookings", {"id_token": "TAG-D", "start": "{D}T10:00:00Z",
                                  "end": "{D}T11:00:00Z"}, 422, "invalid_request", ["site_id"]),
    ("POST", "/api/v1/bookings", {"site_id": "s1", "id_token": "TAG-D", "start": "tomorrow",
                                  "end": "{D}T11:00:00Z"}, 422, "invalid_request", ["start"]),
    ("POST", "/api/v1/bookings", {"site_id": "s1", "id_token": "TAG-D", "start": "{D}T11:00:00Z",
                                  "end": "{D}T10:00:00Z"}, 400, "invalid_request", ["end", "after start"]),
    ("POST", "/api/v1/bookings", {"site_id": "s1", "id_token": "TAG-D", "start": "2020-01-01T10:00:00Z",
                                  "end": "{D}T11:00:00Z"}, 400, "invalid_request", ["start", "past"]),
    ("POST", "/api/v1/bookings", {"site_id": "s1", "id_token": "NOBODY", "start": "{D}T10:00:00Z",
                                  "end": "{D}T11:00:00Z"}, 400, "invalid_request", ["id_token", "NOBODY"]),
    ("POST", "/api/v1/bookings", {"site_id": "s1", "id_token": "TAG-D", "start": "{D}T10:00:00Z",
                                  "end": "{D}T10:05:00Z"}, 400, "invalid_request", ["at least 15 minutes"]),
    ("POST", "/api/v1/bookings", {"site_id": "s1", "id_token": "TAG-D", "energy_kwh": 0, "start": "{D}T10:00:00Z",
                                  "end": "{D}T11:00:00Z"}, 422, "invalid_request", ["energy_kwh"]),
    ("POST", "/api/v1/bookings", {"site_id": "s1", "id_token": "TAG-D", "evse_id": 1, "start": "{D}T10:00:00Z",
                                  "end": "{D}T11:00:00Z"}, 422, "invalid_request", ["evse_id", "station_id"]),
    ("POST", "/api/v1/bookings", {"station_id": "CP-1", "evse_id": 7, "id_token": "TAG-D",
                                  "start": "{D}T10:00:00Z", "end": "{D}T11:00:00Z"}, 400, "invalid_request",
     ["EVSE"]),
    ("POST", "/api/v1/bookings", {"site_id": "nope", "id_token": "TAG-D", "start": "{D}T10:00:00Z",
                                  "end": "{D}T11:00:00Z"}, 404, "unknown_site", ["nope"]),
    ("POST", "/api/v1/bookings", {"station_id": "CP-3", "site_id": "s1", "id_token": "TAG-D",
                                  "start": "{D}T10:00:00Z", "end": "{D}T11:00:00Z"}, 400,
     "invalid_request", ["CP-3", "s1"]),
    # bad query types and ranges
    ("GET", "/api/v1/sessions?limit=abc", None, 422, "invalid_request", ["limit"]),
    ("GET", "/api/v1/sessions?limit=0", None, 422, "invalid_request", ["limit"]),
    ("GET", "/api/v1/sessions?offset=-1", None, 422, "invalid_request", ["offset"]),
    ("GET", "/api/v1/sessions?active=perhaps", None, 422, "invalid_request", ["active"]),
    ("GET", "/api/v1/sessions?since=yesterday", None, 422, "invalid_request", ["since"]),
    ("GET", "/api/v1/sessions?since={D}T00:00:00", None, 422, "invalid_request", ["since", "UTC offset"]),
    ("GET", "/api/v1/sessions?since={D2}T00:00:00Z&until={D}T00:00:00Z", None, 400,
     "invalid_request", ["since", "until"]),
    ("GET", "/api/v1/sessions/export.csv?until={D}T00:00:00", None, 422, "invalid_request", ["until"]),
    ("GET", "/api/v1/stations/CP-1/history?limit=0", None, 422, "invalid_request", ["limit"]),
    ("GET", "/api/v1/bookings/abc", None, 422, "invalid_request", ["booking_id"]),
    ("GET", "/api/v1/bookings?status=Sleeping", None, 422, "invalid_request", ["status"]),
    ("GET", "/api/v1/sites/s1/availability?start={D}T00:00:00&end={D}T02:00:00Z", None, 422,
     "invalid_request", ["start", "UTC offset"]),
    ("GET", "/api/v1/sites/s1/availability?start={D}T02:00:00Z&end={D}T00:00:00Z", None, 400,
     "invalid_request", ["end", "after start"]),
    ("GET", "/api/v1/sites/s1/availability", None, 422, "invalid_request", ["start", "end"]),
    ("GET", "/api/v1/no-such-thing", None, 404, "not_found", []),
    ("DELETE", "/api/v1/sites/s1", None, 405, "method_not_allowed", []),
]


def _dated(x: object) -> object:
    d2 = (datetime.fromisoformat(D) + timedelta(days=1)).date().isoformat()
    if isinstance(x, str):
        return x.replace("{D}", D).replace("{D2}", d2)
    if isinstance(x, dict):
        return {k: _dated(v) for k, v in x.items()}
    return x


async def test_errors_are_json_4xx_with_readable_messages(app: CsmsApp) -> None:
    """One app for the whole table (a table row per mistake); every row is checked, failures listed together."""
    failures = []
    async with client(app, ADMIN_KEY) as c:
        for method, path, body, status, code, words in CASES:
            r = await c.request(method, _dated(path), json=_dated(body))  # type: ignore[arg-type]
            try:
                assert r.status_code == status, f"status {r.status_code}"
                err = error_of(r)
                assert err["code"] == code, f"code {err['code']}"
                for w in words:
                    assert w in err["message"], f"{w!r} not in message"
            except AssertionError as e:
                failures.append(f"{method} {path}: {e}: {r.text[:300]}")
    assert not failures, "\n".join(failures)


async def test_malformed_json_body_is_422_not_500(app: CsmsApp) -> None:
    async with client(app, ADMIN_KEY) as c:
        r = await c.post("/api/v1/bookings", content=b'{"site_id": ', headers={"content-type": "application/json"})
        assert r.status_code == 422 and "JSON" in error_of(r)["message"]
        r = await c.post("/api/v1/bookings", content=b"[1, 2]", headers={"content-type": "application/json"})
        assert r.status_code == 422
        error_of(r)
