"""OCPP 1.6 charger-initiated messages: map the payload to a domain call, await the events port, map the
reply to a call_result. Nothing else happens here (no business logic, no CSMS-initiated CALL inside
an @on handler: readiness runs as a task after the BootNotification answer has been sent)."""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from csms.domain import commands as cmd
from csms.domain.certificates import SigningUse
from csms.domain.enums import RegistrationStatus
from csms.domain.model import Capabilities
from csms.ocpp.common import format_ts, parse_ts_or
from csms.ocpp.connection import OcppConnection
from csms.ocpp.routing import after, on
from csms.ocpp.v16 import from_domain as fd
from csms.ocpp.v16 import to_domain as td
from csms.ocpp.v16.commands import TABLE


class V16ChargePoint(OcppConnection):
    protocol = "ocpp1.6"
    _ocpp_version = "1.6"
    _actions = frozenset(a.value for a in Action)
    commands = TABLE
    _boot_status: RegistrationStatus | None = None
    _to_sign: str | None = None  # an Accepted CSR, signed once its answer is sent

    @on(Action.boot_notification)
    async def on_boot_notification(self, **kw: Any) -> call_result.BootNotification:
        info = td.station_info(kw)
        self.note_boot(info)
        reply = await self.events.booted(self.id, info, None)
        self._boot_status = self.registration = reply.status
        return fd.boot_result(reply, self.clock.now())

    @after(Action.boot_notification)
    def after_boot_notification(self, **kw: Any) -> None:
        if self._boot_status is RegistrationStatus.ACCEPTED:
            self.schedule_ready()

    async def fetch_capabilities(self) -> Capabilities:
        result = await self.send(cmd.GetConfiguration(tuple(fd.CAPABILITY_KEYS)))
        return fd.capabilities(result.data["values"])  # type: ignore[arg-type]

    @on(Action.heartbeat)
    async def on_heartbeat(self, **kw: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=format_ts(await self.events.heartbeat(self.id)))

    @on(Action.status_notification)
    async def on_status_notification(self, connector_id: int, error_code: str, status: str,
                                     **kw: Any) -> call_result.StatusNotification:
        st, charging = td.connector_status(status)
        at = parse_ts_or(kw.get("timestamp"), self.clock.now())
        await self.events.status_changed(self.id, td.evse_ref(connector_id), st, at, td.error_code(error_code),
                                         charging)
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str, **kw: Any) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info=fd.id_tag_info(await self.events.authorize(self.id, id_tag)))

    @on(Action.start_transaction)
    async def on_start_transaction(self, **kw: Any) -> call_result.StartTransaction:
        reply = await self.events.transaction(td.start_transaction(self.id, kw))
        if reply.charger_tx_id is None:
            raise RuntimeError("the events port assigned no transaction id")
        return call_result.StartTransaction(transaction_id=int(reply.charger_tx_id),
                                            id_tag_info=fd.id_tag_info(reply.authorization))

    @on(Action.stop_transaction)
    async def on_stop_transaction(self, **kw: Any) -> call_result.StopTransaction:
        reply = await self.events.transaction(td.stop_transaction(self.id, kw))
        info = fd.id_tag_info(reply.authorization) if kw.get("id_tag") else None
        return call_result.StopTransaction(id_tag_info=info)

    @on(Action.meter_values)
    async def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]],
                              **kw: Any) -> call_result.MeterValues:
        samples = td.meter_samples(meter_value)
        if kw.get("transaction_id") is not None:
            await self.events.transaction(td.meter_values_tx(self.id, {"connector_id": connector_id, **kw},
                                                             samples, self.clock.now()))
        else:
            await self.events.meter_values(self.id, td.evse_ref(connector_id), None, samples)
        return call_result.MeterValues()

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **kw: Any) -> call_result.DataTransfer:
        await self.events.notice(self.id, "DataTransfer", {"vendor_id": vendor_id, **kw})
        # No vendor extension is implemented: the spec's answer for that is UnknownVendorId.
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status(self, **kw: Any) -> call_result.DiagnosticsStatusNotification:
        await self.events.notice(self.id, "DiagnosticsStatusNotification", kw)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status(self, **kw: Any) -> call_result.FirmwareStatusNotification:
        await self.events.notice(self.id, "FirmwareStatusNotification", kw)
        return call_result.FirmwareStatusNotification()

    # Security whitepaper extension messages (schemas ship with the 1.6 set).
    @on(Action.sign_certificate)
    async def on_sign_certificate(self, csr: str, **kw: Any) -> call_result.SignCertificate:
        verdict = await self.certificates().sign_requested(self.id, csr, SigningUse.CHARGING_STATION)
        self._to_sign = csr if verdict.accepted else None
        return call_result.SignCertificate(status="Accepted" if verdict.accepted else "Rejected")  # type: ignore[arg-type]

    @after(Action.sign_certificate)
    def after_sign_certificate(self, **kw: Any) -> None:
        csr, self._to_sign = self._to_sign, None
        if csr is not None and self.certs is not None:  # CertificateSigned follows the answer
            self.spawn(self.certs.issue(self.id, csr, SigningUse.CHARGING_STATION))

    @on(Action.security_event_notification)
    async def on_security_event(self, **kw: Any) -> call_result.SecurityEventNotification:
        await self.events.notice(self.id, "SecurityEventNotification", kw)
        return call_result.SecurityEventNotification()

    @on(Action.log_status_notification)
    async def on_log_status(self, **kw: Any) -> call_result.LogStatusNotification:
        await self.events.notice(self.id, "LogStatusNotification", kw)
        return call_result.LogStatusNotification()

    @on(Action.signed_firmware_status_notification)
    async def on_signed_firmware_status(self, **kw: Any) -> call_result.SignedFirmwareStatusNotification:
        await self.events.notice(self.id, "FirmwareStatusNotification", kw)
        return call_result.SignedFirmwareStatusNotification()
