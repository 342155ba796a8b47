"""The whole CSMS (CsmsApp, SQLite) with profiles from config.yaml: the simulator's chargers boot over wss://
with a password (profile 2) and with a client certificate (profile 3), on both OCPP versions; the same
chargers on ws:// are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms.app import CsmsApp
from csms.config import parse_config
from simulator.charger import Charger, ChargerConfig
from simulator.clock import SimClock

from .pki import TestCA


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_profiles_2_and_3_from_config(tmp_path: Path, version: str) -> None:
    ca = TestCA(tmp_path / "pki")
    srv = ca.issue("csms", server=True)
    cfg = parse_config(f"""
server:
  port: 0
  security_profile: 2
  tls: {{port: 0, cert_file: {srv.cert_file}, key_file: {srv.key_file}, ca_file: {ca.ca_file}}}
api: {{enabled: false}}
database: {{url: "sqlite+aiosqlite:///{tmp_path / 'csms.db'}"}}
sites: [{{id: default, grid_limit_kw: 50}}, {{id: mtls, grid_limit_kw: 50, security_profile: 3}}]
chargers:
  - {{id: PW-1, password: "0123456789abcdef"}}
  - {{id: CERT-1, site: mtls}}
""", env={})
    async with CsmsApp(cfg) as app:
        assert app.ocpp.tls_port is not None
        wss = f"wss://127.0.0.1:{app.ocpp.tls_port}/ocpp"
        by_password = Charger(ChargerConfig("PW-1", url=wss, protocol=version, password="0123456789abcdef",
                                            ssl_context=ca.client_context()), SimClock(speedup=1))
        by_cert = Charger(ChargerConfig("CERT-1", url=wss, protocol=version,
                                        ssl_context=ca.client_context(ca.issue("CERT-1"))), SimClock(speedup=1))
        async with by_password, by_cert:
            assert by_password.online and by_cert.online
            async with app.store.session() as s:
                assert {st.id: st.online for st in await s.stations()} == {"PW-1": True, "CERT-1": True}
        proto = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
        for ident in ("PW-1", "CERT-1"):  # the plain listener refuses them: their profile needs TLS
            with pytest.raises(InvalidStatus) as e:
                await connect(f"ws://127.0.0.1:{app.ocpp_port}/ocpp/{ident}", subprotocols=[proto],  # type: ignore[list-item]
                              open_timeout=3)
            assert e.value.response.status_code == 403
