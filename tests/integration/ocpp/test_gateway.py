"""Gateway commands over real websockets: round trips to `ocpp` client charge points of both versions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from ocpp.v16 import call as c16
from ocpp.v201 import call as c201

from csms.domain.enums import ProfilePurpose, RateUnit
from csms.domain.ids import EvseRef
from csms.domain.model import ChargingProfile, SchedulePeriod

from .conftest import Env, MakeEnv

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
PROFILE = ChargingProfile(9, ProfilePurpose.TX_DEFAULT, 1, RateUnit.AMPS,
                          (SchedulePeriod(0, 16.04), SchedulePeriod(600, 7.56)), start=T0)


async def connected(env: Env, ident: str, version: str) -> object:
    before = len(env.events.named("connected"))
    cp = await env.client(ident, version)
    await env.events.wait_for("connected", before + 1)
    return cp


async def test_commands_round_trip_v16(env: Env) -> None:
    cp = await connected(env, "CP1", "1.6")
    gw = env.server.registry
    assert gw.is_connected("CP1") and gw.protocol("CP1") == "ocpp1.6"
    assert (await gw.remote_start("CP1", 1, "TAG", 5)).accepted
    assert cp.got("RemoteStartTransaction") == [{"id_tag": "TAG", "connector_id": 1}]
    assert (await gw.remote_stop("CP1", "101")).accepted
    assert cp.got("RemoteStopTransaction") == [{"transaction_id": 101}]
    assert (await gw.set_charging_profile("CP1", 1, PROFILE)).accepted
    sched = cp.got("SetChargingProfile")[0]["cs_charging_profiles"]["charging_schedule"]
    assert [float(p["limit"]) for p in sched["charging_schedule_period"]] == [16.0, 7.6]
    assert (await gw.clear_charging_profile("CP1", 9)).accepted
    comp = await gw.get_composite_schedule("CP1", 1, 3600, "A")
    assert comp.accepted and comp.data["periods"][0]["limit"] == 16.0
    assert (await gw.change_availability("CP1", None, False)).accepted
    assert cp.got("ChangeAvailability") == [{"connector_id": 0, "type": "Inoperative"}]
    assert (await gw.reset("CP1", hard=True)).accepted and cp.got("Reset") == [{"type": "Hard"}]
    assert (await gw.unlock_connector("CP1", EvseRef(1, 1))).status == "Unlocked"
    assert (await gw.reserve_now("CP1", 3, None, "TAG", T0)).accepted
    assert cp.got("ReserveNow")[0]["connector_id"] == 0
    assert (await gw.cancel_reservation("CP1", 3)).accepted
    assert (await gw.trigger_message("CP1", "StatusNotification", 1)).accepted
    conf = await gw.get_configuration("CP1", ["HeartbeatInterval", "Nope"])
    assert conf.data["values"] == {"HeartbeatInterval": "300"} and conf.data["unknown"] == ["Nope"]
    assert (await gw.change_configuration("CP1", "HeartbeatInterval", "60")).accepted
    raw = await gw.raw_call("CP1", "TriggerMessage", {"requestedMessage": "Heartbeat"})
    assert raw.accepted and raw.data == {"status": "Accepted"}


async def test_commands_round_trip_v201(env: Env) -> None:
    cp = await connected(env, "CP2", "2.0.1")
    gw = env.server.registry
    assert (await gw.remote_start("CP2", 1, "TAG", 5)).accepted
    assert cp.got("RequestStartTransaction") == [{"id_token": {"id_token": "TAG", "type": "ISO14443"},
                                                   "remote_start_id": 5, "evse_id": 1}]
    assert (await gw.remote_stop("CP2", "T-1")).accepted
    assert (await gw.set_charging_profile("CP2", 1, PROFILE)).accepted
    prof = cp.got("SetChargingProfile")[0]["charging_profile"]
    assert isinstance(prof["charging_schedule"], list)
    assert (await gw.clear_charging_profile("CP2", None, 1, "TxDefaultProfile")).accepted
    comp = await gw.get_composite_schedule("CP2", 1, 600)
    assert comp.data["unit"] == "W" and comp.data["periods"][0]["limit"] == 7400.0
    assert (await gw.change_availability("CP2", 1, True)).accepted
    assert (await gw.reset("CP2")).accepted and cp.got("Reset") == [{"type": "OnIdle"}]
    assert (await gw.unlock_connector("CP2", EvseRef(1, 1))).status == "Unlocked"
    assert (await gw.reserve_now("CP2", 4, 1, "TAG", T0)).accepted
    assert cp.got("ReserveNow")[0]["id_token"] == {"id_token": "TAG", "type": "ISO14443"}
    assert (await gw.cancel_reservation("CP2", 4)).accepted
    assert (await gw.trigger_message("CP2", "DiagnosticsStatusNotification")).accepted
    assert cp.got("TriggerMessage") == [{"requested_message": "LogStatusNotification"}]
    conf = await gw.get_configuration("CP2", ["HeartbeatInterval", "SmartChargingCtrlr.RateUnit", "x"])
    assert conf.data["values"] == {"HeartbeatInterval": "300", "SmartChargingCtrlr.RateUnit": "A,W"}
    assert conf.data["unknown"] == ["x"]
    assert (await gw.change_configuration("CP2", "MeterValueSampleInterval", "60")).accepted
    setvar = cp.got("SetVariables")[0]["set_variable_data"][0]
    assert (setvar["component"]["name"], setvar["variable"]["name"]) == ("SampledDataCtrlr", "TxUpdatedInterval")
    assert (await gw.change_configuration("CP2", "nonsense", "1")).status == "NotSupported"


@pytest.mark.parametrize("version, action, command", [
    ("1.6", "RemoteStartTransaction", "remote_start"),
    ("2.0.1", "RequestStartTransaction", "remote_start"),
])
async def test_rejected(env: Env, version: str, action: str, command: str) -> None:
    cp = await connected(env, "CP1", version)
    cp.answers[action] = "Rejected"
    res = await env.server.registry.remote_start("CP1", 1, "TAG", 1)
    assert res.status == "Rejected" and not res.accepted


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_timeout_then_the_next_command_still_works(make_env: MakeEnv, version: str) -> None:
    env = await make_env(response_timeout_s=0.2)
    cp = await connected(env, "CP1", version)
    cp.delay_s = 0.5
    res = await env.server.registry.reset("CP1")
    assert res.status == "Timeout" and "0.2" in (res.detail or "")
    cp.delay_s = 0.0
    await asyncio.sleep(0.4)  # the late answer arrives and is dropped
    assert (await env.server.registry.reset("CP1")).accepted


async def test_offline(env: Env) -> None:
    res = await env.server.registry.reset("GHOST")
    assert res.status == "Offline"
    assert not env.server.registry.is_connected("GHOST")


async def test_callerror_and_invalid_requests_are_errors(env: Env) -> None:
    from ocpp.v16 import ChargePoint as Plain16
    ws = await env.ws("CP1")
    plain = Plain16("CP1", ws)  # answers every command with NotImplemented
    task = asyncio.create_task(plain.start())
    await env.events.wait_for("connected")
    gw = env.server.registry
    res = await gw.reset("CP1")
    assert res.status == "Error" and res.data["error_code"] == "NotImplemented" and "NotImplemented" in res.detail
    bad = await gw.raw_call("CP1", "Reset", {"type": "Gentle"})
    assert bad.status == "Error" and "invalid Reset request" in (bad.detail or "")
    assert (await gw.remote_stop("CP1", "not-an-int")).status == "Error"
    task.cancel()


async def test_commands_queue_one_at_a_time(env: Env) -> None:
    cp = await connected(env, "CP1", "1.6")
    cp.delay_s = 0.05
    results = await asyncio.gather(*(env.server.registry.trigger_message("CP1", "Heartbeat") for _ in range(5)))
    assert all(r.accepted for r in results) and len(cp.got("TriggerMessage")) == 5


async def test_disconnect_while_waiting_is_offline(make_env: MakeEnv) -> None:
    env = await make_env(response_timeout_s=5)
    cp = await connected(env, "CP1", "1.6")
    cp.delay_s = 2
    pending = asyncio.create_task(env.server.registry.reset("CP1"))
    await asyncio.sleep(0.1)
    await cp._connection.close()
    res = await asyncio.wait_for(pending, 2)
    assert res.status == "Offline"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_ready_handler_awaiting_a_command_does_not_deadlock(env: Env, version: str) -> None:
    gw = env.server.registry
    results = []

    async def on_ready(station_id: str) -> None:  # what the smart-charging service will do
        results.append(await gw.set_charging_profile(station_id, 1, PROFILE))

    env.events.on_ready = on_ready
    cp = await env.client("CP1", version)
    boot = (c16.BootNotification(charge_point_vendor="V", charge_point_model="M") if version == "1.6" else
            c201.BootNotification(charging_station={"vendorName": "V", "model": "M"}, reason="PowerUp"))
    await cp.call(boot, suppress=False)
    await env.events.wait_for("ready")
    for _ in range(50):
        if results:
            break
        await asyncio.sleep(0.02)
    assert results and results[0].accepted
    caps = gw.capabilities("CP1")  # fetched before ready
    assert caps.rate_units == frozenset({RateUnit.AMPS, RateUnit.WATTS})


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_events_port_awaiting_a_command_inside_a_charger_call_does_not_deadlock(env: Env, version: str) -> None:
    gw = env.server.registry
    env.events.on_heartbeat = lambda sid: gw.trigger_message(sid, "StatusNotification")
    cp = await env.client("CP1", version)
    hb = c16.Heartbeat() if version == "1.6" else c201.Heartbeat()
    answer = await asyncio.wait_for(cp.call(hb, suppress=False), 3)
    assert answer.current_time.endswith("Z")
    assert len(cp.got("TriggerMessage")) == 1
