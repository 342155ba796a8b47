"""Broker restart: a private mosquitto on an ephemeral port is killed and started again on the same port.

Messages published while it is down stay buffered and arrive after the client has reconnected by itself.
Skipped when the mosquitto binary is missing (a failure under CSMS_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from csms.config import MqttConfig
from csms.telemetry import MqttTelemetry, site_load_record

pytestmark = pytest.mark.mqtt

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )
    if found is None:
        msg = "mosquitto binary not found (apt-get install mosquitto) - needed to run a private broker"
        if os.environ.get("CSMS_REQUIRE_SERVICES") == "1":
            pytest.fail(msg + " (CSMS_REQUIRE_SERVICES=1 makes it mandatory)")
        pytest.skip(msg)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class PrivateBroker:
    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.port = _free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=out, stderr=out)
        deadline = time.monotonic() + 5
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private mosquitto did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: a crash, not a clean shutdown
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(_mosquitto_binary(), tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


async def _until(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_broker_restart_delivers_buffered_messages(
    private_broker: PrivateBroker, recorder_cls: type
) -> None:
    prefix = "csms"
    cfg = MqttConfig(
        enabled=True,
        url=private_broker.url,
        topic_prefix=prefix,
        client_id=f"csms-restart-{uuid.uuid4().hex[:6]}",
        buffer_messages=100,
    )
    t = MqttTelemetry(cfg, backoff_initial_s=0.1, backoff_max_s=0.5)
    await t.start()
    try:
        assert await t.wait_connected(5.0)
        async with recorder_cls(private_broker.url, f"{prefix}/site/#") as rec:
            t.publish(site_load_record("before", 1.0, 10.0, T0))
            await rec.wait_topics({f"{prefix}/site/before/load"})
        assert t.published == 1 and t.connects == 1

        private_broker.kill()
        await _until(lambda: not t.connected, 5.0, "the client to notice the broker is gone")

        # While the broker is down: buffered, nothing lost, nothing blocks.
        for i in range(5):
            t.publish(site_load_record(f"down{i}", float(i), 10.0, T0))
        await asyncio.sleep(0.3)  # a few reconnect attempts fail meanwhile
        assert not t.connected and t.buffered == 5 and t.published == 1 and t.dropped == 0

        private_broker.start()  # same port
        await _until(lambda: t.connected, 5.0, "the client to reconnect on its own")
        await _until(lambda: t.buffered == 0 and t.published == 6, 5.0, "the buffer to drain")
        assert t.connects == 2 and t.dropped == 0

        # The restarted broker (no persistence) now holds exactly what was published while it was down;
        # these topics are retained, so a subscriber arriving now sees them all.
        async with recorder_cls(private_broker.url, f"{prefix}/#") as rec:
            got = await rec.wait_topics(
                {f"{prefix}/site/down{i}/load" for i in range(5)} | {f"{prefix}/status"}
            )
        assert [got[f"{prefix}/site/down{i}/load"].json["load_w"] for i in range(5)] == [
            0.0,
            1.0,
            2.0,
            3.0,
            4.0,
        ]
        assert got[f"{prefix}/status"].raw == b"online"
        assert not rec.on(f"{prefix}/site/before/load")  # proves this really is a fresh broker
    finally:
        await t.stop(flush_timeout_s=0.5)
