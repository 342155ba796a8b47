"""OCPP 2.0.1 charger-initiated messages: payload -> domain call on the events port -> call_result.

No business logic and no CSMS-initiated CALL inside an @on handler: readiness runs as a task after
the BootNotification answer has been sent.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from csms.domain import commands as cmd
from csms.domain.certificates import SigningUse
from csms.domain.enums import RegistrationStatus
from csms.domain.model import Capabilities
from csms.ocpp import certs
from csms.ocpp.common import format_ts, parse_ts_or
from csms.ocpp.connection import OcppConnection
from csms.ocpp.routing import after, on
from csms.ocpp.v201 import from_domain as fd
from csms.ocpp.v201 import to_domain as td
from csms.ocpp.v201.commands import TABLE


class V201ChargePoint(OcppConnection):
    protocol = "ocpp2.0.1"
    _ocpp_version = "2.0.1"
    _actions = frozenset(a.value for a in Action)
    commands = TABLE
    _boot_status: RegistrationStatus | None = None
    _to_sign: tuple[str, SigningUse] | None = None  # an Accepted CSR, signed once its answer is sent

    @on(Action.boot_notification)
    async def on_boot_notification(self, charging_station: dict[str, Any], reason: str,
                                   **kw: Any) -> call_result.BootNotification:
        info = td.station_info(charging_station)
        self.note_boot(info)
        reply = await self.events.booted(self.id, info, reason)
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
    async def on_status_notification(self, timestamp: str, connector_status: str, evse_id: int,
                                     connector_id: int, **kw: Any) -> call_result.StatusNotification:
        at = parse_ts_or(timestamp, self.clock.now())
        # The connector's status only; what the EV does arrives with TransactionEvent.chargingState.
        await self.events.status_changed(self.id, td.evse(evse_id, connector_id),
                                         td.connector_status(connector_status), at, None, None)
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_token: dict[str, Any], certificate: str | None = None,
                           iso15118_certificate_hash_data: list[dict[str, Any]] | None = None,
                           **kw: Any) -> call_result.Authorize:
        cert_status = None
        if certificate is not None or iso15118_certificate_hash_data:  # ISO 15118 contract: the PKI's word
            cert_status = await self.certificates().authorize_certificate(
                self.id, id_token["id_token"], certificate,
                tuple(certs.ocsp_request(d) for d in iso15118_certificate_hash_data or ()))
        auth = await self.events.authorize(self.id, id_token["id_token"])
        return fd.authorize_result(auth, cert_status)

    @on(Action.sign_certificate)
    async def on_sign_certificate(self, csr: str, certificate_type: str | None = None,
                                  **kw: Any) -> call_result.SignCertificate:
        use = SigningUse(certificate_type or SigningUse.CHARGING_STATION.value)
        verdict = await self.certificates().sign_requested(self.id, csr, use)
        self._to_sign = (csr, use) if verdict.accepted else None
        return call_result.SignCertificate(status=certs.sign_status(verdict),
                                           status_info=certs.status_info(verdict.reason))  # type: ignore[arg-type]

    @after(Action.sign_certificate)
    def after_sign_certificate(self, **kw: Any) -> None:
        pending, self._to_sign = self._to_sign, None
        if pending is not None and self.certs is not None:  # CertificateSigned follows the answer (A02.FR.06)
            self.spawn(self.certs.issue(self.id, *pending))

    @on(Action.get_certificate_status)
    async def on_get_certificate_status(self, ocsp_request_data: dict[str, Any],
                                        **kw: Any) -> call_result.GetCertificateStatus:
        answer = await self.certificates().certificate_status(self.id, certs.ocsp_request(ocsp_request_data))
        return call_result.GetCertificateStatus(status=answer.status, ocsp_result=answer.data,  # type: ignore[arg-type]
                                                status_info=certs.pki_status_info(answer))  # type: ignore[arg-type]

    @on(Action.get_15118_ev_certificate)
    async def on_get_15118_ev_certificate(self, iso15118_schema_version: str, action: str, exi_request: str,
                                          **kw: Any) -> call_result.Get15118EVCertificate:
        answer = await self.certificates().ev_certificate(self.id, iso15118_schema_version, action, exi_request)
        return call_result.Get15118EVCertificate(status=answer.status, exi_response=answer.data or "",  # type: ignore[arg-type]
                                                 status_info=certs.pki_status_info(answer))  # type: ignore[arg-type]

    @on(Action.transaction_event)
    async def on_transaction_event(self, **kw: Any) -> call_result.TransactionEvent:
        reply = await self.events.transaction(td.transaction_event(self.id, kw))
        if reply.transaction_key is not None:  # totalCost: only 2.0.1 asks billing, and only here
            reply = replace(reply, total_cost=await self.events.live_cost(reply.transaction_key,
                                                                            reply.transaction))
        return fd.transaction_event_result(reply, had_id_token=kw.get("id_token") is not None)

    @on(Action.meter_values)
    async def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]],
                              **kw: Any) -> call_result.MeterValues:
        await self.events.meter_values(self.id, td.evse(evse_id), None, td.meter_samples(meter_value))
        return call_result.MeterValues()

    @on(Action.notify_ev_charging_needs)
    async def on_notify_ev_charging_needs(self, **kw: Any) -> call_result.NotifyEVChargingNeeds:
        await self.events.charging_needs(td.charging_needs(self.id, kw, self.clock.now()))
        return call_result.NotifyEVChargingNeeds(status="Accepted")

    @on(Action.notify_charging_limit)
    async def on_notify_charging_limit(self, **kw: Any) -> call_result.NotifyChargingLimit:
        evse, source, limit, unit = td.charging_limit(kw)
        await self.events.charging_limit(self.id, evse, source, limit, unit)
        return call_result.NotifyChargingLimit()

    @on(Action.cleared_charging_limit)
    async def on_cleared_charging_limit(self, charging_limit_source: str,
                                        **kw: Any) -> call_result.ClearedChargingLimit:
        await self.events.charging_limit(self.id, td.evse(kw.get("evse_id")), charging_limit_source, None, None)
        return call_result.ClearedChargingLimit()

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **kw: Any) -> call_result.DataTransfer:
        await self.events.notice(self.id, "DataTransfer", {"vendor_id": vendor_id, **kw})
        # No vendor extension is implemented: the spec's answer for that is UnknownVendorId.
        return call_result.DataTransfer(status="UnknownVendorId")

    # Informational messages: recorded as notices, answered with an empty payload.
    @on(Action.notify_report)
    async def on_notify_report(self, **kw: Any) -> call_result.NotifyReport:
        await self.events.notice(self.id, "NotifyReport", kw)
        return call_result.NotifyReport()

    @on(Action.notify_event)
    async def on_notify_event(self, **kw: Any) -> call_result.NotifyEvent:
        await self.events.notice(self.id, "NotifyEvent", kw)
        return call_result.NotifyEvent()

    @on(Action.security_event_notification)
    async def on_security_event(self, **kw: Any) -> call_result.SecurityEventNotification:
        await self.events.notice(self.id, "SecurityEventNotification", kw)
        return call_result.SecurityEventNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status(self, **kw: Any) -> call_result.FirmwareStatusNotification:
        await self.events.notice(self.id, "FirmwareStatusNotification", kw)
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    async def on_log_status(self, **kw: Any) -> call_result.LogStatusNotification:
        await self.events.notice(self.id, "LogStatusNotification", kw)
        return call_result.LogStatusNotification()

    @on(Action.report_charging_profiles)
    async def on_report_charging_profiles(self, **kw: Any) -> call_result.ReportChargingProfiles:
        await self.events.notice(self.id, "ReportChargingProfiles", kw)
        return call_result.ReportChargingProfiles()
