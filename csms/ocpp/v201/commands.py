"""The version-neutral gateway commands, spoken to a 2.0.1 charger (mixed into V201ChargePoint)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from csms.domain.certificates import CertificateHashData, CertificateUse, SigningUse
from csms.domain.enums import CommandStatus
from csms.domain.ids import EvseRef
from csms.domain.model import Capabilities, ChargingProfile, CommandResult
from csms.ocpp.connection import refused, status_result
from csms.ocpp.v201 import from_domain as fd


class V201Commands:
    request: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

    async def remote_start(self, evse_id: int | None, id_token: str, remote_start_id: int,
                           token_type: str | None = None) -> CommandResult:
        return status_result(await self.request("RequestStartTransaction",
                                                fd.remote_start(evse_id, id_token, remote_start_id, token_type)))

    async def remote_stop(self, charger_tx_id: str) -> CommandResult:
        return status_result(await self.request("RequestStopTransaction", fd.remote_stop(charger_tx_id)))

    async def set_charging_profile(self, evse_id: int, profile: ChargingProfile) -> CommandResult:
        return status_result(await self.request("SetChargingProfile", fd.set_charging_profile(evse_id, profile)))

    async def clear_charging_profile(self, profile_id: int | None, evse_id: int | None,
                                     purpose: str | None) -> CommandResult:
        return status_result(await self.request(
            "ClearChargingProfile", fd.clear_charging_profile(profile_id, evse_id, purpose)))

    async def get_composite_schedule(self, evse_id: int, duration_s: int, unit: str | None) -> CommandResult:
        answer = await self.request("GetCompositeSchedule", fd.get_composite_schedule(evse_id, duration_s, unit))
        return CommandResult(answer["status"], data=fd.composite_schedule(answer))

    async def change_availability(self, evse_id: int | None, operative: bool) -> CommandResult:
        return status_result(await self.request("ChangeAvailability", fd.change_availability(evse_id, operative)))

    async def reset(self, hard: bool) -> CommandResult:
        return status_result(await self.request("Reset", fd.reset(hard)))

    async def unlock_connector(self, evse: EvseRef) -> CommandResult:
        return status_result(await self.request("UnlockConnector", fd.unlock_connector(evse)))

    async def reserve_now(self, reservation_id: int, evse_id: int | None, id_token: str,
                          expires_at: datetime, token_type: str | None = None) -> CommandResult:
        return status_result(await self.request(
            "ReserveNow", fd.reserve_now(reservation_id, evse_id, id_token, expires_at, token_type)))

    async def cancel_reservation(self, reservation_id: int) -> CommandResult:
        return status_result(await self.request("CancelReservation", fd.cancel_reservation(reservation_id)))

    async def trigger_message(self, message: str, evse_id: int | None) -> CommandResult:
        return status_result(await self.request("TriggerMessage", fd.trigger_message(message, evse_id)))

    async def get_configuration(self, keys: list[str] | None) -> CommandResult:
        """GetVariables for the keys (None: every well-known key). Keys that are neither well-known
        1.6 keys nor "Component.Variable" are reported unknown without asking."""
        wanted = list(keys) if keys else list(fd.VARIABLES)
        payload = fd.get_variables(wanted)
        if not payload["getVariableData"]:
            return CommandResult(CommandStatus.ACCEPTED, data={"values": {}, "readonly": [], "unknown": wanted})
        answer = await self.request("GetVariables", payload)
        return CommandResult(CommandStatus.ACCEPTED, data=fd.variables(wanted, answer))

    async def change_configuration(self, key: str, value: str) -> CommandResult:
        payload = fd.set_variables(key, value)
        if payload is None:
            return refused(f"{key!r} is neither a known key nor Component.Variable")
        answer = await self.request("SetVariables", payload)
        return CommandResult(fd.set_variable_status(answer), data=answer)

    async def raw_call(self, action: str, payload: dict[str, Any]) -> CommandResult:
        return status_result(await self.request(action, payload))

    async def certificate_signed(self, chain_pem: str, use: SigningUse) -> CommandResult:
        return status_result(await self.request("CertificateSigned", fd.certificate_signed(chain_pem, use)))

    async def install_certificate(self, use: CertificateUse, pem: str) -> CommandResult:
        payload = fd.install_certificate(use, pem)
        if payload is None:
            return refused(f"{use.value} is reported by chargers, never installed")
        return status_result(await self.request("InstallCertificate", payload))

    async def installed_certificates(self, uses: list[CertificateUse] | None) -> CommandResult:
        answer = await self.request("GetInstalledCertificateIds", fd.get_installed_certificate_ids(uses))
        return CommandResult(answer["status"], data={"certificates": fd.installed_certificates(answer),
                                                     "raw": answer})

    async def delete_certificate(self, hash_data: CertificateHashData) -> CommandResult:
        return status_result(await self.request("DeleteCertificate", fd.delete_certificate(hash_data)))

    async def fetch_capabilities(self) -> Capabilities:
        answer = await self.request("GetVariables", fd.get_variables(fd.CAPABILITY_KEYS))
        return fd.capabilities(fd.variables(fd.CAPABILITY_KEYS, answer)["values"])
