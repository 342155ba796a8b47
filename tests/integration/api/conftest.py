"""The whole CSMS (CsmsApp) with its REST API on 127.0.0.1 ephemeral ports, API keys of every role, and
httpx clients per role talking real HTTP to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from csms.app import CsmsApp
from csms.config import Config, parse_config

ADMIN_KEY = "admin-key-0123456789abcdef"
OPERATOR_KEY = "operator-key-0123456789abc"
VIEWER_KEY = "viewer-key-0123456789abcde"
DRIVER_KEY = "driver-key-0123456789abcde"  # owns TAG-D only

BASE = """
server: {{port: 0, heartbeat_interval_s: 60, security_profile: 0}}
database: {{url: "{db_url}"}}
api:
  port: 0
  keys:
    root: {{key: {admin}, role: admin}}
    ops: {{key: {operator}, role: operator}}
    wall: {{key: {viewer}, role: viewer}}
    dana: {{key: {driver}, role: driver, id_tokens: [TAG-D]}}
smart_charging: {{debounce_s: 0.1}}
sites: [{{id: s1, grid_limit_kw: 50}}, {{id: s2, grid_limit_kw: 20}}]
chargers: [{{id: CP-1, site: s1}}, {{id: CP-2, site: s1}}, {{id: CP-3, site: s2}}]
groups: [{{name: fleet, priority: 2}}]
id_tokens: [{{value: TAG-D}}, {{value: TAG-X, group: fleet}}]
{extra}
"""


def api_config(db_url: str, extra: str = "", *, keys: bool = True) -> Config:
    text = BASE.format(db_url=db_url, admin=ADMIN_KEY, operator=OPERATOR_KEY, viewer=VIEWER_KEY,
                       driver=DRIVER_KEY, extra=extra)
    cfg = parse_config(text, env={})
    if not keys:
        cfg = cfg.model_copy(update={"api": cfg.api.model_copy(update={"keys": {}})})
    return cfg


@contextlib.asynccontextmanager
async def running(cfg: Config) -> AsyncIterator[CsmsApp]:
    app = CsmsApp(cfg)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def client(app: CsmsApp, key: str | None = ADMIN_KEY, **kw: Any) -> httpx.AsyncClient:
    headers = {"X-API-Key": key} if key else {}
    headers.update(kw.pop("headers", {}))
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}", headers=headers, timeout=10, **kw)


def error_of(r: httpx.Response) -> dict[str, str]:
    """The one error shape: {"error": {"code", "message"}}, JSON, with a readable message."""
    assert r.headers["content-type"].startswith("application/json"), r.text
    body = r.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[CsmsApp]:
    async with running(api_config(db_url)) as a:
        yield a


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
