"""`ocpp` library client charge points (both versions) that answer the CSMS's commands and record them."""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call_result as r16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call_result as r201


class Recording:
    """What the client received; `answers` overrides the status word per action; `delay_s` slows answers."""

    received: list[tuple[str, dict[str, Any]]]
    answers: dict[str, str]
    delay_s: float

    def _setup(self) -> None:
        self.received, self.answers, self.delay_s = [], {}, 0.0

    async def _got(self, action: str, kw: dict[str, Any], default: str = "Accepted") -> str:
        self.received.append((action, kw))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self.answers.get(action, default)

    def got(self, action: str) -> list[dict[str, Any]]:
        return [kw for a, kw in self.received if a == action]


class V16Client(Recording, Cp16):
    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self._setup()
        self.config = {"HeartbeatInterval": "300", "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
                       "SupportedFeatureProfiles": "Core,SmartCharging"}

    @on("RemoteStartTransaction")
    async def on_rst(self, **kw: Any) -> Any:
        return r16.RemoteStartTransaction(status=await self._got("RemoteStartTransaction", kw))

    @on("RemoteStopTransaction")
    async def on_rsp(self, **kw: Any) -> Any:
        return r16.RemoteStopTransaction(status=await self._got("RemoteStopTransaction", kw))

    @on("SetChargingProfile")
    async def on_scp(self, **kw: Any) -> Any:
        return r16.SetChargingProfile(status=await self._got("SetChargingProfile", kw))

    @on("ClearChargingProfile")
    async def on_ccp(self, **kw: Any) -> Any:
        return r16.ClearChargingProfile(status=await self._got("ClearChargingProfile", kw))

    @on("GetCompositeSchedule")
    async def on_gcs(self, **kw: Any) -> Any:
        status = await self._got("GetCompositeSchedule", kw)
        return r16.GetCompositeSchedule(status=status, connector_id=kw["connector_id"],
                                        schedule_start="2026-11-27T05:00:00Z", charging_schedule={
                                            "chargingRateUnit": "A", "duration": kw["duration"],
                                            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]})

    @on("ChangeAvailability")
    async def on_ca(self, **kw: Any) -> Any:
        return r16.ChangeAvailability(status=await self._got("ChangeAvailability", kw))

    @on("Reset")
    async def on_reset(self, **kw: Any) -> Any:
        return r16.Reset(status=await self._got("Reset", kw))

    @on("UnlockConnector")
    async def on_unlock(self, **kw: Any) -> Any:
        return r16.UnlockConnector(status=await self._got("UnlockConnector", kw, "Unlocked"))

    @on("ReserveNow")
    async def on_reserve(self, **kw: Any) -> Any:
        return r16.ReserveNow(status=await self._got("ReserveNow", kw))

    @on("CancelReservation")
    async def on_cancel(self, **kw: Any) -> Any:
        return r16.CancelReservation(status=await self._got("CancelReservation", kw))

    @on("TriggerMessage")
    async def on_trigger(self, **kw: Any) -> Any:
        return r16.TriggerMessage(status=await self._got("TriggerMessage", kw))

    @on("GetConfiguration")
    async def on_getconf(self, **kw: Any) -> Any:
        await self._got("GetConfiguration", kw)
        keys = kw.get("key") or list(self.config)
        return r16.GetConfiguration(
            configuration_key=[{"key": k, "readonly": False, "value": self.config[k]} for k in keys if k in self.config],
            unknown_key=[k for k in keys if k not in self.config] or None)

    @on("ChangeConfiguration")
    async def on_changeconf(self, **kw: Any) -> Any:
        return r16.ChangeConfiguration(status=await self._got("ChangeConfiguration", kw))


class V201Client(Recording, Cp201):
    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self._setup()
        self.variables = {("OCPPCommCtrlr", "HeartbeatInterval"): "300", ("SmartChargingCtrlr", "RateUnit"): "A,W"}

    @on("RequestStartTransaction")
    async def on_rst(self, **kw: Any) -> Any:
        return r201.RequestStartTransaction(status=await self._got("RequestStartTransaction", kw))

    @on("RequestStopTransaction")
    async def on_rsp(self, **kw: Any) -> Any:
        return r201.RequestStopTransaction(status=await self._got("RequestStopTransaction", kw))

    @on("SetChargingProfile")
    async def on_scp(self, **kw: Any) -> Any:
        return r201.SetChargingProfile(status=await self._got("SetChargingProfile", kw))

    @on("ClearChargingProfile")
    async def on_ccp(self, **kw: Any) -> Any:
        return r201.ClearChargingProfile(status=await self._got("ClearChargingProfile", kw))

    @on("GetCompositeSchedule")
    async def on_gcs(self, **kw: Any) -> Any:
        status = await self._got("GetCompositeSchedule", kw)
        return r201.GetCompositeSchedule(status=status, schedule={
            "evseId": kw["evse_id"], "duration": kw["duration"], "scheduleStart": "2026-11-27T05:00:00Z",
            "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.0}]})

    @on("ChangeAvailability")
    async def on_ca(self, **kw: Any) -> Any:
        return r201.ChangeAvailability(status=await self._got("ChangeAvailability", kw))

    @on("Reset")
    async def on_reset(self, **kw: Any) -> Any:
        return r201.Reset(status=await self._got("Reset", kw))

    @on("UnlockConnector")
    async def on_unlock(self, **kw: Any) -> Any:
        return r201.UnlockConnector(status=await self._got("UnlockConnector", kw, "Unlocked"))

    @on("ReserveNow")
    async def on_reserve(self, **kw: Any) -> Any:
        return r201.ReserveNow(status=await self._got("ReserveNow", kw))

    @on("CancelReservation")
    async def on_cancel(self, **kw: Any) -> Any:
        return r201.CancelReservation(status=await self._got("CancelReservation", kw))

    @on("TriggerMessage")
    async def on_trigger(self, **kw: Any) -> Any:
        return r201.TriggerMessage(status=await self._got("TriggerMessage", kw))

    @on("GetVariables")
    async def on_getvars(self, get_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        await self._got("GetVariables", {"get_variable_data": get_variable_data, **kw})
        out = []
        for d in get_variable_data:
            key = (d["component"]["name"], d["variable"]["name"])
            value = self.variables.get(key)
            res: dict[str, Any] = {"attributeStatus": "Accepted" if value is not None else "UnknownVariable",
                                   "component": {"name": key[0]}, "variable": {"name": key[1]}}
            if value is not None:
                res["attributeValue"] = value
            out.append(res)
        return r201.GetVariables(get_variable_result=out)

    @on("SetVariables")
    async def on_setvars(self, set_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        status = await self._got("SetVariables", {"set_variable_data": set_variable_data, **kw})
        d = set_variable_data[0]
        return r201.SetVariables(set_variable_result=[{
            "attributeStatus": status, "component": {"name": d["component"]["name"]},
            "variable": {"name": d["variable"]["name"]}}])
