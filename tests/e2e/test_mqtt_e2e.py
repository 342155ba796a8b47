"""MQTT through the whole CSMS against the real broker: a simulator charger's session reaches the broker,
and a grid signal on {prefix}/site/{id}/limit/set re-plans the site and the charger follows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from urllib.parse import urlparse

import aiomqtt

from csms.telemetry import topics

from .conftest import charger, ev, eventually, make_config, running


async def test_session_and_grid_signal_over_mqtt(sqlite_url: str, mqtt_url: str) -> None:
    prefix = f"csms-e2e/{uuid.uuid4().hex[:8]}"
    u = urlparse(mqtt_url)
    cfg = make_config(sqlite_url, f"""
sites: [{{id: s1, grid_limit_kw: 44}}]
chargers: [{{id: M1, site: s1}}]
id_tokens: [{{value: TAG}}]
mqtt: {{enabled: true, url: "{mqtt_url}", topic_prefix: "{prefix}", client_id: "csms-{prefix[-8:]}"}}
""")
    seen: dict[str, dict] = {}  # type: ignore[type-arg]
    async with aiomqtt.Client(u.hostname or "127.0.0.1", port=u.port or 1883) as sub:
        await sub.subscribe(f"{prefix}/#")

        async def listen() -> None:
            async for msg in sub.messages:
                with contextlib.suppress(ValueError, TypeError):
                    seen[str(msg.topic)] = json.loads(msg.payload)  # type: ignore[arg-type]

        listener = asyncio.create_task(listen())
        try:
            async with running(cfg) as app:
                cp = charger(app, "M1", "2.0.1")
                await cp.connect(timeout=10)
                await cp.plug_in(ev(cp.clock), "TAG")
                await cp.start_charging()
                await eventually(lambda: cp.power_w > 20_000, what="charging at full power")
                status = topics.full_topic(prefix, topics.station_status("M1"))
                await eventually(lambda: status in seen, what="station status on MQTT")
                await eventually(lambda: any("/session/" in t for t in seen), what="session event on MQTT")
                await eventually(lambda: topics.full_topic(prefix, topics.site_plan("s1")) in seen,
                                 what="site plan on MQTT")
                # The grid operator caps the site at 11 kW over MQTT: the CSMS re-plans and the charger follows.
                await sub.publish(topics.full_topic(prefix, topics.site_limit_set("s1")), json.dumps({"limit_kw": 11}))
                await eventually(lambda: 0 < cp.power_w <= 11_000 + 1, what="charger under the MQTT limit")
                assert app.smart.sites["s1"].external_limit_kw == 11
                await cp.close()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            for t in list(seen):  # leave no retained state behind on the shared broker
                await sub.publish(t, b"", retain=True)
