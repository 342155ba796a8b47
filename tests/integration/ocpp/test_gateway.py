"""Gateway commands over real websockets: round trips to `ocpp` client charge points of both versions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from ocpp.v16 import call as c16
from ocpp.v201 import call as c201

from csms.domain import commands as cmd
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
    assert (await gw.send("CP1", cmd.RemoteStart(1, "TAG", 5))).accepted
    assert cp.got("RemoteStartTransaction") == [{"id_tag": "TAG", "connector_id": 1}]
    assert (await gw.send("CP1", cmd.RemoteStop("101"))).accepted
    assert cp.got("RemoteStopTransaction") == [{"transaction_id": 101}]
    assert (await gw.send("CP1", cmd.SetChargingProfile(1, PROFILE))).accepted
    sched = cp.got("SetChargingProfile")[0]["cs_charging_profiles"]["charging_schedule"]
    assert [float(p["limit"]) for p in sched["charging_schedule_period"]] == [16.0, 7.6]
    assert (await gw.send("CP1", cmd.ClearChargingProfile(9))).accepted
    comp = await gw.send("CP1", cmd.GetCompositeSchedule(1, 3600, "A"))
    assert comp.accepted and comp.data["periods"][0]["limit"] == 16.0
    assert (await gw.send("CP1", cmd.ChangeAvailability(None, False))).accepted
    assert cp.got("ChangeAvailability") == [{"connector_id": 0, "type": "Inoperative"}]
    assert (await gw.send("CP1", cmd.Reset(hard=True))).accepted and cp.got("Reset") == [{"type": "Hard"}]
    assert (await gw.send("CP1", cmd.UnlockConnector(EvseRef(1, 1)))).status == "Unlocked"
    assert (await gw.send("CP1", cmd.ReserveNow(3, None, "TAG", T0))).accepted
    assert cp.got("ReserveNow")[0]["connector_id"] == 0
    assert (await gw.send("CP1", cmd.CancelReservation(3))).accepted
    assert (await gw.send("CP1", cmd.TriggerMessage("StatusNotification", 1))).accepted
    conf = await gw.send("CP1", cmd.GetConfiguration(("HeartbeatInterval", "Nope")))
    assert conf.data["values"] == {"HeartbeatInterval": "300"} and conf.data["unknown"] == ["Nope"]
    assert (await gw.send("CP1", cmd.ChangeConfiguration("HeartbeatInterval", "60"))).accepted
    raw = await gw.send("CP1", cmd.RawCall("TriggerMessage", {"requestedMessage": "Heartbeat"}))
    assert raw.accepted and raw.data == {"status": "Accepted"}


async def test_commands_round_trip_v201(env: Env) -> None:
    cp = await connected(env, "CP2", "2.0.1")
    gw = env.server.registry
    assert (await gw.send("CP2", cmd.RemoteStart(1, "TAG", 5))).accepted
    assert cp.got("RequestStartTransaction") == [{"id_token": {"id_token": "TAG", "type": "ISO14443"},
                                                   "remote_start_id": 5, "evse_id": 1}]
    assert (await gw.send("CP2", cmd.RemoteStop("T-1"))).accepted
    assert (await gw.send("CP2", cmd.SetChargingProfile(1, PROFILE))).accepted
    prof = cp.got("SetChargingProfile")[0]["charging_profile"]
    assert isinstance(prof["charging_schedule"], list)
    assert (await gw.send("CP2", cmd.ClearChargingProfile(None, 1, "TxDefaultProfile"))).accepted
    comp = await gw.send("CP2", cmd.GetCompositeSchedule(1, 600))
    assert comp.data["unit"] == "W" and comp.data["periods"][0]["limit"] == 7400.0
    assert (await gw.send("CP2", cmd.ChangeAvailability(1, True))).accepted
    assert (await gw.send("CP2", cmd.Reset())).accepted and cp.got("Reset") == [{"type": "OnIdle"}]
    assert (await gw.send("CP2", cmd.UnlockConnector(EvseRef(1, 1)))).status == "Unlocked"
    assert (await gw.send("CP2", cmd.ReserveNow(4, 1, "TAG", T0))).accepted
    assert cp.got("ReserveNow")[0]["id_token"] == {"id_token": "TAG", "type": "ISO14443"}
    assert (await gw.send("CP2", cmd.CancelReservation(4))).accepted
    assert (await gw.send("CP2", cmd.TriggerMessage("DiagnosticsStatusNotification"))).accepted
    assert cp.got("TriggerMessage") == [{"requested_message": "LogStatusNotification"}]
    conf = await gw.send("CP2", cmd.GetConfiguration(("HeartbeatInterval", "SmartChargingCtrlr.RateUnit", "x")))
    assert conf.data["values"] == {"HeartbeatInterval": "300", "SmartChargingCtrlr.RateUnit": "A,W"}
    assert conf.data["unknown"] == ["x"]
    assert (await gw.send("CP2", cmd.ChangeConfiguration("MeterValueSampleInterval", "60"))).accepted
    setvar = cp.got("SetVariables")[0]["set_variable_data"][0]
    assert (setvar["component"]["name"], setvar["variable"]["name"]) == ("SampledDataCtrlr", "TxUpdatedInterval")
    assert (await gw.send("CP2", cmd.ChangeConfiguration("nonsense", "1"))).status == "NotSupported"


@pytest.mark.parametrize("version, action, command", [
    ("1.6", "RemoteStartTransaction", "remote_start"),
    ("2.0.1", "RequestStartTransaction", "remote_start"),
])
async def test_rejected(env: Env, version: str, action: str, command: str) -> None:
    cp = await connected(env, "CP1", version)
    cp.answers[action] = "Rejected"
    res = await env.server.registry.send("CP1", cmd.RemoteStart(1, "TAG", 1))
    assert res.status == "Rejected" and not res.accepted


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_timeout_then_the_next_command_still_works(make_env: MakeEnv, version: str) -> None:
    env = await make_env(response_timeout_s=0.2)
    cp = await connected(env, "CP1", version)
    cp.delay_s = 0.5
    res = await env.server.registry.send("CP1", cmd.Reset())
    assert res.status == "Timeout" and "0.2" in (res.detail or "")
    cp.delay_s = 0.0
    await asyncio.sleep(0.4)  # the late answer arrives and is dropped
    assert (await env.server.registry.send("CP1", cmd.Reset())).accepted


async def test_offline(env: Env) -> None:
    res = await env.server.registry.send("GHOST", cmd.Reset())
    assert res.status == "Offline"
    assert not env.server.registry.is_connected("GHOST")


async def test_callerror_and_invalid_requests_are_errors(env: Env) -> None:
    from ocpp.v16 import ChargePoint as Plain16
    ws = await env.ws("CP1")
    plain = Plain16("CP1", ws)  # answers every command with NotImplemented
    task = asyncio.create_task(plain.start())
    await env.events.wait_for("connected")
    gw = env.server.registry
    res = await gw.send("CP1", cmd.Reset())
    assert res.status == "Error" and res.data["error_code"] == "NotImplemented" and "NotImplemented" in res.detail
    bad = await gw.send("CP1", cmd.RawCall("Reset", {"type": "Gentle"}))
    assert bad.status == "Error" and "invalid Reset request" in (bad.detail or "")
    assert (await gw.send("CP1", cmd.RemoteStop("not-an-int"))).status == "Error"
    task.cancel()


async def test_commands_queue_one_at_a_time(env: Env) -> None:
    cp = await connected(env, "CP1", "1.6")
    cp.delay_s = 0.05
    results = await asyncio.gather(*(env.server.registry.send("CP1", cmd.TriggerMessage("Heartbeat"))
                                     for _ in range(5)))
    assert all(r.accepted for r in results) and len(cp.got("TriggerMessage")) == 5


async def test_disconnect_while_waiting_is_offline(make_env: MakeEnv) -> None:
    env = await make_env(response_timeout_s=5)
    cp = await connected(env, "CP1", "1.6")
    cp.delay_s = 2
    pending = asyncio.create_task(env.server.registry.send("CP1", cmd.Reset()))
    await asyncio.sleep(0.1)
    await cp._connection.close()
    res = await asyncio.wait_for(pending, 2)
    assert res.status == "Offline"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_ready_handler_awaiting_a_command_does_not_deadlock(env: Env, version: str) -> None:
    gw = env.server.registry
    results = []

    async def on_ready(station_id: str) -> None:  # what the smart-charging service will do
        results.append(await gw.send(station_id, cmd.SetChargingProfile(1, PROFILE)))

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
    env.events.on_heartbeat = lambda sid: gw.send(sid, cmd.TriggerMessage("StatusNotification"))
    cp = await env.client("CP1", version)
    hb = c16.Heartbeat() if version == "1.6" else c201.Heartbeat()
    answer = await asyncio.wait_for(cp.call(hb, suppress=False), 3)
    assert answer.current_time.endswith("Z")
    assert len(cp.got("TriggerMessage")) == 1


def _boot(version: str, firmware: str) -> object:
    if version == "1.6":
        return c16.BootNotification(charge_point_vendor="V", charge_point_model="M", firmware_version=firmware)
    return c201.BootNotification(charging_station={"vendorName": "V", "model": "M", "firmwareVersion": firmware},
                                 reason="PowerUp")


async def _booted_and_ready(env: Env, version: str, firmware: str = "1.0") -> object:
    """A connection of CP1 that boots; returns it once the CSMS reported it ready (capabilities settled)."""
    before = len(env.events.named("ready"))
    cp = await env.client("CP1", version)
    await cp.call(_boot(version, firmware), suppress=False)
    await env.events.wait_for("ready", before + 1)
    return cp


def _asked(cp: object, version: str) -> int:
    return len(cp.got("GetConfiguration" if version == "1.6" else "GetVariables"))  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_reconnect_of_the_same_station_is_not_asked_its_capabilities_again(env: Env, version: str) -> None:
    # A boot storm after an outage: every charger reconnects and boots as what it was (issue 10).
    first = await _booted_and_ready(env, version)
    assert _asked(first, version) == 1
    await first._connection.close()  # type: ignore[attr-defined]
    await env.events.wait_for("disconnected")
    again = await _booted_and_ready(env, version)
    assert _asked(again, version) == 0  # what the first connection found still holds
    caps = env.server.registry.capabilities("CP1")
    assert caps.rate_units == frozenset({RateUnit.AMPS, RateUnit.WATTS})
    replacing = await _booted_and_ready(env, version)  # a new connection replacing the live one
    assert _asked(replacing, version) == 0


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_station_booting_with_other_firmware_is_asked_again(env: Env, version: str) -> None:
    first = await _booted_and_ready(env, version, firmware="1.0")
    await first._connection.close()  # type: ignore[attr-defined]
    await env.events.wait_for("disconnected")
    updated = await _booted_and_ready(env, version, firmware="2.0")
    assert _asked(updated, version) == 1


async def test_a_changed_configuration_is_asked_again(env: Env) -> None:
    first = await _booted_and_ready(env, "1.6")
    assert (await env.server.registry.send("CP1", cmd.ChangeConfiguration("ChargeProfileMaxStackLevel", "3"))).accepted
    await first._connection.close()  # type: ignore[attr-defined]
    await env.events.wait_for("disconnected")
    again = await _booted_and_ready(env, "1.6")
    assert _asked(again, "1.6") == 1


async def test_a_failed_discovery_is_not_remembered(env: Env) -> None:
    first = await env.client("CP1", "1.6")
    first.config = None  # type: ignore[attr-defined]  # its GetConfiguration handler fails: a CALLERROR
    await first.call(_boot("1.6", "1.0"), suppress=False)
    await env.events.wait_for("ready")
    await first._connection.close()
    await env.events.wait_for("disconnected")
    again = await _booted_and_ready(env, "1.6")
    assert _asked(again, "1.6") == 1
