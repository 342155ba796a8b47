"""OCPP 2.0.1 client adapter: maps the neutral charger to ``ocpp.v201`` messages and answers CSMS calls.

Each EVSE has one connector (id 1). Transactions are TransactionEvent Started/Updated/Ended with a
per-transaction ``seqNo``; periodic meter values go in TransactionEvent Updated (MeterValuePeriodic).
The connector status (Available/Occupied/Reserved/Unavailable/Faulted) goes in StatusNotification,
charging-state changes in TransactionEvent Updated (ChargingStateChanged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from simulator import profiles as pf
from simulator.ev import amps_from_watts
from simulator.ocpp.base import AdapterBase, MeterSample, RecordingLinkMixin, ts
from simulator.station import Evse, Status, StatusChanged, Transaction

if TYPE_CHECKING:
    from simulator.charger import Charger

CONNECTOR_STATUS = {
    Status.AVAILABLE: "Available", Status.PREPARING: "Occupied", Status.CHARGING: "Occupied",
    Status.SUSPENDED_EV: "Occupied", Status.SUSPENDED_EVSE: "Occupied", Status.FINISHING: "Occupied",
    Status.RESERVED: "Reserved", Status.UNAVAILABLE: "Unavailable", Status.FAULTED: "Faulted",
}
CHARGING_STATE = {
    Status.CHARGING: "Charging", Status.SUSPENDED_EV: "SuspendedEV", Status.SUSPENDED_EVSE: "SuspendedEVSE",
    Status.PREPARING: "EVConnected", Status.FINISHING: "EVConnected",
}
# neutral (1.6-style) stop reason -> (2.0.1 stoppedReason, triggerReason)
STOP_REASONS = {
    "Local": ("Local", "StopAuthorized"),
    "Remote": ("Remote", "RemoteStop"),
    "EVDisconnected": ("EVDisconnected", "EVCommunicationLost"),
    "DeAuthorized": ("DeAuthorized", "Deauthorized"),
    "HardReset": ("ImmediateReset", "ResetCommand"),
    "SoftReset": ("ImmediateReset", "ResetCommand"),
    "Reboot": ("Reboot", "ResetCommand"),
    "PowerLoss": ("PowerLoss", "AbnormalCondition"),
    "EmergencyStop": ("EmergencyStop", "AbnormalCondition"),
    "UnlockCommand": ("Other", "UnlockCommand"),
    "EnergyLimitReached": ("EnergyLimitReached", "EnergyLimitReached"),
    "SOCLimitReached": ("SOCLimitReached", "EnergyLimitReached"),
    "StoppedByEV": ("StoppedByEV", "ChargingStateChanged"),
}


def sampled_values(s: MeterSample, context: str = "Sample.Periodic") -> list[dict[str, Any]]:
    """2.0.1 sampledValue list (numeric values, unitOfMeasure): energy register, power, current (phase-less:
    per phase of the car; then per phase L1..Ln of the EVSE, 0 A on phases the car does not use) and SoC."""
    vals: list[dict[str, Any]] = [
        {"value": round(s.energy_wh, 1), "context": context, "measurand": "Energy.Active.Import.Register",
         "unit_of_measure": {"unit": "Wh"}},
        {"value": round(s.power_w, 1), "context": context, "measurand": "Power.Active.Import",
         "unit_of_measure": {"unit": "W"}},
        {"value": round(s.current_a, 2), "context": context, "measurand": "Current.Import",
         "unit_of_measure": {"unit": "A"}},
    ]
    vals += [{"value": round(a, 2), "context": context, "measurand": "Current.Import", "phase": ph,
              "unit_of_measure": {"unit": "A"}} for ph, a in s.phase_currents()]
    if s.soc_pct is not None:
        vals.append({"value": s.soc_pct, "context": context, "measurand": "SoC", "location": "EV",
                     "unit_of_measure": {"unit": "Percent"}})
    return vals


def _id_token(token: str) -> dict[str, str]:
    return {"id_token": token, "type": "ISO14443"}


class _Link(RecordingLinkMixin, ChargePoint):
    adapter: V201Adapter

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any
                                ) -> call_result.SetChargingProfile:
        ok, why = self.charger.handle_set_profile(
            lambda now: pf.from_v201(charging_profile, evse_id, received_at=now), evse_id,
            {"evseId": evse_id, "chargingProfile": charging_profile}, require_tx_id=True)
        return call_result.SetChargingProfile(
            "Accepted" if ok else "Rejected",
            status_info=None if ok else {"reason_code": "InvalidProfile", "additional_info": why[:500]})

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, charging_profile_id: int | None = None,
                                  charging_profile_criteria: dict[str, Any] | None = None, **_: Any
                                  ) -> call_result.ClearChargingProfile:
        crit = charging_profile_criteria or {}
        purpose = crit.get("charging_profile_purpose")
        ok = self.charger.handle_clear_profiles(
            profile_id=charging_profile_id, evse_id=crit.get("evse_id"),
            purpose=pf._PURPOSES.get(purpose) if purpose else None, stack_level=crit.get("stack_level"))
        return call_result.ClearChargingProfile("Accepted" if ok else "Unknown")

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, duration: int, evse_id: int, charging_rate_unit: str | None = None,
                                  **_: Any) -> call_result.GetCompositeSchedule:
        if evse_id != 0 and evse_id not in self.charger.evses:
            return call_result.GetCompositeSchedule("Rejected")
        cs = self.charger.composite(evse_id, duration, charging_rate_unit)
        return call_result.GetCompositeSchedule(status="Accepted", schedule={
            "evse_id": evse_id, "duration": duration, "schedule_start": ts(cs.start),
            "charging_rate_unit": cs.unit.value,
            "charging_schedule_period": [
                {"start_period": p.start_s, "limit": p.limit, "number_phases": p.number_phases}
                for p in cs.periods]})

    @on(Action.request_start_transaction)
    def on_request_start(self, id_token: dict[str, Any], remote_start_id: int, evse_id: int | None = None,
                         charging_profile: dict[str, Any] | None = None, **_: Any
                         ) -> call_result.RequestStartTransaction:
        parse = None
        if charging_profile is not None:
            if charging_profile.get("charging_profile_purpose") != "TxProfile":
                return call_result.RequestStartTransaction("Rejected")
            eid = evse_id or 1

            def parse(now: Any) -> pf.ChargingProfile:
                # The transaction id is the station's; fill it in if the CSMS could not know it yet.
                prof = dict(charging_profile)
                prof.setdefault("transaction_id", self.charger.active_tx_id(eid))
                return pf.from_v201(prof, eid, received_at=now)
        ok = self.charger.handle_remote_start(id_token["id_token"], evse_id, remote_start_id, parse,
                                              charging_profile)
        return call_result.RequestStartTransaction("Accepted" if ok else "Rejected")

    @on(Action.request_stop_transaction)
    def on_request_stop(self, transaction_id: str, **_: Any) -> call_result.RequestStopTransaction:
        ok = self.charger.handle_remote_stop(transaction_id)
        return call_result.RequestStopTransaction("Accepted" if ok else "Rejected")

    @on(Action.change_availability)
    def on_change_availability(self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any
                               ) -> call_result.ChangeAvailability:
        evse_id = int(evse["id"]) if evse else 0
        return call_result.ChangeAvailability(
            self.charger.handle_change_availability(evse_id, operational_status == "Operative"))

    @on(Action.reset)
    def on_reset(self, type: str, evse_id: int | None = None, **_: Any) -> call_result.Reset:
        if evse_id:
            return call_result.Reset("Rejected")
        busy = any(e.tx is not None for e in self.charger.evses.values())
        return call_result.Reset("Scheduled" if type == "OnIdle" and busy else "Accepted")

    @after(Action.reset)
    def after_reset(self, type: str, evse_id: int | None = None, **_: Any) -> None:
        busy = any(e.tx is not None for e in self.charger.evses.values())
        if not evse_id and not (type == "OnIdle" and busy):
            self.charger.handle_reset(True)

    @on(Action.unlock_connector)
    def on_unlock(self, evse_id: int, connector_id: int, **_: Any) -> call_result.UnlockConnector:
        status = self.charger.handle_unlock(evse_id)
        return call_result.UnlockConnector("UnknownConnector" if status == "UnlockFailed" else status)

    @on(Action.reserve_now)
    def on_reserve_now(self, id: int, expiry_date_time: str, id_token: dict[str, Any],
                       evse_id: int | None = None, **_: Any) -> call_result.ReserveNow:
        expiry = pf.parse_time(expiry_date_time)
        assert expiry is not None
        status = self.charger.handle_reserve(evse_id, id, id_token["id_token"], expiry)
        return call_result.ReserveNow(status)

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> call_result.CancelReservation:
        ok = self.charger.handle_cancel_reservation(reservation_id)
        return call_result.CancelReservation("Accepted" if ok else "Rejected")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any
                           ) -> call_result.TriggerMessage:
        ok = self.adapter.trigger(requested_message, int(evse["id"]) if evse else None)
        return call_result.TriggerMessage("Accepted" if ok else "NotImplemented")

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> call_result.GetVariables:
        return call_result.GetVariables([self.adapter.variables.get(d) for d in get_variable_data])

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> call_result.SetVariables:
        return call_result.SetVariables([self.adapter.variables.set(d) for d in set_variable_data])

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: Any = None, **_: Any
                         ) -> call_result.DataTransfer:
        return call_result.DataTransfer("UnknownVendorId")

    # --- certificate management ------------------------------------------------------------------
    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, certificate_type: str | None = None, **_: Any
                              ) -> call_result.CertificateSigned:
        ok = certificate_type in (None, "ChargingStationCertificate") and \
            self.charger.certificates.install_signed(certificate_chain)
        return call_result.CertificateSigned("Accepted" if ok else "Rejected")

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str, **_: Any
                               ) -> call_result.InstallCertificate:
        return call_result.InstallCertificate(self.charger.certificates.install_root(certificate_type, certificate))

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: list[str] | None = None, **_: Any
                                         ) -> call_result.GetInstalledCertificateIds:
        rows = self.charger.certificates.installed(certificate_type)
        if not rows:
            return call_result.GetInstalledCertificateIds("NotFound")
        return call_result.GetInstalledCertificateIds("Accepted", certificate_hash_data_chain=[
            {"certificate_type": use, "certificate_hash_data": h} for use, h in rows])

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict[str, str], **_: Any) -> call_result.DeleteCertificate:
        return call_result.DeleteCertificate(self.charger.certificates.delete(certificate_hash_data))


class VariableStore:
    """A minimal device model for GetVariables / SetVariables (component.variable -> value)."""

    READONLY = {("SmartChargingCtrlr", "RateUnit"), ("SmartChargingCtrlr", "ProfileStackLevel"),
                ("SmartChargingCtrlr", "PeriodsPerSchedule"), ("SmartChargingCtrlr", "Enabled"),
                ("SmartChargingCtrlr", "Available")}

    def __init__(self, charger: Charger) -> None:
        self.charger = charger
        c = charger.config
        self.extra: dict[tuple[str, str], str] = {
            ("SmartChargingCtrlr", "Enabled"): "true",
            ("SmartChargingCtrlr", "Available"): "true",
            ("SmartChargingCtrlr", "RateUnit"): ",".join(c.rate_units),
            ("SmartChargingCtrlr", "ProfileStackLevel"): str(c.max_stack_level),
            ("SmartChargingCtrlr", "PeriodsPerSchedule"): str(c.max_schedule_periods),
            ("AuthCtrlr", "AuthorizeRemoteStart"): str(c.authorize_remote_start).lower(),
            ("TxCtrlr", "TxStartPoint"): "Authorized",
            ("TxCtrlr", "TxStopPoint"): "Authorized,EVConnected",
        }

    def _values(self) -> dict[tuple[str, str], str]:
        ch = self.charger
        return {("OCPPCommCtrlr", "HeartbeatInterval"): str(ch.heartbeat_interval_s),
                ("SampledDataCtrlr", "TxUpdatedInterval"): str(ch.meter_interval_s),
                ("AlignedDataCtrlr", "Interval"): "0", **self.extra}

    @staticmethod
    def _key(d: dict[str, Any]) -> tuple[str, str]:
        return str(d["component"]["name"]), str(d["variable"]["name"])

    def get(self, d: dict[str, Any]) -> dict[str, Any]:
        key = self._key(d)
        values = self._values()
        out: dict[str, Any] = {"component": d["component"], "variable": d["variable"]}
        if key in values:
            out.update(attribute_status="Accepted", attribute_value=values[key])
        elif key[0] in {k[0] for k in values}:
            out.update(attribute_status="UnknownVariable")
        else:
            out.update(attribute_status="UnknownComponent")
        return out

    def set(self, d: dict[str, Any]) -> dict[str, Any]:
        key, value = self._key(d), str(d["attribute_value"])
        out: dict[str, Any] = {"component": d["component"], "variable": d["variable"]}
        values = self._values()
        if key not in values:
            status = "UnknownComponent" if key[0] not in {k[0] for k in values} else "UnknownVariable"
        elif key in self.READONLY:
            status = "Rejected"
        else:
            status = "Accepted"
            try:
                if key == ("OCPPCommCtrlr", "HeartbeatInterval"):
                    self.charger.heartbeat_interval_s = max(1, int(value))
                elif key == ("SampledDataCtrlr", "TxUpdatedInterval"):
                    self.charger.meter_interval_s = max(1, int(value))
                else:
                    self.extra[key] = value
            except ValueError:
                status = "Rejected"
        out["attribute_status"] = status
        return out


class V201Adapter(AdapterBase):
    subprotocol = "ocpp2.0.1"
    version = "2.0.1"
    _link_cls = _Link

    def __init__(self, charger: Charger) -> None:
        super().__init__(charger)
        self.variables = VariableStore(charger)
        self._sent_status: dict[int, str] = {}
        self._sent_state: dict[int, str] = {}

    # ------------------------------------------------------------------ outbound
    async def boot(self, reason: str) -> tuple[str, int]:
        c = self.charger.config
        res = await self.call(call.BootNotification(
            charging_station={"model": c.model, "vendor_name": c.vendor, "firmware_version": c.firmware,
                              "serial_number": c.charger_id},
            reason=reason if reason in {"PowerUp", "RemoteReset", "Triggered", "LocalReset"} else "Unknown"))
        return str(res.status), int(res.interval)

    async def after_boot(self) -> None:
        self._sent_status.clear()
        for evse in self.charger.evses.values():
            self.charger.enqueue(lambda e=evse, st=evse.status: self._status(e, force=True, current=st),
                                 f"status {evse.evse_id}")

    async def heartbeat(self) -> None:
        await self.call(call.Heartbeat())

    async def _status(self, evse: Evse, force: bool = False, current: Status | None = None) -> None:
        status = CONNECTOR_STATUS[current or evse.status]
        if not force and self._sent_status.get(evse.evse_id) == status:
            return
        self._sent_status[evse.evse_id] = status
        await self.call(call.StatusNotification(timestamp=ts(self.now()), connector_status=status,
                                                evse_id=evse.evse_id, connector_id=1))

    async def send_status(self, evse: Evse, change: StatusChanged) -> None:
        await self._status(evse, current=change.status)
        state = CHARGING_STATE.get(change.status)
        if evse.tx is not None and state and self._sent_state.get(evse.evse_id) != state:
            self._sent_state[evse.evse_id] = state
            await self._tx_event("Updated", evse, evse.tx, "ChargingStateChanged", charging_state=state)

    async def authorize(self, id_token: str) -> bool:
        res = await self.call(call.Authorize(id_token=_id_token(id_token)))
        return res.id_token_info.get("status") == "Accepted"

    async def _tx_event(self, event_type: str, evse: Evse, tx: Transaction, trigger: str, *,
                        charging_state: str | None = None, meter: list[dict[str, Any]] | None = None,
                        stopped_reason: str | None = None, with_token: bool = False, at: Any = None) -> Any:
        info: dict[str, Any] = {"transaction_id": tx.transaction_id}
        if charging_state:
            info["charging_state"] = charging_state
        if stopped_reason:
            info["stopped_reason"] = stopped_reason
        if tx.remote_start_id is not None and event_type == "Started":
            info["remote_start_id"] = tx.remote_start_id
        return await self.call(call.TransactionEvent(
            event_type=event_type, timestamp=ts(at or self.now()), trigger_reason=trigger, seq_no=tx.next_seq(),
            transaction_info=info, meter_value=meter, evse={"id": evse.evse_id, "connector_id": 1},
            id_token=_id_token(tx.id_token) if with_token else None,
            reservation_id=tx.reservation_id if event_type == "Started" else None,
            number_of_phases_used=self.charger.phases_in_use(evse) if evse.ev and event_type == "Started" else None))

    async def start_transaction(self, evse: Evse, tx: Transaction, trigger: str) -> bool:
        begin = [{"timestamp": ts(self.now()), "sampled_value": [
            {"value": round(tx.meter_start_wh, 1), "context": "Transaction.Begin",
             "measurand": "Energy.Active.Import.Register", "unit_of_measure": {"unit": "Wh"}}]}]
        self._sent_state[evse.evse_id] = "EVConnected"
        res = await self._tx_event("Started", evse, tx, "RemoteStart" if trigger == "RemoteStart" else "Authorized",
                                   charging_state="EVConnected", meter=begin, with_token=True)
        info = res.id_token_info or {}
        return info.get("status", "Accepted") == "Accepted"

    async def send_meter_values(self, evse: Evse, s: MeterSample) -> None:
        if evse.tx is None:
            return
        await self._tx_event("Updated", evse, evse.tx, "MeterValuePeriodic",
                             meter=[{"timestamp": ts(s.at), "sampled_value": sampled_values(s)}], at=s.at)

    async def stop_transaction(self, evse: Evse, tx: Transaction, reason: str, s: MeterSample) -> None:
        stopped, trigger = STOP_REASONS.get(reason, ("Other", "AbnormalCondition"))
        self._sent_state.pop(evse.evse_id, None)
        await self._tx_event(
            "Ended", evse, tx, trigger, stopped_reason=stopped,
            charging_state="EVConnected" if evse.plugged else "Idle",
            meter=[{"timestamp": ts(s.at), "sampled_value": sampled_values(s, "Transaction.End")}],
            with_token=trigger == "StopAuthorized", at=s.at)

    async def send_charging_needs(self, evse: Evse, energy_wh: float) -> None:
        """ISO 15118-style AC charging needs: energy amount, departure, EV current limits."""
        ev = evse.ev
        if ev is None:
            return
        m = ev.model
        transfer = {1: "AC_single_phase", 2: "AC_two_phase"}.get(m.phases, "AC_three_phase")
        needs: dict[str, Any] = {
            "requested_energy_transfer": transfer,
            "ac_charging_parameters": {
                "energy_amount": int(round(energy_wh)),
                "ev_min_current": int(round(m.min_current_for_needs_a)),
                "ev_max_current": int(round(amps_from_watts(m.max_power_w, m.voltage_v, m.phases))),
                "ev_max_voltage": int(round(m.voltage_v)),
            },
        }
        if ev.departure is not None:
            needs["departure_time"] = ts(ev.departure)
        await self.call(call.NotifyEVChargingNeeds(charging_needs=needs, evse_id=evse.evse_id))

    async def sign_certificate(self) -> str:
        """A new key and CSR; the certificate comes back in CertificateSigned. Returns the CSMS's answer."""
        res = await self.call(call.SignCertificate(csr=self.charger.certificates.new_csr(),
                                             certificate_type="ChargingStationCertificate"))
        return str(res.status)

    # ------------------------------------------------------------------ TriggerMessage
    def trigger(self, requested: str, evse_id: int | None) -> bool:
        ch = self.charger
        ids = [evse_id] if evse_id else list(ch.evses)
        ids = [i for i in ids if i in ch.evses]
        if requested == "BootNotification":
            ch.trigger_boot()
        elif requested == "Heartbeat":
            ch.enqueue(self.heartbeat, "Heartbeat")
        elif requested == "SignChargingStationCertificate":
            ch.enqueue(self.sign_certificate, "SignCertificate")
        elif requested == "StatusNotification":
            for i in ids:
                ch.enqueue(lambda i=i: self._status(ch.evses[i], force=True), f"status {i}")
        elif requested in ("MeterValues", "TransactionEvent"):
            ch.advance()
            for i in ids:
                evse = ch.evses[i]
                s = ch.meter_sample(i)
                if requested == "TransactionEvent" and evse.tx is not None:
                    ch.enqueue(lambda e=evse, s=s: self._tx_event(
                        "Updated", e, e.tx, "Trigger",
                        meter=[{"timestamp": ts(s.at), "sampled_value": sampled_values(s, "Trigger")}]),
                        "TransactionEvent")
                elif requested == "MeterValues":
                    ch.enqueue(lambda i=i, s=s: self.call(call.MeterValues(
                        evse_id=i, meter_value=[{"timestamp": ts(s.at),
                                                  "sampled_value": sampled_values(s, "Trigger")}])),
                        "MeterValues")
        else:
            return False
        return True
