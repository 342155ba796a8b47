"""MqttTelemetry without a broker: URL parsing, backoff, buffering and drop-oldest (no network)."""

from __future__ import annotations

import ast
import asyncio
import pathlib
import random
from datetime import UTC, datetime

import pytest

from csms.config import MqttConfig
from csms.domain.events import StationOnline
from csms.services.bus import EventBus
from csms.telemetry import MqttTelemetry, backoff_delay, parse_mqtt_url, site_load_record
from csms.telemetry.mqtt import BrokerAddress

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", BrokerAddress("127.0.0.1", 1883)),
        ("mqtt://broker", BrokerAddress("broker", 1883)),
        ("tcp://broker:1884", BrokerAddress("broker", 1884)),
        ("mqtts://broker", BrokerAddress("broker", 8883, tls=True)),
        ("mqtt://user:p%40ss@broker:1883", BrokerAddress("broker", 1883, "user", "p@ss")),
        ("mqtt://user@[::1]:1883", BrokerAddress("::1", 1883, "user", None)),
    ],
)
def test_parse_mqtt_url(url: str, expected: BrokerAddress) -> None:
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize("url", ["http://broker", "mqtt://", "mqtt://broker:notaport", "broker:1883"])
def test_parse_mqtt_url_rejects(url: str) -> None:
    with pytest.raises(ValueError, match="mqtt.url"):
        parse_mqtt_url(url)


def test_address_str_hides_password() -> None:
    assert "secret" not in str(parse_mqtt_url("mqtt://u:secret@h:1"))


def test_backoff_doubles_to_a_cap_with_jitter() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 10.0, rng) for n in range(10)]
    for n, d in enumerate(delays):
        base = min(10.0, 0.5 * 2**n)
        assert 0.8 * base <= d <= min(10.0, 1.2 * base)
    assert delays[-1] <= 10.0 and delays[-1] >= 8.0
    assert backoff_delay(10_000, rng=rng) <= 10.0


def make(buffer: int = 3, enabled: bool = True) -> MqttTelemetry:
    return MqttTelemetry(MqttConfig(enabled=enabled, url="mqtt://127.0.0.1:1", buffer_messages=buffer))


def test_buffer_drops_oldest_and_counts() -> None:
    t = make(buffer=3)
    recs = [site_load_record("s", float(i), None, T0) for i in range(5)]
    for r in recs:
        t.publish(r)
    assert t.buffered == 3 and t.dropped == 2 and t.published == 0 and not t.connected
    assert list(t._buf) == recs[2:]  # the two oldest went


def test_requeue_keeps_order_and_drops_oldest_when_full() -> None:
    t = make(buffer=4)
    old = [site_load_record("s", float(i), None, T0) for i in range(3)]
    new = [site_load_record("s", float(10 + i), None, T0) for i in range(2)]
    for r in new:
        t.publish(r)
    t._requeue(old)  # an unacknowledged batch goes back in front; only 2 of its 3 fit
    assert list(t._buf) == old[1:] + new and t.dropped == 1


def test_attach_enqueues_bus_events_and_unsubscribes() -> None:
    bus = EventBus()
    t = make(buffer=10)
    unsubscribe = t.attach(bus)
    bus.publish(StationOnline("CP01", True, T0))
    assert t.buffered == 1
    unsubscribe()
    bus.publish(StationOnline("CP01", False, T0))
    assert t.buffered == 1


def test_service_sink_methods_never_raise() -> None:
    t = make(buffer=10)
    t.site_load("depot", 1.0, 2.0, T0)
    t.site_plan("depot", {"slots": []}, T0)
    t.session_event("CP01/1", "overstay_started", {"fee_per_min": 0.1}, T0)
    t.session_event("CP01/1", "Not A Kind", {}, T0)  # logged, not raised
    t.site_plan("depot", ["not", "a", "mapping"], T0)  # type: ignore[arg-type]
    assert t.buffered == 3


def test_disabled_does_nothing() -> None:
    t = make(enabled=False)
    t.publish(site_load_record("s", 1.0, None, T0))
    assert t.buffered == 0 and t.dropped == 0


async def test_start_stop_when_disabled_is_a_noop() -> None:
    t = make(enabled=False)
    await t.start()
    await t.stop()
    assert t.metrics()["mqtt_connected"] == 0


def test_bad_url_fails_at_construction() -> None:
    with pytest.raises(ValueError):
        MqttTelemetry(MqttConfig(url="http://x"))  # type: ignore[call-arg]


FORBIDDEN = {
    "csms.store",
    "csms.ocpp",
    "csms.api",
    "sqlalchemy",
    "websockets",
    "ocpp",
    "fastapi",
    "starlette",
}


def test_telemetry_imports_stay_within_the_layer() -> None:
    import csms.telemetry as pkg

    for path in pathlib.Path(pkg.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN), (
                    f"{path.name}: {name}"
                )


class FakeClient:
    """Stands in for aiomqtt.Client in the publisher: acks the first `ack` publishes, fails or hangs after."""

    def __init__(self, ack: int, then: str) -> None:
        self.ack, self.then = ack, then
        self.sent: list[str] = []

    async def publish(self, topic: str, payload: bytes, **kw: object) -> None:
        self.sent.append(topic)
        if len(self.sent) <= self.ack:
            return
        if self.then == "fail":
            import aiomqtt

            raise aiomqtt.MqttError("Operation timed out")
        await asyncio.Event().wait()  # never acknowledged


async def test_unacknowledged_records_go_back_in_order_when_the_connection_ends() -> None:
    t = MqttTelemetry(MqttConfig(enabled=True, url="mqtt://127.0.0.1:1", buffer_messages=100), max_inflight=4)
    recs = [site_load_record(f"s{i}", 1.0, None, T0) for i in range(10)]
    for r in recs:
        t.publish(r)
    client = FakeClient(ack=2, then="hang")
    task = asyncio.create_task(t._publisher(client))  # type: ignore[arg-type]
    for _ in range(20):
        await asyncio.sleep(0)
    assert t.published == 2 and len(t._inflight) == 4  # window of 4 unacknowledged
    task.cancel()  # the connection went away
    await asyncio.gather(task, return_exceptions=True)
    assert list(t._buf) == recs[2:] and not t._inflight and t.dropped == 0


async def test_a_failed_publish_ends_the_session_and_keeps_the_record() -> None:
    t = MqttTelemetry(MqttConfig(enabled=True, url="mqtt://127.0.0.1:1", buffer_messages=100), max_inflight=1)
    recs = [site_load_record(f"s{i}", 1.0, None, T0) for i in range(5)]
    for r in recs:
        t.publish(r)
    with pytest.raises(BaseExceptionGroup):
        await asyncio.wait_for(t._publisher(FakeClient(ack=3, then="fail")), 2)  # type: ignore[arg-type]
    assert t.published == 3 and list(t._buf) == recs[3:]


async def test_unserialisable_payload_is_dropped_not_fatal() -> None:
    from csms.telemetry import TelemetryRecord

    t = MqttTelemetry(MqttConfig(enabled=True, url="mqtt://127.0.0.1:1", buffer_messages=100))
    t.publish(TelemetryRecord("site/x/load", "site.load", {"bad": object()}))
    t.publish(site_load_record("ok", 1.0, None, T0))
    client = FakeClient(ack=10, then="hang")
    task = asyncio.create_task(t._publisher(client))  # type: ignore[arg-type]
    for _ in range(10):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert t.dropped == 1 and t.published == 1 and client.sent == ["csms/site/ok/load"]
