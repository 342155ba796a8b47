"""Fixtures: an OcppServer on 127.0.0.1 with an ephemeral port, wired to recording fakes, plus clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from csms.config import OcppServerConfig
from csms.domain.clock import FakeClock
from csms.domain.ports import StationAccess
from csms.domain.passwords import hash_password
from csms.ocpp.server import OcppServer

from .clients import V16Client, V201Client
from .fakes import FakeDirectory, RecordingEvents, basic, open_ws

#: Chargers of the protocol tests connect without authentication: an explicit profile 0.
INSECURE = StationAccess(True, security_profile=0)
#: Cheap hash for tests (the production iteration count costs ~50 ms per check).
SECRET_HASH = hash_password("s3cret-passw0rd!", iterations=1000)


@dataclass
class Env:
    server: OcppServer
    events: RecordingEvents
    directory: FakeDirectory
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _sockets: list[ClientConnection] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    async def ws(self, ident: str, protocols: list[str] | None = ("ocpp1.6",), **kw: Any) -> ClientConnection:  # type: ignore[assignment]
        port = self.server.tls_port if kw.get("ssl") is not None else self.port  # ssl=ctx: wss://
        assert port is not None
        ws = await open_ws(port, ident, protocols, **kw)
        self._sockets.append(ws)
        return ws

    async def client(self, ident: str = "CP1", version: str = "1.6", **kw: Any) -> Any:
        """A started `ocpp` client charge point (V16Client / V201Client)."""
        ws = await self.ws(ident, ["ocpp1.6" if version == "1.6" else "ocpp2.0.1"], **kw)
        cp = (V16Client if version == "1.6" else V201Client)(ident, ws, response_timeout=5)
        self._tasks.append(asyncio.create_task(_serve(cp)))
        return cp

    async def close(self) -> None:
        for ws in self._sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for t in self._tasks:
            t.cancel()
        await self.server.stop()


async def _serve(cp: Any) -> None:
    with contextlib.suppress(Exception):
        await cp.start()


MakeEnv = Callable[..., Awaitable[Env]]


@pytest.fixture
async def make_env() -> AsyncIterator[MakeEnv]:
    envs: list[Env] = []

    async def make(*, stations: dict[str, StationAccess] | None = None, ready_grace_s: float = 30.0,
                   events: RecordingEvents | None = None, **cfg: Any) -> Env:
        cfg.setdefault("port", 0)
        directory = FakeDirectory(stations if stations is not None else {
            "CP1": INSECURE, "CP2": INSECURE,
            "SECURE": StationAccess(True, SECRET_HASH)})
        ev = events or RecordingEvents()
        throttle = cfg.pop("throttle", None)
        server = OcppServer(OcppServerConfig(**cfg), ev, directory, FakeClock(ev.now), ready_grace_s=ready_grace_s,
                            throttle=throttle)
        await server.start()
        env = Env(server, ev, directory)
        envs.append(env)
        return env

    yield make
    for env in envs:
        await env.close()


@pytest.fixture
async def env(make_env: MakeEnv) -> Env:
    return await make_env()


__all__ = ["Env", "INSECURE", "SECRET_HASH", "basic"]
