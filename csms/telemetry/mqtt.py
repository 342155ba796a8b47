"""MQTT telemetry adapter (aiomqtt): an outbound stream of committed facts plus one inbound command.

    telemetry = MqttTelemetry(cfg.mqtt, on_limit_set=smart_charging.set_site_limit_override)
    telemetry.attach(bus)          # domain events -> records -> buffer (never blocks the publisher)
    await telemetry.start()        # background task: connect, drain the buffer, receive limit/set
    ...
    await telemetry.stop()

Nothing here ever blocks or fails the OCPP path: `publish` and the bus subscriber only append to a bounded
in-memory buffer (drop-oldest when full, counted in `dropped`). One background task owns the broker
connection. It reconnects with exponential backoff (0.5 s doubling to 10 s, +-20 % jitter) and keeps the
buffer across outages, so whatever fits in `buffer_messages` is delivered after the broker comes back
(at least once: records still unacknowledged when a connection drops are sent again).

Must be used from the event loop's thread (the bus calls subscribers there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import aiomqtt

from csms.config import MqttConfig
from csms.domain.errors import DomainError
from csms.domain.events import DomainEvent

from . import topics
from .records import (
    InvalidLimit,
    TelemetryRecord,
    event_records,
    parse_limit_set,
    plan_record,
    session_event_record,
    site_load_record,
)

if TYPE_CHECKING:
    from csms.services.bus import EventBus

log = logging.getLogger("csms.telemetry.mqtt")

LimitSetHandler = Callable[[str, float | None], Awaitable[object]]
"""on_limit_set(site_id, limit_kw): limit_kw None clears the override. Its result is ignored; raising (e.g.
LookupError for an unknown site) is logged and counted in limit_set_rejected."""

ONLINE = "online"
_RNG = random.Random()
OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __str__(self) -> str:  # never shows the password
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> BrokerAddress:
    """mqtt://[user[:password]@]host[:port] (default 1883); mqtts:// uses TLS (default 8883); tcp:// is
    accepted as mqtt://. Raises ValueError naming the problem."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
        raise ValueError(f"mqtt.url: unsupported scheme {parts.scheme!r} in {url!r} (use mqtt:// or mqtts://)")
    tls = scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise ValueError(f"mqtt.url: no host in {url!r}")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"mqtt.url: invalid port in {url!r}") from None
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=tls,
    )


def backoff_delay(attempt: int, initial_s: float = 0.5, max_s: float = 10.0,
                  rng: random.Random | None = None) -> float:
    """Delay before reconnect attempt `attempt` (0-based): initial_s * 2**attempt, capped at max_s, with
    +-20 % jitter (never above max_s)."""
    base = min(max_s, initial_s * 2.0 ** min(attempt, 32))
    jitter: float = (rng or _RNG).uniform(0.8, 1.2)
    return float(min(max_s, base * jitter))


