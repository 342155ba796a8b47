"""Stations registered through the API follow config.yaml's security rules: a password unless the profile
is 0 (explicitly none) or 3 (client certificate), and the profile decides the handshake."""

from __future__ import annotations

from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms.config import parse_config

from .conftest import ADMIN_KEY, client, error_of, running


def secure_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_config(f"""
server: {{port: 0}}
database: {{url: "sqlite+aiosqlite:///{tmp_path / 'csms.db'}"}}
api: {{port: 0, keys: {{root: {{key: {ADMIN_KEY}, role: admin}}}}}}
""", env={})


async def handshake_status(port: int, ident: str, headers: dict[str, str] | None = None) -> int:
    try:
        ws = await connect(f"ws://127.0.0.1:{port}/ocpp/{ident}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers=headers, open_timeout=3)
    except InvalidStatus as e:
        return e.response.status_code
    await ws.close()
    return 101


async def test_api_station_needs_a_password_unless_profile_0(tmp_path: Path) -> None:
    async with running(secure_config(tmp_path)) as app, client(app) as c:
        r = await c.post("/api/v1/stations", json={"id": "NOPW"})
        assert r.status_code == 400 and "needs a password" in error_of(r)["message"]
        r = await c.post("/api/v1/stations", json={"id": "TLS", "security_profile": 2, "password": "p" * 16})
        assert r.status_code == 400 and "needs TLS" in error_of(r)["message"]
        r = await c.post("/api/v1/stations", json={"id": "BIG", "password": "p" * 129})
        assert r.status_code == 422
        assert (await c.post("/api/v1/stations", json={"id": "PW", "password": "p" * 16})).status_code == 201
        assert (await c.post("/api/v1/stations", json={"id": "OPEN", "security_profile": 0})).status_code == 201
        assert await handshake_status(app.ocpp_port, "PW") == 401
        assert await handshake_status(app.ocpp_port, "OPEN") == 101
        # Dropping to profile 1 needs a password; giving one makes it so.
        r = await c.patch("/api/v1/stations/OPEN", json={"security_profile": 1})
        assert r.status_code == 400
        r = await c.patch("/api/v1/stations/OPEN", json={"security_profile": 1, "password": "q" * 16})
        assert r.status_code == 200
        assert await handshake_status(app.ocpp_port, "OPEN") == 401


async def test_patch_password_keeps_profile(tmp_path: Path) -> None:
    async with running(secure_config(tmp_path)) as app, client(app) as c:
        assert (await c.post("/api/v1/stations", json={"id": "PW", "password": "p" * 16})).status_code == 201
        assert (await c.patch("/api/v1/stations/PW", json={"password": "n" * 16})).status_code == 200
        async with app.store.session() as s:
            access = await s.station_access("PW")
            assert access is not None and access.security_profile == 1
