"""GET /me and the live events stream over real HTTP: keys are checked when the stream opens, a charger's
connection reaches an open stream as one coalesced `change`, and an open stream does not hold a shutdown."""

from __future__ import annotations

import asyncio
import json
import time

from simulator.charger import Charger, ChargerConfig
from simulator.clock import SimClock

from .conftest import ADMIN_KEY, VIEWER_KEY, api_config, client, running


async def test_me_names_the_role(sqlite_url: str) -> None:
    async with running(api_config(sqlite_url)) as app:
        async with client(app, VIEWER_KEY) as c:
            assert (await c.get("/api/v1/me")).json() == {"name": "wall", "role": "viewer", "id_tokens": [],
                                                           "may": ["viewer"]}
        async with client(app, None) as c:
            assert (await c.get("/api/v1/me")).status_code == 401
            assert (await c.get("/api/v1/events")).status_code == 401


async def test_a_connecting_charger_reaches_an_open_stream(sqlite_url: str) -> None:
    app_cm = running(api_config(sqlite_url))
    app = await app_cm.__aenter__()
    try:
        async with client(app, ADMIN_KEY) as c, c.stream("GET", "/api/v1/events") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            lines = r.aiter_lines()
            assert await anext(lines) == "retry: 2000"
            cp = Charger(ChargerConfig("CP-1", url=f"ws://127.0.0.1:{app.ocpp_port}/ocpp", protocol="2.0.1"),
                         SimClock())
            await cp.start()
            try:
                event = data = None
                while event != "change":
                    line = await asyncio.wait_for(anext(lines), 15)
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                data = json.loads((await anext(lines)).removeprefix("data: "))
                assert "StationOnline" in data["types"] and data["stations"] == ["CP-1"]
            finally:
                await cp.close()
            # the stream is still open: stopping the CSMS must not wait for the client to go away
            t0 = time.monotonic()
            await app_cm.__aexit__(None, None, None)
            app_cm = None
            assert time.monotonic() - t0 < 8
    finally:
        if app_cm is not None:
            await app_cm.__aexit__(None, None, None)
