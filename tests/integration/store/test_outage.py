"""A real database outage: PostgreSQL behind a TCP relay that the test cuts and restores. Every charger message
during the outage gets InternalError (nothing is stored, nothing pretends to be), the outage is logged once
with its cause and once when it ends (not a traceback per message), and counted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import httpx
import pytest
from sqlalchemy.engine import make_url
from websockets.asyncio.client import connect

from csms.app import CsmsApp
from csms.config import parse_config

pytestmark = pytest.mark.postgres


class Relay:
    """127.0.0.1:<port> -> target; `cut()` closes the listener and every relayed connection, `restore()` reopens
    the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @classmethod
    async def open(cls, pg_url: str) -> tuple[Relay, str]:
        """A relay in front of the database at `pg_url`, listening, and the URL that goes through it."""
        u = make_url(pg_url)
        relay = cls(u.host or "127.0.0.1", u.port or 5432)
        await relay.restore()
        return relay, u.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    async def _relay(self, r1: asyncio.StreamReader, w1: asyncio.StreamWriter) -> None:
        try:
            r2, w2 = await asyncio.open_connection(*self.target)
        except OSError:
            w1.transport.abort()
            return
        self._writers |= {w1, w2}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.transport.abort()

        await asyncio.gather(pipe(r1, w2), pipe(r2, w1))
        self._writers -= {w1, w2}


STATUS = '[2,"{uid}","StatusNotification",{{"connectorId":1,"errorCode":"NoError","status":"{status}"}}]'


async def answer(ws, frame: str) -> list[object]:  # type: ignore[no-untyped-def]
    await ws.send(frame)
    uid = json.loads(frame)[1]
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg[0] != 2 and msg[1] == uid:
            return msg  # type: ignore[no-any-return]


async def test_database_outage_is_logged_once_counted_and_recovered(pg_url: str,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    relay, url = await Relay.open(pg_url)
    cfg = parse_config(f"""
server: {{port: 0, security_profile: 0}}
api: {{port: 0}}
database: {{url: "{url}"}}
chargers: [{{id: CP-1}}]
""", env={})
    async with CsmsApp(cfg) as app:
        ws = await connect(f"ws://127.0.0.1:{app.ocpp_port}/ocpp/CP-1", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           open_timeout=5)
        assert (await answer(ws, STATUS.format(uid="s0", status="Available")))[0] == 3
        await relay.cut()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            for i in range(25):
                err = await answer(ws, STATUS.format(uid=f"d{i}", status="Preparing"))
                assert err[:4] == [4, f"d{i}", "InternalError", "database unavailable"]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}") as api:
                r = await api.get("/api/v1/stations")
                assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
                metrics = (await api.get("/metrics")).text
                assert "csms_database_up 0.0" in metrics
            await relay.restore()
            assert (await answer(ws, STATUS.format(uid="back", status="Available")))[0] == 3
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage().split(":")[0] for r in errors] == ["database unavailable"], \
            [r.getMessage()[:120] for r in errors]
        assert any("database available again" in r.getMessage() for r in caplog.records)
        assert app.store.health.failures_total >= 26 and app.store.health.outages_total == 1
        assert app.store.health.up
        await ws.close()
    await relay.cut()
