"""End-to-end harness: the whole CSMS (CsmsApp) on 127.0.0.1 ephemeral ports, simulator chargers as clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
import yaml

from csms.app import CsmsApp
from csms.config import Config, parse_config
from simulator.charger import Charger, ChargerConfig
from simulator.clock import SimClock
from simulator.ev import EV, EVModel

logging.getLogger("ocpp").setLevel(logging.WARNING)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_config(db_url: str, extra: str = "", *, ocpp_port: int = 0, api: bool = False) -> Config:
    base = f"""
server: {{port: {ocpp_port}, heartbeat_interval_s: 60, security_profile: 0}}
api: {{enabled: {str(api).lower()}, port: 0}}
database: {{url: "{db_url}"}}
smart_charging: {{debounce_s: 0.1}}
"""
    # A section in `extra` replaces the base's (config files refuse a repeated key, so merge here).
    merged = {**yaml.safe_load(base), **(yaml.safe_load(extra) or {})}
    return parse_config(yaml.safe_dump(merged), env={})


@contextlib.asynccontextmanager
async def running(cfg: Config) -> AsyncIterator[CsmsApp]:
    app = CsmsApp(cfg)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def url_of(app: CsmsApp) -> str:
    return f"ws://127.0.0.1:{app.ocpp_port}{app.cfg.server.path_prefix}"


def charger(app_or_url: CsmsApp | str, ident: str, protocol: str, **kw: Any) -> Charger:
    url = app_or_url if isinstance(app_or_url, str) else url_of(app_or_url)
    kw.setdefault("meter_interval_s", 1)
    return Charger(ChargerConfig(ident, url=url, protocol=protocol, **kw), SimClock(start=None, speedup=1))


def ev(clock: SimClock, *, need_wh: float = 20_000, max_power_w: float = 22_000, hours: float = 4,
       soc: float = 0.2) -> EV:
    return EV(EVModel(capacity_wh=80_000, max_power_w=max_power_w, phases=3), soc=soc, energy_need_wh=need_wh,
              departure=clock.now() + timedelta(hours=hours))


async def eventually(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def protocols() -> tuple[str, str]:
    return ("1.6", "2.0.1")
