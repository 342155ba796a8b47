"""The command table of OCPP 1.6: each neutral command (csms.domain.commands) -> the 1.6 requests that carry it,
and the answers -> a CommandResult. Pure: the connection sends the requests (`OcppConnection.send`).

A command 1.6 cannot express is refused (NotSupported) without sending anything.
"""

from __future__ import annotations

from typing import Any

from csms.domain import commands as cmd
from csms.domain.certificates import SigningUse
from csms.domain.enums import CommandStatus
from csms.domain.model import CommandResult
from csms.ocpp.commands import CommandTable, decoded, one, refused, status_of
from csms.ocpp.v16 import from_domain as fd


def _remote_stop(c: cmd.RemoteStop) -> list[tuple[str, dict[str, Any]]] | CommandResult:
    try:
        return [("RemoteStopTransaction", fd.remote_stop(c.charger_tx_id))]
    except ValueError:
        return CommandResult(CommandStatus.ERROR, detail=f"1.6 transaction ids are integers: {c.charger_tx_id!r}")


def _set_profile(c: cmd.SetChargingProfile) -> list[tuple[str, dict[str, Any]]] | CommandResult:
    try:
        return [("SetChargingProfile", fd.set_charging_profile(c.evse_id, c.profile))]
    except ValueError:
        return CommandResult(CommandStatus.ERROR, detail=f"1.6 transaction ids are integers: "
                                                        f"{c.profile.charger_tx_id!r}")


def _trigger(c: cmd.TriggerMessage) -> list[tuple[str, dict[str, Any]]]:
    if c.message in fd.SIGN_TRIGGERS:  # the security whitepaper's trigger for a new charger certificate
        return [("ExtendedTriggerMessage", fd.extended_trigger(c.message, c.evse_id))]
    return [("TriggerMessage", fd.trigger_message(c.message, c.evse_id))]


def _certificate_signed(c: cmd.CertificateSigned) -> list[tuple[str, dict[str, Any]]] | CommandResult:
    if c.use is not SigningUse.CHARGING_STATION:
        return refused("OCPP 1.6 chargers have no V2G certificate")
    return [("CertificateSigned", fd.certificate_signed(c.chain_pem))]


def _install(c: cmd.InstallCertificate) -> list[tuple[str, dict[str, Any]]] | CommandResult:
    payload = fd.install_certificate(c.use, c.pem)
    if payload is None:
        return refused(f"OCPP 1.6 installs CSMS and manufacturer roots only, not {c.use.value}")
    return [("InstallCertificate", payload)]


def _installed(c: cmd.GetInstalledCertificates) -> list[tuple[str, dict[str, Any]]] | CommandResult:
    """1.6 asks for one use at a time: one request per use (both of its uses by default)."""
    wanted = list(c.uses or fd.CERTIFICATE_USE)
    unknown = [u.value for u in wanted if u not in fd.CERTIFICATE_USE]
    if unknown:
        return refused(f"OCPP 1.6 has no certificate use {', '.join(unknown)}")
    return [("GetInstalledCertificateIds", fd.get_installed_certificate_ids(u)) for u in wanted]


def _installed_result(c: cmd.GetInstalledCertificates, answers: list[dict[str, Any]]) -> CommandResult:
    wanted = list(c.uses or fd.CERTIFICATE_USE)
    rows = [row for use, a in zip(wanted, answers, strict=True) for row in fd.installed_certificates(use, a)]
    found = any(a.get("status") == "Accepted" for a in answers)
    return CommandResult("Accepted" if found else "NotFound", data={"certificates": rows})


TABLE: CommandTable = {
    # 1.6 has no remoteStartId: the StartTransaction that follows is matched by connector and idTag.
    cmd.RemoteStart: (one("RemoteStartTransaction", lambda c: fd.remote_start(c.evse_id, c.id_token)), status_of),
    cmd.RemoteStop: (_remote_stop, status_of),
    cmd.SetChargingProfile: (_set_profile, status_of),
    cmd.ClearChargingProfile: (one("ClearChargingProfile", lambda c: fd.clear_charging_profile(
        c.profile_id, c.evse_id, c.purpose)), status_of),
    cmd.GetCompositeSchedule: (one("GetCompositeSchedule", lambda c: fd.get_composite_schedule(
        c.evse_id, c.duration_s, c.unit)), decoded(lambda c, a: CommandResult(a["status"],
                                                                              data=fd.composite_schedule(a)))),
    cmd.ChangeAvailability: (one("ChangeAvailability", lambda c: fd.change_availability(c.evse_id, c.operative)),
                             status_of),
    cmd.Reset: (one("Reset", lambda c: fd.reset(c.hard)), status_of),
    cmd.UnlockConnector: (one("UnlockConnector", lambda c: fd.unlock_connector(c.evse)), status_of),
    cmd.ReserveNow: (one("ReserveNow", lambda c: fd.reserve_now(c.reservation_id, c.evse_id, c.id_token,
                                                                c.expires_at)), status_of),
    cmd.CancelReservation: (one("CancelReservation", lambda c: fd.cancel_reservation(c.reservation_id)), status_of),
    cmd.TriggerMessage: (_trigger, status_of),
    cmd.GetConfiguration: (one("GetConfiguration", lambda c: fd.get_configuration(list(c.keys) if c.keys else None)),
                           decoded(lambda c, a: CommandResult(CommandStatus.ACCEPTED, data=fd.configuration(a)))),
    cmd.ChangeConfiguration: (one("ChangeConfiguration", lambda c: fd.change_configuration(c.key, c.value)),
                              status_of),
    cmd.RawCall: (lambda c: [(c.action, dict(c.payload))], status_of),
    cmd.CertificateSigned: (_certificate_signed, status_of),
    cmd.InstallCertificate: (_install, status_of),
    cmd.GetInstalledCertificates: (_installed, _installed_result),
    cmd.DeleteCertificate: (one("DeleteCertificate", lambda c: fd.delete_certificate(c.hash_data)), status_of),
}
