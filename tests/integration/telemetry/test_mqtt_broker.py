"""MqttTelemetry against a real broker (CSMS_TEST_MQTT_URL): topics, JSON, retained state, limit/set,
buffering while the broker is unreachable."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from csms.config import MqttConfig
from csms.domain.enums import ChargingState, ConnectorStatus
from csms.domain.events import DomainEvent, MeterSampled, StationOnline, StatusChanged, TransactionChanged
from csms.domain.ids import EvseRef, StationId, TransactionKey
from csms.domain.model import Transaction
from csms.services.bus import EventBus
from csms.telemetry import MqttTelemetry, event_records, site_load_record

pytestmark = pytest.mark.mqtt

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=90)


def cfg(url: str, prefix: str, buffer_messages: int = 10000) -> MqttConfig:
    return MqttConfig(
        enabled=True,
        url=url,
        topic_prefix=prefix,
        client_id=f"csms-test-{uuid.uuid4().hex[:8]}",
        buffer_messages=buffer_messages,
    )


@pytest.fixture
async def started() -> AsyncIterator[Callable[..., Awaitable[MqttTelemetry]]]:
    """Factory: builds, starts and (at teardown) stops MqttTelemetry instances."""
    made: list[MqttTelemetry] = []

    async def make(
        c: MqttConfig, on_limit_set: object = None, connect: bool = True, **kw: object
    ) -> MqttTelemetry:
        t = MqttTelemetry(c, on_limit_set, **kw)  # type: ignore[arg-type]
        made.append(t)
        await t.start()
        if connect:
            assert await t.wait_connected(5.0), "telemetry did not connect to the broker"
        return t

    yield make
    for t in made:
        await t.stop(flush_timeout_s=1.0)


def tx(**kw: object) -> Transaction:
    base = {
        "key": TransactionKey("CP01/42"),
        "station_id": StationId("CP01"),
        "charger_tx_id": "42",
        "evse": EvseRef(1, 1),
        "id_token": "TAG",
        "started_at": T0,
        "meter_start_wh": 1000.0,
    }
    base.update(kw)
    return Transaction(**base)  # type: ignore[arg-type]


async def test_events_arrive_on_expected_topics_as_json(
    mqtt_url: str, prefix: str, recorder_cls: type, started: Callable[..., Awaitable[MqttTelemetry]]
) -> None:
    events: list[DomainEvent] = [
        StationOnline("CP01", True, T0),
        StatusChanged("CP01", EvseRef(1, 1), ConnectorStatus.OCCUPIED, ChargingState.CHARGING, T0),
        TransactionChanged(tx(), started=True, ended=False, at=T0),
        MeterSampled("CP01", None, 300.0, 99000.0, T0),
        TransactionChanged(
            tx(ended_at=T1, energy_wh=16500.0, stop_reason="Local"), started=False, ended=True, at=T1
        ),
    ]
    async with recorder_cls(mqtt_url, f"{prefix}/#") as rec:
        bus = EventBus()
        t = await started(cfg(mqtt_url, prefix))
        t.attach(bus)
        for e in events:
            bus.publish(e)
        t.site_load("depot", 80_000.0, 100_000.0, T1)
        t.site_plan("depot", {"slot_s": 900, "evses": [{"tx_key": "CP01/42", "limits_w": [11000.0]}]}, T1)
        t.session_event("CP01/42", "overstay_warning", {"grace_ends_at": T1}, T1)

        expected = [r for e in events for r in event_records(e)]
        n = len(expected) + 3
        await rec.wait_for(lambda ms: len([m for m in ms if m.topic != f"{prefix}/status"]) >= n)

        assert rec.on(f"{prefix}/status")[0].raw == b"online"
        got = [m for m in rec.messages if m.topic != f"{prefix}/status"]
        # Order is kept for what the bus published, and payloads are exactly the records' JSON.
        assert [(m.topic, m.json) for m in got[: len(expected)]] == [
            (f"{prefix}/{r.topic}", dict(r.payload)) for r in expected
        ]

        def one(topic: str) -> dict[str, object]:
            [m] = rec.on(f"{prefix}/{topic}")
            return m.json  # type: ignore[no-any-return]

        assert one("station/CP01/status") == {
            "station_id": "CP01",
            "online": True,
            "status": "online",
            "at": "2025-03-01T08:00:00.000Z",
        }
        assert one("station/CP01/evse/1/status")["charging_state"] == "Charging"
        assert one("station/CP01/evse/0/meter")["register_wh"] == 99000.0
        assert one("site/depot/load") == {
            "site_id": "depot",
            "load_w": 80000.0,
            "limit_w": 100000.0,
            "headroom_w": 20000.0,
            "at": "2025-03-01T09:30:00.000Z",
        }
        assert one("site/depot/plan")["evses"] == [{"tx_key": "CP01/42", "limits_w": [11000.0]}]
        session = [m.json for m in rec.on(f"{prefix}/session/CP01%2F42/event")]
        assert [s["event"] for s in session] == ["started", "ended", "overstay_warning"]
        assert session[1]["energy_wh"] == 16500.0 and session[1]["duration_s"] == 5400.0
        deadline = (
            time.monotonic() + 5
        )  # `published` counts broker acknowledgements, which may trail delivery
        while t.published < n and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert t.published == n and t.dropped == 0 and t.buffered == 0 and t.connected


async def test_state_topics_are_retained_and_events_are_not(
    mqtt_url: str, prefix: str, recorder_cls: type, started: Callable[..., Awaitable[MqttTelemetry]]
) -> None:
    bus = EventBus()
    t = await started(cfg(mqtt_url, prefix))
    t.attach(bus)
    bus.publish(StationOnline("CP01", True, T0))
    bus.publish(StatusChanged("CP01", EvseRef(1), ConnectorStatus.AVAILABLE, None, T0))
    bus.publish(MeterSampled("CP01", EvseRef(1), 0.0, 5.0, T0))
    bus.publish(TransactionChanged(tx(), started=True, ended=False, at=T0))
    t.site_load("depot", 1.0, 2.0, T0)
    t.site_plan("depot", {"evses": []}, T0)
    bus.publish(StationOnline("CP01", False, T1))  # the latest value is what stays retained
    deadline = time.monotonic() + 5
    while t.published < 8 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert t.published == 8

    async with recorder_cls(mqtt_url, f"{prefix}/#") as late:  # a subscriber arriving afterwards
        msgs = await late.settle(0.4)
    assert all(m.retain for m in msgs)
    assert {m.topic.removeprefix(prefix + "/") for m in msgs} == {
        "status",
        "station/CP01/status",
        "station/CP01/evse/1/status",
        "site/depot/load",
        "site/depot/plan",
    }
    assert late.on(f"{prefix}/station/CP01/status")[-1].json["status"] == "offline"


async def test_stop_publishes_offline_status(mqtt_url: str, prefix: str, recorder_cls: type) -> None:
    t = MqttTelemetry(cfg(mqtt_url, prefix))
    await t.start()
    assert await t.wait_connected(5.0)
    t.publish(site_load_record("depot", 1.0, 2.0, T0))
    await t.stop()  # flushes what is buffered first
    assert t.published == 1 and not t.connected
    async with recorder_cls(mqtt_url, f"{prefix}/#") as late:
        await late.settle(0.3)
    assert late.on(f"{prefix}/status")[-1].raw == b"offline"
    assert late.on(f"{prefix}/site/depot/load")


async def test_limit_set_calls_the_callback(
    mqtt_url: str,
    prefix: str,
    recorder_cls: type,
    started: Callable[..., Awaitable[MqttTelemetry]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[str, float | None]] = []

    async def on_limit_set(site_id: str, limit_kw: float | None) -> None:
        if site_id == "boom":
            raise LookupError("unknown site 'boom'")
        calls.append((site_id, limit_kw))

    caplog.set_level(logging.INFO, logger="csms.telemetry.mqtt")
    t = await started(cfg(mqtt_url, prefix), on_limit_set)
    async with recorder_cls(mqtt_url, f"{prefix}/none") as op:
        for site, payload in [
            ("depot", '{"limit_kw": 80}'),
            ("depot", "42.5"),
            ("depot", "abc"),
            ("depot", '{"limit": 5}'),
            ("depot", "-3"),
            ("depot", '{"limit_kw": "80"}'),
            ("boom", "10"),
            ("a%2Bb", "7"),
            ("depot", '{"limit_kw": null}'),
            ("depot", "0"),
        ]:
            await op.publish(f"{prefix}/site/{site}/limit/set", payload)
        deadline = time.monotonic() + 5
        while len(calls) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    assert calls == [("depot", 80.0), ("depot", 42.5), ("a+b", 7.0), ("depot", None), ("depot", 0.0)]
    assert t.limit_set_rejected == 5  # four invalid payloads + the handler's refusal
    assert t.connected  # nothing of this broke the connection loop
    text = caplog.text
    assert "invalid payload" in text and 'missing "limit_kw"' in text and "not JSON" in text
    # an unknown site is the sender's mistake: one WARNING line, no traceback
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelname == "WARNING" and refused[0].exc_info is None
    assert "site/boom/limit/set" in refused[0].getMessage() and "unknown site 'boom'" in refused[0].getMessage()


async def test_buffered_before_connect_is_delivered_in_order(
    mqtt_url: str, prefix: str, recorder_cls: type, started: Callable[..., Awaitable[MqttTelemetry]]
) -> None:
    t = MqttTelemetry(cfg(mqtt_url, prefix, buffer_messages=50))
    for i in range(30):
        t.publish(site_load_record("depot", float(i), None, T0))
    async with recorder_cls(mqtt_url, f"{prefix}/site/#") as rec:
        await t.start()
        try:
            await rec.wait_for(lambda ms: len(ms) >= 30)
        finally:
            await t.stop()
    assert [m.json["load_w"] for m in rec.messages] == [float(i) for i in range(30)]
    assert t.published == 30 and t.dropped == 0


async def test_unreachable_broker_buffers_drops_oldest_and_never_blocks(
    started: Callable[..., Awaitable[MqttTelemetry]],
) -> None:
    c = MqttConfig(
        enabled=True, url="mqtt://127.0.0.1:1", client_id="csms-test-unreachable", buffer_messages=5
    )
    t = await started(c, connect=False, backoff_initial_s=0.05, backoff_max_s=0.2)
    bus = EventBus()
    t.attach(bus)
    t0 = time.perf_counter()
    for i in range(8):
        bus.publish(StationOnline(f"CP{i}", True, T0))
    assert time.perf_counter() - t0 < 0.05  # the OCPP path is never held up
    await asyncio.sleep(0.5)
    assert not t.connected and t.published == 0
    assert t.buffered == 5 and t.dropped == 3
    assert [r.payload["station_id"] for r in t._buf] == ["CP3", "CP4", "CP5", "CP6", "CP7"]  # oldest dropped
    assert t._attempt >= 3  # kept retrying with backoff
    assert t.metrics() == {
        "mqtt_connected": 0,
        "mqtt_published_total": 0,
        "mqtt_dropped_total": 3,
        "mqtt_buffered": 5,
        "mqtt_connects_total": 0,
        "mqtt_limit_set_rejected_total": 0,
    }
    t1 = time.perf_counter()
    await t.stop()
    assert time.perf_counter() - t1 < 1.0


async def test_retained_limit_set_is_applied_on_connect_and_cleared_by_an_empty_message(
    mqtt_url: str, prefix: str, recorder_cls: type, started: Callable[..., Awaitable[MqttTelemetry]]
) -> None:
    calls: list[tuple[str, float | None]] = []

    async def on_limit_set(site_id: str, limit_kw: float | None) -> None:
        calls.append((site_id, limit_kw))

    async with recorder_cls(mqtt_url, f"{prefix}/none") as op:
        await op.publish(f"{prefix}/site/depot/limit/set", '{"limit_kw": 55}', retain=True)
        await started(cfg(mqtt_url, prefix), on_limit_set)  # the retained override arrives on subscribe
        await _wait(lambda: len(calls) >= 1)
        await op.publish(f"{prefix}/site/depot/limit/set", b"", retain=True)  # clears and un-retains
        await _wait(lambda: len(calls) >= 2)
    assert calls == [("depot", 55.0), ("depot", None)]


async def _wait(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
