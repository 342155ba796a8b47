"""The command table of OCPP 2.0.1: each neutral command (csms.domain.commands) -> the 2.0.1 requests that carry
it, and the answers -> a CommandResult. Pure: the connection sends the requests (`OcppConnection.send`)."""

from __future__ import annotations

from typing import Any

from csms.domain import commands as cmd
from csms.domain.enums import CommandStatus
from csms.domain.model import CommandResult
from csms.ocpp.commands import CommandTable, decoded, one, refused, status_of
from csms.ocpp.v201 import from_domain as fd


def _get_configuration(c: cmd.GetConfiguration) -> list[tuple[str, dict[str, Any]]] | CommandResult:
    """GetVariables for the keys (None: every well-known key). Keys that are neither well-known 1.6 keys nor
    "Component.Variable" are reported unknown without asking."""
    wanted = list(c.keys) if c.keys else list(fd.VARIABLES)
    payload = fd.get_variables(wanted)
    if not payload["getVariableData"]:
        return CommandResult(CommandStatus.ACCEPTED, data={"values": {}, "readonly": [], "unknown": wanted})
    return [("GetVariables", payload)]


def _configuration(c: cmd.GetConfiguration, answer: dict[str, Any]) -> CommandResult:
    wanted = list(c.keys) if c.keys else list(fd.VARIABLES)
    return CommandResult(CommandStatus.ACCEPTED, data=fd.variables(wanted, answer))


def _change_configuration(c: cmd.ChangeConfiguration) -> list[tuple[str, dict[str, Any]]] | CommandResult:
    payload = fd.set_variables(c.key, c.value)
    if payload is None:
        return refused(f"{c.key!r} is neither a known key nor Component.Variable")
    return [("SetVariables", payload)]


def _install(c: cmd.InstallCertificate) -> list[tuple[str, dict[str, Any]]] | CommandResult:
    payload = fd.install_certificate(c.use, c.pem)
    if payload is None:
        return refused(f"{c.use.value} is reported by chargers, never installed")
    return [("InstallCertificate", payload)]


TABLE: CommandTable = {
    cmd.RemoteStart: (one("RequestStartTransaction", lambda c: fd.remote_start(
        c.evse_id, c.id_token, c.remote_start_id, c.token_type)), status_of),
    cmd.RemoteStop: (one("RequestStopTransaction", lambda c: fd.remote_stop(c.charger_tx_id)), status_of),
    cmd.SetChargingProfile: (one("SetChargingProfile", lambda c: fd.set_charging_profile(c.evse_id, c.profile)),
                             status_of),
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
                                                                c.expires_at, c.token_type)), status_of),
    cmd.CancelReservation: (one("CancelReservation", lambda c: fd.cancel_reservation(c.reservation_id)), status_of),
    cmd.TriggerMessage: (one("TriggerMessage", lambda c: fd.trigger_message(c.message, c.evse_id)), status_of),
    cmd.GetConfiguration: (_get_configuration, decoded(_configuration)),
    cmd.ChangeConfiguration: (_change_configuration,
                              decoded(lambda c, a: CommandResult(fd.set_variable_status(a), data=a))),
    cmd.RawCall: (lambda c: [(c.action, dict(c.payload))], status_of),
    cmd.CertificateSigned: (one("CertificateSigned", lambda c: fd.certificate_signed(c.chain_pem, c.use)),
                            status_of),
    cmd.InstallCertificate: (_install, status_of),
    cmd.GetInstalledCertificates: (one("GetInstalledCertificateIds", lambda c: fd.get_installed_certificate_ids(
        list(c.uses) if c.uses else None)), decoded(lambda c, a: CommandResult(
            a["status"], data={"certificates": fd.installed_certificates(a), "raw": a}))),
    cmd.DeleteCertificate: (one("DeleteCertificate", lambda c: fd.delete_certificate(c.hash_data)), status_of),
}
