"""Domain event -> telemetry record mapping (pure)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from csms.domain.enums import ChargingState, ConnectorStatus, RateUnit
from csms.domain.events import (
    ChargingNeedsChanged,
    ExternalLimitChanged,
    MeterSampled,
    StationOnline,
    StationReady,
    StatusChanged,
    TransactionChanged,
)
from csms.domain.ids import EvseRef, StationId, TransactionKey
from csms.domain.model import ChargingNeeds, Transaction
from csms.telemetry import records
from csms.telemetry.records import (
    InvalidLimit,
    TelemetryRecord,
    event_records,
    iso_utc,
    parse_limit_set,
    plan_record,
    session_event_record,
    site_load_record,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1, minutes=30)


def tx(**kw: object) -> Transaction:
    base = {
        "key": TransactionKey("CP01/42"),
        "station_id": StationId("CP01"),
        "charger_tx_id": "42",
        "evse": EvseRef(2, 1),
        "id_token": "SECRET-TAG",
        "started_at": T0,
        "meter_start_wh": 1000.0,
        "energy_wh": 0.0,
        "group": "fleet",
    }
    base.update(kw)
    return Transaction(**base)  # type: ignore[arg-type]


def only(recs: list[TelemetryRecord]) -> TelemetryRecord:
    assert len(recs) == 1, recs
    return recs[0]


def test_iso_utc() -> None:
    assert iso_utc(T0) == "2025-03-01T08:00:00.000Z"
    assert (
        iso_utc(datetime(2025, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=1)))) == "2025-03-01T08:00:00.000Z"
    )
    assert iso_utc(datetime(2025, 3, 1, 8, 0)) == "2025-03-01T08:00:00.000Z"  # naive: taken as UTC


@pytest.mark.parametrize(("online", "word"), [(True, "online"), (False, "offline")])
def test_station_online(online: bool, word: str) -> None:
    r = only(event_records(StationOnline("CP01", online, T0)))
    assert r == TelemetryRecord(
        "station/CP01/status",
        "station.status",
        {"station_id": "CP01", "online": online, "status": word, "at": "2025-03-01T08:00:00.000Z"},
        retain=True,
    )


def test_status_changed_per_evse_and_station_wide() -> None:
    r = only(
        event_records(
            StatusChanged("CP01", EvseRef(2, 1), ConnectorStatus.OCCUPIED, ChargingState.CHARGING, T0)
        )
    )
    assert r.topic == "station/CP01/evse/2/status" and r.retain
    assert r.payload == {
        "station_id": "CP01",
        "evse_id": 2,
        "connector_id": 1,
        "status": "Occupied",
        "charging_state": "Charging",
        "at": "2025-03-01T08:00:00.000Z",
    }
    r0 = only(event_records(StatusChanged("CP01", None, ConnectorStatus.UNAVAILABLE, None, T0)))
    assert r0.topic == "station/CP01/evse/0/status"
    assert (
        r0.payload["evse_id"] == 0
        and r0.payload["connector_id"] is None
        and r0.payload["charging_state"] is None
    )


def test_meter_sampled_outside_a_session_reports_the_register() -> None:
    r = only(event_records(MeterSampled("CP01", EvseRef(1), 7200.0, 123456.0, T0)))
    assert r.topic == "station/CP01/evse/1/meter" and not r.retain
    assert r.payload == {
        "station_id": "CP01",
        "evse_id": 1,
        "tx_key": None,
        "power_w": 7200.0,
        "energy_wh": None,
        "register_wh": 123456.0,
        "soc_pct": None,
        "at": "2025-03-01T08:00:00.000Z",
    }
    assert (
        only(event_records(MeterSampled("CP01", None, None, None, T0))).topic == "station/CP01/evse/0/meter"
    )


def test_transaction_started() -> None:
    recs = event_records(TransactionChanged(tx(), started=True, ended=False, at=T0))
    assert [(r.topic, r.kind) for r in recs] == [
        ("session/CP01%2F42/event", "session.event"),
        ("station/CP01/evse/2/meter", "evse.meter"),
    ]
    ev = recs[0].payload
    assert ev == {
        "event": "started",
        "tx_key": "CP01/42",
        "station_id": "CP01",
        "evse_id": 2,
        "connector_id": 1,
        "charger_tx_id": "42",
        "started_at": "2025-03-01T08:00:00.000Z",
        "meter_start_wh": 1000.0,
        "group": "fleet",
        "at": "2025-03-01T08:00:00.000Z",
    }
    assert not recs[0].retain


def test_transaction_update_publishes_meter_only() -> None:
    t = tx(power_w=11000.0, energy_wh=5500.0, soc_pct=55.0)
    r = only(event_records(TransactionChanged(t, started=False, ended=False, at=T1)))
    assert r.payload == {
        "station_id": "CP01",
        "evse_id": 2,
        "tx_key": "CP01/42",
        "power_w": 11000.0,
        "energy_wh": 5500.0,
        "register_wh": None,
        "soc_pct": 55.0,
        "at": "2025-03-01T09:30:00.000Z",
    }


def test_transaction_ended() -> None:
    t = tx(ended_at=T1, energy_wh=16500.0, power_w=11000.0, soc_pct=80.0, stop_reason="EVDisconnected")
    recs = event_records(TransactionChanged(t, started=False, ended=True, at=T1))
    assert [r.kind for r in recs] == ["evse.meter", "session.event"]
    assert recs[0].payload["power_w"] == 0.0
    assert recs[1].payload == {
        "event": "ended",
        "tx_key": "CP01/42",
        "station_id": "CP01",
        "evse_id": 2,
        "connector_id": 1,
        "charger_tx_id": "42",
        "started_at": "2025-03-01T08:00:00.000Z",
        "ended_at": "2025-03-01T09:30:00.000Z",
        "duration_s": 5400.0,
        "energy_wh": 16500.0,
        "soc_pct": 80.0,
        "stop_reason": "EVDisconnected",
        "at": "2025-03-01T09:30:00.000Z",
    }


def test_transaction_started_and_ended_at_once_gives_both_events_in_order() -> None:
    recs = event_records(TransactionChanged(tx(ended_at=T1), started=True, ended=True, at=T1))
    assert [r.payload.get("event") for r in recs] == ["started", None, "ended"]


def test_id_tokens_are_never_published() -> None:
    recs = event_records(TransactionChanged(tx(ended_at=T1), started=True, ended=True, at=T1))
    assert "SECRET-TAG" not in json.dumps([r.payload for r in recs])


@pytest.mark.parametrize(
    "event",
    [
        StationReady("CP01", T0),
        ChargingNeedsChanged(ChargingNeeds(StationId("CP01"), EvseRef(1), T0, energy_amount_wh=1.0)),
        ExternalLimitChanged("CP01", None, "EMS", 10.0, RateUnit.AMPS, T0),
    ],
)
def test_events_without_telemetry(event: object) -> None:
    assert event_records(event) == []  # type: ignore[arg-type]


def test_site_load() -> None:
    r = site_load_record("depot", 80000.0, 100000.0, T0)
    assert r == TelemetryRecord(
        "site/depot/load",
        "site.load",
        {
            "site_id": "depot",
            "load_w": 80000.0,
            "limit_w": 100000.0,
            "headroom_w": 20000.0,
            "at": "2025-03-01T08:00:00.000Z",
        },
        retain=True,
    )
    assert site_load_record("depot", 120.0, 100.0, T0).payload["headroom_w"] == -20.0
    assert site_load_record("depot", 120.0, None, T0).payload["headroom_w"] is None
    assert site_load_record("depot", math.nan, 100.0, T0).payload["load_w"] is None


def test_plan_record_is_retained_and_json_safe() -> None:
    plan = {
        "slot_s": 900,
        "start": T0,
        "evses": [{"tx_key": "CP01/42", "limits_w": [11000.0, math.inf]}],
        "site_id": "ignored",
        "cost": Decimal("1.50"),
    }
    r = plan_record("depot", plan, T1)
    assert r.topic == "site/depot/plan" and r.retain and r.kind == "site.plan"
    assert r.payload == {
        "slot_s": 900,
        "start": "2025-03-01T08:00:00.000Z",
        "evses": [{"tx_key": "CP01/42", "limits_w": [11000.0, None]}],
        "site_id": "depot",
        "cost": "1.50",
        "at": "2025-03-01T09:30:00.000Z",
    }
    json.dumps(r.payload, allow_nan=False)


def test_session_event_record() -> None:
    r = session_event_record(
        "CP01/42",
        records.OVERSTAY_WARNING,
        {"grace_ends_at": T1, "fee_per_min": Decimal("0.10"), "currency": "EUR"},
        T0,
    )
    assert r.topic == "session/CP01%2F42/event" and not r.retain
    assert r.payload == {
        "event": "overstay_warning",
        "tx_key": "CP01/42",
        "station_id": "CP01",
        "grace_ends_at": "2025-03-01T09:30:00.000Z",
        "fee_per_min": "0.10",
        "currency": "EUR",
        "at": "2025-03-01T08:00:00.000Z",
    }


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("Overstay Warning", {}),
        ("", {}),
        ("overstay_started", {"at": "x"}),
        ("overstay_started", {"event": "x"}),
    ],
)
def test_session_event_record_refuses_bad_input(kind: str, detail: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        session_event_record("CP01/42", kind, detail, T0)


@pytest.mark.parametrize(
    ("payload", "kw"),
    [
        (b'{"limit_kw": 80}', 80.0),
        (b'{"limit_kw": 12.5, "note": "peak"}', 12.5),
        (b"80", 80.0),
        (b" 42.5\n", 42.5),
        (b"0", 0.0),
        (b'{"limit_kw": null}', None),
        (b"null", None),
        (b"", None),
        ("75", 75.0),
    ],
)
def test_parse_limit_set_valid(payload: bytes | str, kw: float | None) -> None:
    assert parse_limit_set(payload) == kw


@pytest.mark.parametrize(
    "payload",
    [
        b"abc",
        b'{"limit": 80}',
        b'{"limit_kw": "80"}',
        b'{"limit_kw": -1}',
        b"-5",
        b"true",
        b"[80]",
        b"NaN",
        b"Infinity",
        b'{"limit_kw": true}',
        b"\xff\xfe",
        b'{"limit_kw": 1e999}',
    ],
)
def test_parse_limit_set_invalid(payload: bytes) -> None:
    with pytest.raises(InvalidLimit):
        parse_limit_set(payload)


def test_overstay_changes_are_session_events() -> None:
    from csms.domain.events import OverstayChanged

    at = datetime(2025, 3, 1, 9, 45, tzinfo=UTC)
    kinds = []
    for phase in ("warning", "started", "ended"):
        [rec] = records.event_records(OverstayChanged("CP01/42", "CP01", 1, phase, 12, "1.20", "EUR", at))
        assert rec.topic == "session/CP01%2F42/event"
        kinds.append(rec.payload["event"])
        assert rec.payload["minutes"] == 12 and rec.payload["fee"] == "1.20" and rec.payload["currency"] == "EUR"
        assert rec.payload["station_id"] == "CP01" and rec.payload["evse_id"] == 1
    assert kinds == ["overstay_warning", "overstay_started", "overstay_ended"]
    assert records.event_records(OverstayChanged("CP01/42", "CP01", 1, "other", 0, "0", "EUR", at)) == []
