"""REST API hardening: request-size limit (declared and streamed bodies), CORS settings, the startup warning
when no API keys are configured."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from csms.config import parse_config

from .conftest import ADMIN_KEY, client, error_of, running


def config(tmp_path: Path, api_extra: str = "", keys: bool = True):  # type: ignore[no-untyped-def]
    key_text = f"keys: {{root: {{key: {ADMIN_KEY}, role: admin}}}}, " if keys else ""
    return parse_config(f"""
server: {{port: 0}}
database: {{url: "sqlite+aiosqlite:///{tmp_path / 'csms.db'}"}}
api: {{port: 0, {key_text}max_body_bytes: 2048 {api_extra}}}
""", env={})


async def test_oversized_bodies_are_413_before_the_route(tmp_path: Path) -> None:
    async with running(config(tmp_path)) as app, client(app) as c:
        big = {"id": "BIG", "security_profile": 0, "password": "p" * 5000}
        r = await c.post("/api/v1/stations", json=big)
        assert r.status_code == 413 and "2048 bytes" in error_of(r)["message"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            yield b'{"id": "BIG", "security_profile": 0, "password": "'
            for _ in range(10):
                yield b"p" * 1000
            yield b'"}'

        r = await c.post("/api/v1/stations", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and error_of(r)["code"] == "payload_too_large"
        r = await c.post("/api/v1/stations", json={"id": "SMALL", "security_profile": 0})
        assert r.status_code == 201
        assert [s["id"] for s in (await c.get("/api/v1/stations")).json()["items"]] == ["SMALL"]


async def test_no_cors_headers_unless_configured(tmp_path: Path) -> None:
    async with running(config(tmp_path)) as app, client(app) as c:
        r = await c.get("/api/v1/stations", headers={"Origin": "https://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


async def test_cors_allows_only_the_configured_origins(tmp_path: Path) -> None:
    cfg = config(tmp_path, ', cors_origins: ["https://ops.example.com"]')
    async with running(cfg) as app, client(app) as c:
        r = await c.get("/api/v1/stations", headers={"Origin": "https://ops.example.com"})
        assert r.headers["access-control-allow-origin"] == "https://ops.example.com"
        r = await c.get("/api/v1/stations", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        pre = await c.options("/api/v1/stations", headers={
            "Origin": "https://ops.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-API-Key, Content-Type"})
        assert pre.status_code == 200 and "x-api-key" in pre.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("keys", [False, True])
async def test_startup_warns_when_the_api_has_no_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                      keys: bool) -> None:
    with caplog.at_level(logging.WARNING, logger="csms.app"):
        async with running(config(tmp_path, keys=keys)):
            pass
    warned = [r for r in caplog.records if "no keys configured" in r.getMessage()]
    assert bool(warned) is not keys
