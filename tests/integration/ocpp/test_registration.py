"""Registration states hold (OCPP 2.0.1 B02/B03; 1.6 the same way): until a BootNotification is answered
Accepted, every other message gets CALLERROR SecurityError; an operator accepting a Pending charger sends it
TriggerMessage(BootNotification); config.yaml never overrides a state the operator set."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from ocpp.v16 import call as c16
from ocpp.v201 import call as c201
from websockets.asyncio.client import connect

from csms.app import CsmsApp
from csms.config import parse_config
from csms.domain.enums import RegistrationStatus
from csms.domain.ports import StationAccess
from csms.services.provisioning import seed_from_config

from .clients import V16Client, V201Client
from .conftest import Env, MakeEnv

BOOT = {"1.6": '[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]',
        "2.0.1": '[2,"b1","BootNotification",{"chargingStation":{"vendorName":"V","model":"M"},"reason":"PowerUp"}]'}
STATUS = {"1.6": '[2,"s1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]',
          "2.0.1": '[2,"s1","StatusNotification",{"timestamp":"2026-01-01T00:00:00Z","connectorStatus":"Available",'
                   '"evseId":1,"connectorId":1}]'}
PROTO = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}


async def exchange(ws, frame: str) -> list[object]:  # type: ignore[no-untyped-def]
    """Send a CALL, return its answer (the CSMS's own CALLs meanwhile, e.g. after an Accepted boot, skipped)."""
    await ws.send(frame)
    uid = json.loads(frame)[1]
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 3))
        if msg[0] != 2 and msg[1] == uid:
            return msg  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("state", [RegistrationStatus.PENDING, RegistrationStatus.REJECTED])
async def test_nothing_but_boot_counts_until_accepted(env: Env, version: str, state: RegistrationStatus) -> None:
    env.events.boot_status = state
    ws = await env.ws("CP1", [PROTO[version]])
    boot = await exchange(ws, BOOT[version])
    assert boot[0] == 3 and boot[2]["status"] == state.value
    for frame in (STATUS[version], '[2,"h1","Heartbeat",{}]'):
        err = await exchange(ws, frame)
        assert err[0] == 4 and err[2] == "SecurityError" and "registration is" in err[3]
    assert env.events.named("status_changed") == [] and env.events.named("heartbeat") == []
    env.events.boot_status = RegistrationStatus.ACCEPTED  # the operator accepted it; it boots again
    assert (await exchange(ws, BOOT[version]))[2]["status"] == "Accepted"
    assert (await exchange(ws, STATUS[version]))[0] == 3
    assert len(env.events.named("status_changed")) == 1


@pytest.mark.parametrize("state", [RegistrationStatus.PENDING, RegistrationStatus.REJECTED])
async def test_a_known_unaccepted_station_cannot_skip_the_boot(make_env: MakeEnv, state: RegistrationStatus) -> None:
    env = await make_env(stations={"CP1": StationAccess(True, security_profile=0, registration=state)},
                         ready_grace_s=0.05)
    ws = await env.ws("CP1", ["ocpp2.0.1"])
    assert (await exchange(ws, STATUS["2.0.1"]))[2] == "SecurityError"
    await asyncio.sleep(0.1)
    assert env.events.named("ready") == []  # no profiles or capability requests for it either


def app_config(tmp_path: Path, chargers: str = "[]"):  # type: ignore[no-untyped-def]
    return parse_config(f"""
server: {{port: 0, allow_unknown_chargers: true, pending_interval_s: 7, heartbeat_interval_s: 120}}
api: {{port: 0}}
database: {{url: "sqlite+aiosqlite:///{tmp_path / 'csms.db'}"}}
chargers: {chargers}
""", env={})


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_accepting_a_pending_charger_triggers_its_boot(tmp_path: Path, version: str) -> None:
    async with CsmsApp(app_config(tmp_path)) as app:
        ws = await connect(f"ws://127.0.0.1:{app.ocpp_port}/ocpp/NEW-1", subprotocols=[PROTO[version]],  # type: ignore[list-item]
                           open_timeout=3)
        cp = (V16Client if version == "1.6" else V201Client)("NEW-1", ws, response_timeout=5)
        task = asyncio.create_task(cp.start())
        try:
            if version == "1.6":
                res = await cp.call(c16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
            else:
                res = await cp.call(c201.BootNotification(charging_station={"vendor_name": "V", "model": "M"},
                                                          reason="PowerUp"))
            assert (res.status, res.interval) == ("Pending", 7)  # the short Pending interval
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}") as api:
                r = await api.patch("/api/v1/stations/NEW-1", json={"registration": "Accepted"})
                assert r.status_code == 200 and r.json()["registration"] == "Accepted"
            for _ in range(100):
                if cp.got("TriggerMessage"):
                    break
                await asyncio.sleep(0.02)
            key = "requested_message"
            assert cp.got("TriggerMessage") == [{key: "BootNotification"}]
        finally:
            task.cancel()
            await ws.close()


async def test_config_never_overrides_the_operators_registration(tmp_path: Path) -> None:
    cfg = app_config(tmp_path, '[{id: CP-9, security_profile: 0}]')
    async with CsmsApp(cfg) as app:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}") as api:
            assert (await api.patch("/api/v1/stations/CP-9", json={"registration": "Pending"})).status_code == 200
        await seed_from_config(app.store, cfg)  # what a reload or the next start does
        async with app.store.session() as s:
            assert (await s.station("CP-9")).registration is RegistrationStatus.PENDING
    async with CsmsApp(cfg) as app:  # a restart
        async with app.store.session() as s:
            assert (await s.station("CP-9")).registration is RegistrationStatus.PENDING


async def test_config_listing_accepts_a_charger_that_registered_itself(tmp_path: Path) -> None:
    async with CsmsApp(app_config(tmp_path)) as app:
        ws = await connect(f"ws://127.0.0.1:{app.ocpp_port}/ocpp/SELF-1", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           open_timeout=3)
        assert (await exchange(ws, BOOT["1.6"]))[2]["status"] == "Pending"
        await ws.close()
        cfg = app_config(tmp_path, '[{id: SELF-1, security_profile: 0}]')
        await seed_from_config(app.store, cfg)
        async with app.store.session() as s:
            assert (await s.station("SELF-1")).registration is RegistrationStatus.ACCEPTED


async def test_remote_start_sends_the_configured_token_type(tmp_path: Path) -> None:
    cfg = parse_config(f"""
server: {{port: 0, security_profile: 0}}
api: {{port: 0}}
database: {{url: "sqlite+aiosqlite:///{tmp_path / 'csms.db'}"}}
chargers: [{{id: CP-T}}]
id_tokens: [{{value: APP-1, type: Central}}]
""", env={})
    async with CsmsApp(cfg) as app:
        ws = await connect(f"ws://127.0.0.1:{app.ocpp_port}/ocpp/CP-T", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                           open_timeout=3)
        cp = V201Client("CP-T", ws, response_timeout=5)
        task = asyncio.create_task(cp.start())
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}") as api:
                for token, kind in (("APP-1", "Central"), ("NOT-KNOWN", "ISO14443")):
                    r = await api.post("/api/v1/stations/CP-T/commands/remote-start", json={"id_token": token, "evse_id": 1})
                    assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
                    assert cp.got("RequestStartTransaction")[-1]["id_token"] == {"id_token": token, "type": kind}
        finally:
            task.cancel()
            await ws.close()
