"""Foundation end to end: simulator chargers of both versions against the whole CSMS over real websockets.

Each test asserts what the charger was answered and what the database holds afterwards.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from csms.domain.enums import ChargingState, ConnectorStatus, RegistrationStatus

from .conftest import charger, ev, eventually, free_port, make_config, running

TOKENS = """
groups: [{name: fleet, priority: 3}]
id_tokens: [{value: TAG-OK, group: fleet}, {value: TAG-BLOCKED, status: Blocked}]
"""


def site_and(ids: list[str], limit_kw: float = 200) -> str:
    chargers = ", ".join(f"{{id: {i}, site: s1}}" for i in ids)
    return f"sites: [{{id: s1, grid_limit_kw: {limit_kw}}}]\nchargers: [{chargers}]\n{TOKENS}"


@pytest.mark.parametrize("protocol", ["1.6", "2.0.1"])
async def test_full_session(db_url: str, protocol: str) -> None:
    cfg = make_config(db_url, site_and(["CP-1"]))
    async with running(cfg) as app:
        cp = charger(app, "CP-1", protocol)
        await cp.connect(timeout=10)
        await cp.plug_in(ev(cp.clock), "TAG-OK")
        tx_id = await cp.start_charging()
        assert tx_id
        # the site has room: the plan gives the full 32 A, and energy flows
        await eventually(lambda: cp.power_w > 20_000, what="charging at full power")
        await eventually(lambda: cp.energy_wh > 10, what="energy metered")
        await asyncio.sleep(1.5)  # at least one more MeterValues
        await cp.stop("Local")
        await cp.unplug()
        await cp.flush()
        async with app.store.session() as s:
            await eventually(lambda: _ended(app, "CP-1"), what="transaction ended in the database")
            station = await s.station("CP-1")
            txs = await s.transactions(station_id="CP-1")
            samples = await s.samples(txs[0].key)
            history = await s.status_history("CP-1")
        await cp.close()
    assert station is not None and station.registration is RegistrationStatus.ACCEPTED
    assert station.info is not None and station.info.vendor and station.info.model
    assert station.protocol is not None and station.protocol.value == f"ocpp{protocol}"
    [tx] = txs
    assert tx.charger_tx_id == str(tx_id)
    assert tx.id_token == "TAG-OK" and tx.group == "fleet"
    assert tx.ended_at is not None and tx.stop_reason == "Local"
    assert tx.energy_wh == pytest.approx(cp.energy_wh, abs=25)  # the last register sent vs the EV's total
    assert tx.energy_wh > 10
    measurands = {r.measurand for r in samples}
    assert {"Energy.Active.Import.Register", "Power.Active.Import"} <= measurands
    statuses = [h.status for h in reversed(history) if h.evse_id == 1]
    assert ConnectorStatus.OCCUPIED.value in statuses and statuses[-1] == ConnectorStatus.AVAILABLE.value
    # what the charger was told
    assert cp.registration_status == "Accepted"
    assert cp.recorder.received("SetChargingProfile")


async def _ended(app, station_id: str) -> bool:  # type: ignore[no-untyped-def]
    async with app.store.session() as s:
        txs = await s.transactions(station_id=station_id)
    return bool(txs) and txs[0].ended_at is not None


async def test_blocked_and_unknown_tokens_are_refused(sqlite_url: str) -> None:
    async with running(make_config(sqlite_url, site_and(["CP-1", "CP-2"]))) as app:
        for ident, protocol in (("CP-1", "1.6"), ("CP-2", "2.0.1")):
            cp = charger(app, ident, protocol)
            await cp.connect(timeout=10)
            for token in ("TAG-BLOCKED", "NOBODY"):
                assert (await app.charging.authorize(ident, token)).status.value in ("Blocked", "Invalid")
                await cp.plug_in(ev(cp.clock), token)
                from simulator.charger import AuthorizationRejected

                with pytest.raises(AuthorizationRejected):
                    await cp.start_charging()
                await cp.unplug()
            await cp.close()
        async with app.store.session() as s:
            assert await s.transactions() == []


async def test_both_versions_produce_the_same_records(sqlite_url: str) -> None:
    async with running(make_config(sqlite_url, site_and(["V16", "V201"]))) as app:
        cps = [charger(app, "V16", "1.6"), charger(app, "V201", "2.0.1")]
        for cp in cps:
            await cp.connect(timeout=10)
            await cp.plug_in(ev(cp.clock), "TAG-OK")
            await cp.start_charging()
        await eventually(lambda: all(cp.energy_wh > 5 for cp in cps), what="both charging")
        for cp in cps:
            await cp.stop("Local")
            await cp.unplug()
            await cp.flush()
        await eventually(lambda: _ended(app, "V16"), what="1.6 ended")
        await eventually(lambda: _ended(app, "V201"), what="2.0.1 ended")
        async with app.store.session() as s:
            a = (await s.transactions(station_id="V16"))[0]
            b = (await s.transactions(station_id="V201"))[0]
            ha = [(h.evse_id, h.status) for h in await s.status_history("V16") if h.evse_id]
            hb = [(h.evse_id, h.status) for h in await s.status_history("V201") if h.evse_id]
        for cp in cps:
            await cp.close()
    for field in ("evse", "id_token", "group", "stop_reason"):
        assert getattr(a, field) == getattr(b, field), field
    assert a.meter_start_wh == b.meter_start_wh == 0
    assert a.charging_state == b.charging_state == ChargingState.IDLE
    # Same connector statuses in the same order (1.6 Preparing/Charging/Finishing all map to Occupied).
    assert _dedupe(ha) == _dedupe(hb)


def _dedupe(seq: list[tuple[int, str]]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for x in seq:
        if not out or out[-1] != x:
            out.append(x)
    return out


@pytest.mark.parametrize("protocol", ["1.6", "2.0.1"])
async def test_restart_mid_transaction_continues_it(sqlite_url: str, protocol: str) -> None:
    port = free_port()
    cfg = make_config(sqlite_url, site_and(["CP-R"]), ocpp_port=port)
    cp = None
    async with running(cfg) as app:
        cp = charger(app, "CP-R", protocol, reconnect_initial_real_s=0.2, reconnect_max_real_s=0.5)
        await cp.connect(timeout=10)
        await cp.plug_in(ev(cp.clock), "TAG-OK")
        tx_id = await cp.start_charging()
        await eventually(lambda: cp.energy_wh > 5, what="charging before restart")
    # CSMS is down; the charger keeps charging on its profile and reconnects when the CSMS is back.
    await asyncio.sleep(0.5)
    async with running(cfg) as app2:
        await eventually(lambda: app2.gateway.is_connected("CP-R"), timeout=15, what="charger reconnected")
        async with app2.store.session() as s:
            active = await s.active_transactions("CP-R")
        assert [t.charger_tx_id for t in active] == [str(tx_id)]
        await asyncio.sleep(1.2)  # meter values after the restart land on the same transaction
        await cp.stop("Local")
        await cp.unplug()
        await cp.flush()
        await eventually(lambda: _ended(app2, "CP-R"), what="ended after restart")
        async with app2.store.session() as s:
            txs = await s.transactions(station_id="CP-R")
        await cp.close()
    assert len(txs) == 1 and txs[0].charger_tx_id == str(tx_id)
    assert txs[0].energy_wh == pytest.approx(cp.energy_wh, abs=25)


@pytest.mark.parametrize("protocol, bad_json_code", [("1.6", "FormationViolation"), ("2.0.1", "FormatViolation")])
async def test_malformed_frames_get_callerror_and_connection_survives(sqlite_url: str, protocol: str,
                                                                      bad_json_code: str) -> None:
    async with running(make_config(sqlite_url, site_and(["CP-M"]))) as app:
        async with websockets.connect(f"ws://127.0.0.1:{app.ocpp_port}/ocpp/CP-M",
                                      subprotocols=[f"ocpp{protocol}"]) as ws:
            await ws.send('[2, "m-1", "Heartbeat", {')  # unparsable JSON, id readable
            err = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert err[0] == 4 and err[1] == "m-1" and err[2] in (bad_json_code, "RpcFrameworkError")
            await ws.send(json.dumps([2, "m-2", "StatusNotification", {"connectorId": "one"}]))  # wrong type
            err = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert err[0] == 4 and err[1] == "m-2" and err[2] not in ("NotImplemented", "InternalError")
            await ws.send(json.dumps([2, "m-3", "NoSuchAction", {}]))
            err = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert err[:3] == [4, "m-3", "NotImplemented"] or err[:3] == [4, "m-3", "NotSupported"]
            await ws.send(json.dumps([2, "m-4", "Heartbeat", {}]))
            ok = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ok[0] == 3 and ok[1] == "m-4" and "currentTime" in ok[2]
