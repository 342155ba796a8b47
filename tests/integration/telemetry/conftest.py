"""Helpers for the MQTT telemetry tests: a recording subscriber and a per-test topic prefix that leaves
no retained messages behind on the shared broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Self

import aiomqtt
import pytest

from csms.telemetry.mqtt import parse_mqtt_url


@dataclass(frozen=True)
class Received:
    topic: str
    raw: bytes
    retain: bool

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class Recorder:
    """A separate MQTT client that records everything on `topic_filter`."""

    def __init__(self, url: str, topic_filter: str) -> None:
        a = parse_mqtt_url(url)
        self._client = aiomqtt.Client(
            a.host,
            a.port,
            username=a.username,
            password=a.password,
            identifier=f"rec-{uuid.uuid4().hex[:8]}",
            timeout=5,
        )
        self._filter = topic_filter
        self.messages: list[Received] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self._client.__aenter__()
        await self._client.subscribe(self._filter, qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def _collect(self) -> None:
        async for m in self._client.messages:
            raw = bytes(m.payload) if isinstance(m.payload, (bytes, bytearray)) else str(m.payload).encode()
            self.messages.append(Received(m.topic.value, raw, bool(m.retain)))
            self._changed.set()

    async def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        await self._client.publish(topic, payload, qos=1, retain=retain)

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]

    async def wait_for(self, pred: Callable[[list[Received]], bool], timeout: float = 5.0) -> list[Received]:
        async def loop() -> None:
            while not pred(self.messages):
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"timed out; received: {[(m.topic, m.raw) for m in self.messages]}"
            ) from None
        return self.messages

    async def wait_topics(self, wanted: set[str], timeout: float = 5.0) -> dict[str, Received]:
        await self.wait_for(lambda ms: wanted <= {m.topic for m in ms}, timeout)
        return {m.topic: m for m in self.messages if m.topic in wanted}

    async def settle(self, quiet_s: float = 0.3) -> list[Received]:
        """Wait until nothing arrived for quiet_s (e.g. to collect retained messages after subscribing)."""
        while True:
            n = len(self.messages)
            await asyncio.sleep(quiet_s)
            if len(self.messages) == n:
                return self.messages


async def clear_retained(url: str, prefix: str) -> None:
    async with Recorder(url, f"{prefix}/#") as rec:
        await rec.settle(0.3)
        for topic in {m.topic for m in rec.messages if m.retain and m.raw}:
            await rec.publish(topic, b"", retain=True)


@pytest.fixture
async def prefix(mqtt_url: str) -> AsyncIterator[str]:
    """A topic prefix of this test's own; its retained messages are removed afterwards."""
    p = f"csms-test/{uuid.uuid4().hex[:10]}"
    yield p
    await clear_retained(mqtt_url, p)


@pytest.fixture
def recorder_cls() -> type[Recorder]:
    """The Recorder class (test modules get it through this fixture; conftest is not importable by name)."""
    return Recorder