class MqttTelemetry:
    """Publishes telemetry records to MQTT and receives `{prefix}/site/+/limit/set`.

    Counters (for /metrics): `published`, `dropped`, `connected`, `buffered`, `connects`,
    `limit_set_rejected`; `metrics()` returns them as one dict.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        on_limit_set: LimitSetHandler | None = None,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        publish_timeout_s: float = 10.0,
        max_inflight: int = 20,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.prefix = topics.normalize_prefix(cfg.topic_prefix)
        self.address = parse_mqtt_url(cfg.url)
        self._on_limit_set = on_limit_set
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._connect_timeout_s = connect_timeout_s
        self._publish_timeout_s = publish_timeout_s
        self._max_inflight = max(1, max_inflight)
        self._rng = rng or random.Random()
        self._capacity = cfg.buffer_messages
        self._buf: deque[TelemetryRecord] = deque()
        self._wake = asyncio.Event()
        self._connected_evt = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._inflight: dict[int, TelemetryRecord] = {}
        self._attempt = 0
        self._drop_warned = False
        self.published = 0
        self.dropped = 0
        self.connected = False
        self.connects = 0
        self.limit_set_rejected = 0

    # --- producer side (synchronous, never blocks) -----------------------------------------------
    @property
    def buffered(self) -> int:
        return len(self._buf)

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Subscribe to the bus; returns the unsubscribe function."""
        return bus.subscribe(self.handle_event)

    def handle_event(self, event: DomainEvent) -> None:
        """The bus subscriber: maps the event to records and enqueues them."""
        for record in event_records(event):
            self.publish(record)

    def publish(self, record: TelemetryRecord) -> None:
        """Enqueue a record. When the buffer is full the OLDEST record is dropped and counted."""
        if not self.cfg.enabled:
            return
        if len(self._buf) >= self._capacity:
            self._buf.popleft()
            self.dropped += 1
            if not self._drop_warned:
                self._drop_warned = True
                log.warning("mqtt buffer full (%d messages, broker %s): dropping the oldest messages",
                            self._capacity, "connected" if self.connected else "unreachable")
        self._buf.append(record)
        self._wake.set()

    # Telemetry sink for services (smart charging, billing). Never raise into the caller.
    def site_load(self, site_id: str, load_w: float, limit_w: float | None, at: datetime) -> None:
        self._publish_built(site_load_record, site_id, load_w, limit_w, at)

    @property
    def wants_plans(self) -> bool:
        return self.cfg.enabled

    def site_plan(self, site_id: str, plan: Mapping[str, Any], at: datetime) -> None:
        self._publish_built(plan_record, site_id, plan, at)

    def session_event(self, tx_key: str, kind: str, detail: Mapping[str, Any], at: datetime) -> None:
        self._publish_built(session_event_record, tx_key, kind, detail, at)

    def _publish_built(self, build: Callable[..., TelemetryRecord], *args: Any) -> None:
        try:
            record = build(*args)
        except Exception:  # a bad record must not break the service publishing it
            log.exception("mqtt telemetry record rejected builder=%s", build.__name__)
            return
        self.publish(record)

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the background connection task. Returns at once; the broker may be down."""
        if not self.cfg.enabled:
            log.info("mqtt telemetry disabled")
            return
        if self._task is not None and not self._task.done():
            return
        log.info("mqtt telemetry starting broker=%s prefix=%r client_id=%s buffer=%d", self.address,
                 self.prefix, self.cfg.client_id, self._capacity)
        self._task = asyncio.create_task(self._run(), name="mqtt-telemetry")

    async def wait_connected(self, timeout_s: float) -> bool:
        """True once connected (and subscribed) within timeout_s."""
        try:
            await asyncio.wait_for(self._connected_evt.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self, flush_timeout_s: float = 2.0) -> None:
        """Try to deliver what is buffered (while connected, up to flush_timeout_s), publish the retained
        'offline' status, then disconnect."""
        task, self._task = self._task, None
        if task is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + flush_timeout_s
        while (self._buf or self._inflight) and self.connected and loop.time() < deadline:
            await asyncio.sleep(0.01)
        client = self._client
        if client is not None and self.connected:
            with contextlib.suppress(Exception):
                await client.publish(self._status_topic, OFFLINE, qos=1, retain=True, timeout=1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self._buf:
            log.info("mqtt telemetry stopped with %d undelivered messages", len(self._buf))

    def metrics(self) -> dict[str, int]:
        return {
            "mqtt_connected": int(self.connected),
            "mqtt_published_total": self.published,
            "mqtt_dropped_total": self.dropped,
            "mqtt_buffered": len(self._buf),
            "mqtt_connects_total": self.connects,
            "mqtt_limit_set_rejected_total": self.limit_set_rejected,
        }

    # --- connection task -------------------------------------------------------------------------
    @property
    def _status_topic(self) -> str:
        return topics.full_topic(self.prefix, topics.csms_status())

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
                reason = "session ended"
            except aiomqtt.MqttError as e:
                reason = str(e) or type(e).__name__
            except Exception as e:  # keep retrying whatever happened
                log.exception("mqtt telemetry session failed unexpectedly")
                reason = repr(e)
            finally:
                self._set_disconnected()
            delay = backoff_delay(self._attempt, *self._backoff, rng=self._rng)
            level = logging.WARNING if self._attempt == 0 else logging.DEBUG
            log.log(level, "mqtt broker %s unavailable (%s); retry %d in %.2fs, %d messages buffered",
                    self.address, reason, self._attempt + 1, delay, len(self._buf))
            self._attempt += 1
            await asyncio.sleep(delay)

    def _make_client(self) -> aiomqtt.Client:
        a = self.address
        client = aiomqtt.Client(
            a.host, a.port, username=a.username, password=a.password, identifier=self.cfg.client_id,
            will=aiomqtt.Will(self._status_topic, OFFLINE, qos=1, retain=True),
            clean_session=True, timeout=self._connect_timeout_s, keepalive=30,
            max_inflight_messages=self._max_inflight,
            tls_context=ssl.create_default_context() if a.tls else None,
            # Small telemetry packets: send at once rather than coalescing (Nagle).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        # aiomqtt warns above 10 pending publishes; a full batch in flight is normal here.
        client.pending_calls_threshold = self._max_inflight + 10
        return client

    async def _session(self) -> None:
        client = self._make_client()
        async with client:
            self._client = client
            await client.publish(self._status_topic, ONLINE, qos=1, retain=True,
                                 timeout=self._publish_timeout_s)
            if self._on_limit_set is not None:
                await client.subscribe(topics.site_limit_set_filter(self.prefix), qos=1,
                                       timeout=self._publish_timeout_s)
            self.connected = True
            self.connects += 1
            self._drop_warned = False
            log.info("mqtt connected broker=%s after %d failed attempts; %d messages buffered, %d dropped",
                     self.address, self._attempt, len(self._buf), self.dropped)
            self._attempt = 0
            self._connected_evt.set()
            tasks = [asyncio.create_task(self._publisher(client), name="mqtt-publisher"),
                     asyncio.create_task(self._receiver(client), name="mqtt-receiver")]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for t in done:
                exc = t.exception()
                while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
                    exc = exc.exceptions[0]
                if exc is not None:
                    raise exc
            raise aiomqtt.MqttError("connection loop ended")

    def _set_disconnected(self) -> None:
        self.connected = False
        self._client = None
        self._connected_evt.clear()

    async def _publisher(self, client: aiomqtt.Client) -> None:
        """Drain the buffer with a sliding window of up to max_inflight unacknowledged QoS 1 publishes.

        A record leaves `inflight` only when the broker acknowledged it; whatever is still in flight when
        the connection ends goes back to the front of the buffer (so delivery is at least once).
        A sliding window (not send-batch-then-wait) matters: a broker without TCP_NODELAY holds back all
        but the first PUBACK of a batch until our delayed ACK (~40 ms), while a next PUBLISH carries that
        ACK at once.
        """
        window = asyncio.Semaphore(self._max_inflight)
        inflight = self._inflight
        seq = 0

        async def send(n: int, topic: str, body: bytes, retain: bool) -> None:
            try:
                await client.publish(topic, body, qos=1, retain=retain, timeout=self._publish_timeout_s)
                del inflight[n]
                self.published += 1
            finally:
                window.release()

        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    await window.acquire()
                    while not self._buf:
                        self._wake.clear()
                        await self._wake.wait()
                    rec = self._buf.popleft()
                    try:
                        body = json.dumps(rec.payload, separators=(",", ":"), allow_nan=False).encode()
                    except (TypeError, ValueError) as e:
                        window.release()
                        self.dropped += 1
                        log.error("mqtt record not JSON-serialisable, dropped kind=%s topic=%s: %s", rec.kind,
                                  rec.topic, e)
                        continue
                    inflight[seq] = rec
                    tg.create_task(send(seq, topics.full_topic(self.prefix, rec.topic), body, rec.retain))
                    seq += 1
        finally:
            unacked = list(inflight.values())  # insertion order = publish order
            inflight.clear()
            self._requeue(unacked)

    def _requeue(self, records: list[TelemetryRecord]) -> None:
        """Put records that were not acknowledged back at the front, oldest first; drop the oldest of them
        when the buffer refilled meanwhile."""
        for rec in reversed(records):
            if len(self._buf) < self._capacity:
                self._buf.appendleft(rec)
            else:
                self.dropped += 1

    async def _receiver(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:  # raises MqttError when the connection is lost
            payload = message.payload
            raw = bytes(payload) if isinstance(payload, (bytes, bytearray)) else (
                b"" if payload is None else str(payload).encode())
            await self._on_message(message.topic.value, raw)

    async def _on_message(self, topic: str, payload: bytes) -> None:
        site_id = topics.parse_site_limit_set(self.prefix, topic)
        if site_id is None:
            log.debug("mqtt message on unexpected topic ignored topic=%s", topic)
            return
        try:
            limit_kw = parse_limit_set(payload)
        except InvalidLimit as e:
            self.limit_set_rejected += 1
            log.warning("mqtt site-limit command ignored: invalid payload on %s for site %r: %s",
                        topic, site_id, e)
            return
        log.info("mqtt site-limit command site=%s limit_kw=%s", site_id, limit_kw)
        if self._on_limit_set is None:
            return
        try:
            await self._on_limit_set(site_id, limit_kw)
        except (DomainError, LookupError) as e:  # an unknown site: the sender's mistake, one line
            self.limit_set_rejected += 1
            log.warning("mqtt site-limit command refused on %s: %s: %s", topic, type(e).__name__, e or site_id)
        except Exception:  # a bug in the handler: log it with its traceback, keep receiving
            self.limit_set_rejected += 1
            log.exception("mqtt site-limit command handler failed site=%s limit_kw=%s", site_id, limit_kw)
