"""OCPP 1.6J client adapter: maps the neutral charger to ``ocpp.v16`` messages and answers CSMS calls.

Connector ids equal EVSE ids (connector 0 = the whole station). Handlers never await a CALL: follow-up
messages (TriggerMessage, Reset, remote start) run as tasks via ``charger.spawn``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from simulator import profiles as pf
from simulator.ocpp.base import AdapterBase, MeterSample, RecordingLinkMixin, ts
from simulator.station import Evse, Status, StatusChanged, Transaction

if TYPE_CHECKING:
    from simulator.charger import Charger

V16_REASONS = {"EmergencyStop", "EVDisconnected", "HardReset", "Local", "Other", "PowerLoss", "Reboot",
               "Remote", "SoftReset", "UnlockCommand", "DeAuthorized"}


def sampled_values(s: MeterSample, context: str = "Sample.Periodic") -> list[dict[str, Any]]:
    """1.6 sampledValue list (values are strings): energy register, power, current (phase-less: per phase
    of the car; then per phase L1..Ln of the EVSE, 0 A on phases the car does not use) and SoC."""
    vals = [
        {"value": f"{s.energy_wh:.1f}", "context": context, "measurand": "Energy.Active.Import.Register",
         "unit": "Wh", "location": "Outlet"},
        {"value": f"{s.power_w:.1f}", "context": context, "measurand": "Power.Active.Import", "unit": "W",
         "location": "Outlet"},
        {"value": f"{s.current_a:.2f}", "context": context, "measurand": "Current.Import", "unit": "A",
         "location": "Outlet"},
    ]
    vals += [{"value": f"{a:.2f}", "context": context, "measurand": "Current.Import", "phase": ph, "unit": "A",
              "location": "Outlet"} for ph, a in s.phase_currents()]
    if s.soc_pct is not None:
        vals.append({"value": f"{s.soc_pct:.1f}", "context": context, "measurand": "SoC", "unit": "Percent",
                     "location": "EV"})
    return vals


class ConfigStore:
    """The small 1.6 configuration key store (GetConfiguration / ChangeConfiguration)."""

    READONLY = {"ChargingScheduleAllowedChargingRateUnit", "ChargeProfileMaxStackLevel",
                "ChargingScheduleMaxPeriods", "MaxChargingProfilesInstalled", "SupportedFeatureProfiles",
                "NumberOfConnectors", "GetConfigurationMaxKeys"}

    def __init__(self, charger: Charger) -> None:
        self.charger = charger
        c = charger.config
        self.extra: dict[str, str] = {
            "AuthorizeRemoteTxRequests": str(c.authorize_remote_start).lower(),
            "ConnectionTimeOut": "120",
            "LocalPreAuthorize": "false",
            "StopTransactionOnEVSideDisconnect": "true",
            "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import,Current.Import,SoC",
            "StopTxnSampledData": "Energy.Active.Import.Register",
            "ChargingScheduleAllowedChargingRateUnit": ",".join(
                {"A": "Current", "W": "Power"}[u] for u in c.rate_units),
            "ChargeProfileMaxStackLevel": str(c.max_stack_level),
            "ChargingScheduleMaxPeriods": str(c.max_schedule_periods),
            "MaxChargingProfilesInstalled": "16",
            "SupportedFeatureProfiles": "Core,SmartCharging,RemoteTrigger,Reservation",
            "NumberOfConnectors": str(c.evse_count),
            "GetConfigurationMaxKeys": "50",
        }

    def items(self) -> dict[str, str]:
        ch = self.charger
        return {"HeartbeatInterval": str(ch.heartbeat_interval_s),
                "MeterValueSampleInterval": str(ch.meter_interval_s), **self.extra}

    def set(self, key: str, value: str) -> str:
        if key not in self.items():
            return "NotSupported"
        if key in self.READONLY:
            return "Rejected"
        try:
            if key == "HeartbeatInterval":
                self.charger.heartbeat_interval_s = max(1, int(value))
            elif key == "MeterValueSampleInterval":
                self.charger.meter_interval_s = max(1, int(value))
            elif key == "AuthorizeRemoteTxRequests":
                self.charger.config.authorize_remote_start = value.lower() == "true"
                self.extra[key] = value.lower()
            else:
                self.extra[key] = value
        except ValueError:
            return "Rejected"
        return "Accepted"


class _Link(RecordingLinkMixin, ChargePoint):
    adapter: V16Adapter

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
                                ) -> call_result.SetChargingProfile:
        ok, _why = self.charger.handle_set_profile(
            lambda now: pf.from_v16(cs_charging_profiles, connector_id, received_at=now), connector_id,
            {"connectorId": connector_id, "csChargingProfiles": cs_charging_profiles})
        return call_result.SetChargingProfile("Accepted" if ok else "Rejected")

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, id: int | None = None, connector_id: int | None = None,
                                  charging_profile_purpose: str | None = None, stack_level: int | None = None,
                                  **_: Any) -> call_result.ClearChargingProfile:
        purpose = pf._PURPOSES.get(charging_profile_purpose) if charging_profile_purpose else None
        ok = self.charger.handle_clear_profiles(profile_id=id, evse_id=connector_id, purpose=purpose,
                                                stack_level=stack_level)
        return call_result.ClearChargingProfile("Accepted" if ok else "Unknown")

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int, charging_rate_unit: str | None = None,
                                  **_: Any) -> call_result.GetCompositeSchedule:
        if connector_id != 0 and connector_id not in self.charger.evses:
            return call_result.GetCompositeSchedule("Rejected")
        cs = self.charger.composite(connector_id, duration, charging_rate_unit)
        return call_result.GetCompositeSchedule(
            status="Accepted", connector_id=connector_id, schedule_start=ts(cs.start),
            charging_schedule={
                "duration": duration, "start_schedule": ts(cs.start), "charging_rate_unit": cs.unit.value,
                "charging_schedule_period": [
                    {"start_period": p.start_s, "limit": p.limit, "number_phases": p.number_phases}
                    for p in cs.periods]})

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, connector_id: int | None = None,
                        charging_profile: dict[str, Any] | None = None, **_: Any
                        ) -> call_result.RemoteStartTransaction:
        parse = None
        if charging_profile is not None:
            cid = connector_id or 1
            if charging_profile.get("charging_profile_purpose") != "TxProfile":
                return call_result.RemoteStartTransaction("Rejected")
            parse = lambda now: pf.from_v16(charging_profile, cid, received_at=now)  # noqa: E731
        ok = self.charger.handle_remote_start(id_tag, connector_id, None, parse, charging_profile)
        return call_result.RemoteStartTransaction("Accepted" if ok else "Rejected")

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, **_: Any) -> call_result.RemoteStopTransaction:
        ok = self.charger.handle_remote_stop(str(transaction_id))
        return call_result.RemoteStopTransaction("Accepted" if ok else "Rejected")

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **_: Any) -> call_result.ChangeAvailability:
        return call_result.ChangeAvailability(
            self.charger.handle_change_availability(connector_id, type == "Operative"))

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> call_result.Reset:
        return call_result.Reset("Accepted")

    @after(Action.reset)
    def after_reset(self, type: str, **_: Any) -> None:
        self.charger.handle_reset(type == "Hard")

    @on(Action.unlock_connector)
    def on_unlock(self, connector_id: int, **_: Any) -> call_result.UnlockConnector:
        status = self.charger.handle_unlock(connector_id)
        return call_result.UnlockConnector("NotSupported" if status == "UnlockFailed" else status)

    @on(Action.reserve_now)
    def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int,
                       **_: Any) -> call_result.ReserveNow:
        expiry = pf.parse_time(expiry_date)
        assert expiry is not None
        return call_result.ReserveNow(
            self.charger.handle_reserve(connector_id or None, reservation_id, id_tag, expiry))

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> call_result.CancelReservation:
        ok = self.charger.handle_cancel_reservation(reservation_id)
        return call_result.CancelReservation("Accepted" if ok else "Rejected")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any
                           ) -> call_result.TriggerMessage:
        ok = self.adapter.trigger(requested_message, connector_id)
        return call_result.TriggerMessage("Accepted" if ok else "NotImplemented")

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> call_result.GetConfiguration:
        items = self.adapter.config.items()
        wanted = key or list(items)
        known = [{"key": k, "readonly": k in ConfigStore.READONLY, "value": items[k]} for k in wanted if k in items]
        unknown = [k for k in wanted if k not in items]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_: Any) -> call_result.ChangeConfiguration:
        return call_result.ChangeConfiguration(self.adapter.config.set(key, value))

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None,
                         **_: Any) -> call_result.DataTransfer:
        return call_result.DataTransfer("UnknownVendorId")

    # --- the security whitepaper's messages ------------------------------------------------------
    @on(Action.extended_trigger_message)
    def on_extended_trigger(self, requested_message: str, connector_id: int | None = None, **_: Any
                            ) -> call_result.ExtendedTriggerMessage:
        if requested_message == "SignChargePointCertificate":
            self.charger.enqueue(self.adapter.sign_certificate, "SignCertificate")
            return call_result.ExtendedTriggerMessage("Accepted")
        ok = self.adapter.trigger(requested_message, connector_id)
        return call_result.ExtendedTriggerMessage("Accepted" if ok else "NotImplemented")

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, **_: Any) -> call_result.CertificateSigned:
        ok = self.charger.certificates.install_signed(certificate_chain)
        return call_result.CertificateSigned("Accepted" if ok else "Rejected")

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str, **_: Any
                               ) -> call_result.InstallCertificate:
        return call_result.InstallCertificate(self.charger.certificates.install_root(certificate_type, certificate))

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: str, **_: Any
                                         ) -> call_result.GetInstalledCertificateIds:
        rows = self.charger.certificates.installed([certificate_type])
        if not rows:
            return call_result.GetInstalledCertificateIds("NotFound")
        return call_result.GetInstalledCertificateIds("Accepted", certificate_hash_data=[h for _, h in rows])

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict[str, str], **_: Any) -> call_result.DeleteCertificate:
        return call_result.DeleteCertificate(self.charger.certificates.delete(certificate_hash_data))


class V16Adapter(AdapterBase):
    subprotocol = "ocpp1.6"
    version = "1.6"
    _link_cls = _Link

    def __init__(self, charger: Charger) -> None:
        super().__init__(charger)
        self.config = ConfigStore(charger)

    # ------------------------------------------------------------------ outbound
    async def boot(self, reason: str) -> tuple[str, int]:
        c = self.charger.config
        res = await self.call(call.BootNotification(
            charge_point_model=c.model, charge_point_vendor=c.vendor, firmware_version=c.firmware,
            charge_point_serial_number=c.charger_id))
        return str(res.status), int(res.interval)

    async def after_boot(self) -> None:
        """Report every connector's status (and connector 0) after boot, via the outbox."""
        ch = self.charger
        ch.enqueue(lambda: self._status(0, Status.UNAVAILABLE if all(
            not e.operative for e in ch.evses.values()) else Status.AVAILABLE), "status 0")
        for evse in ch.evses.values():
            ch.enqueue(lambda e=evse, st=evse.status: self._status(e.evse_id, st), f"status {evse.evse_id}")

    async def heartbeat(self) -> None:
        await self.call(call.Heartbeat())

    async def _status(self, connector_id: int, status: Status) -> None:
        await self.call(call.StatusNotification(
            connector_id=connector_id, error_code="NoError", status=status.value, timestamp=ts(self.now())))

    async def send_status(self, evse: Evse, change: StatusChanged) -> None:
        await self._status(evse.evse_id, change.status)

    async def authorize(self, id_token: str) -> bool:
        res = await self.call(call.Authorize(id_tag=id_token))
        return res.id_tag_info.get("status") == "Accepted"

    async def start_transaction(self, evse: Evse, tx: Transaction, trigger: str) -> bool:
        res = await self.call(call.StartTransaction(
            connector_id=evse.evse_id, id_tag=tx.id_token, meter_start=int(round(tx.meter_start_wh)),
            timestamp=ts(self.now()), reservation_id=tx.reservation_id))
        tx.transaction_id = str(res.transaction_id)
        return res.id_tag_info.get("status") == "Accepted"

    async def send_meter_values(self, evse: Evse, s: MeterSample) -> None:
        tx = evse.tx
        await self.call(call.MeterValues(
            connector_id=evse.evse_id, transaction_id=int(tx.transaction_id) if tx else None,
            meter_value=[{"timestamp": ts(s.at), "sampled_value": sampled_values(s)}]))

    async def stop_transaction(self, evse: Evse, tx: Transaction, reason: str, s: MeterSample) -> None:
        begin = [{"timestamp": ts(tx.started_at), "sampled_value": [
            {"value": f"{tx.meter_start_wh:.1f}", "context": "Transaction.Begin",
             "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]
        end = [{"timestamp": ts(s.at), "sampled_value": sampled_values(s, "Transaction.End")}]
        await self.call(call.StopTransaction(
            meter_stop=int(round(s.energy_wh)), timestamp=ts(s.at), transaction_id=int(tx.transaction_id),
            reason=reason if reason in V16_REASONS else "Other", id_tag=tx.id_token,
            transaction_data=begin + end))

    async def send_charging_needs(self, evse: Evse, energy_wh: float) -> None:
        """1.6 has no charging-needs message."""

    async def sign_certificate(self) -> str:
        """A new key and CSR; the certificate comes back in CertificateSigned. Returns the CSMS's answer."""
        res = await self.call(call.SignCertificate(csr=self.charger.certificates.new_csr()))
        return str(res.status)

    # ------------------------------------------------------------------ TriggerMessage
    def trigger(self, requested: str, connector_id: int | None) -> bool:
        ch = self.charger
        evse_ids = [connector_id] if connector_id else list(ch.evses)
        if requested == "BootNotification":
            ch.trigger_boot()
        elif requested == "Heartbeat":
            ch.enqueue(self.heartbeat, "Heartbeat")
        elif requested == "StatusNotification":
            if connector_id == 0 or connector_id is None:
                ch.enqueue(lambda: self._status(0, Status.AVAILABLE), "status 0")
            for i in evse_ids:
                if i in ch.evses:
                    ch.enqueue(lambda i=i: self._status(i, ch.evses[i].status), f"status {i}")
        elif requested == "MeterValues":
            ch.advance()
            for i in evse_ids:
                if i in ch.evses:
                    s = ch.meter_sample(i)
                    ch.enqueue(lambda i=i, s=s: self.send_meter_values(ch.evses[i], s), "MeterValues")
        else:
            return False
        return True
