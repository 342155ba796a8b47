"""The version-neutral gateway commands, spoken to a 1.6 charger (mixed into V16ChargePoint).

Each command: build the 1.6 payload (from_domain), `request()` it, map the answer to a CommandResult.
`request()` raises CommandFailed for TIMEOUT / OFFLINE / ERROR; the registry turns that into the result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from csms.domain.certificates import CertificateHashData, CertificateUse, SigningUse
from csms.domain.enums import CommandStatus
from csms.domain.ids import EvseRef
from csms.domain.model import Capabilities, ChargingProfile, CommandResult
from csms.ocpp.connection import refused, status_result
from csms.ocpp.v16 import from_domain as fd


class V16Commands:
    request: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

    async def remote_start(self, evse_id: int | None, id_token: str, remote_start_id: int,
                           token_type: str | None = None) -> CommandResult:  # 1.6 idTags have no type
        # 1.6 has no remoteStartId: the StartTransaction that follows is matched by connector and idTag.
        return status_result(await self.request("RemoteStartTransaction", fd.remote_start(evse_id, id_token)))

    async def remote_stop(self, charger_tx_id: str) -> CommandResult:
        try:
            payload = fd.remote_stop(charger_tx_id)
        except ValueError:
            return CommandResult(CommandStatus.ERROR, detail=f"1.6 transaction ids are integers: {charger_tx_id!r}")
        return status_result(await self.request("RemoteStopTransaction", payload))

    async def set_charging_profile(self, evse_id: int, profile: ChargingProfile) -> CommandResult:
        try:
            payload = fd.set_charging_profile(evse_id, profile)
        except ValueError:
            return CommandResult(CommandStatus.ERROR, detail=f"1.6 transaction ids are integers: "
                                                            f"{profile.charger_tx_id!r}")
        return status_result(await self.request("SetChargingProfile", payload))

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
            "ReserveNow", fd.reserve_now(reservation_id, evse_id, id_token, expires_at)))

    async def cancel_reservation(self, reservation_id: int) -> CommandResult:
        return status_result(await self.request("CancelReservation", fd.cancel_reservation(reservation_id)))

    async def trigger_message(self, message: str, evse_id: int | None) -> CommandResult:
        if message in fd.SIGN_TRIGGERS:  # the security whitepaper's trigger for a new charger certificate
            return status_result(await self.request("ExtendedTriggerMessage", fd.extended_trigger(message, evse_id)))
        return status_result(await self.request("TriggerMessage", fd.trigger_message(message, evse_id)))

    async def get_configuration(self, keys: list[str] | None) -> CommandResult:
        answer = await self.request("GetConfiguration", fd.get_configuration(keys))
        return CommandResult(CommandStatus.ACCEPTED, data=fd.configuration(answer))

    async def change_configuration(self, key: str, value: str) -> CommandResult:
        return status_result(await self.request("ChangeConfiguration", fd.change_configuration(key, value)))

    async def raw_call(self, action: str, payload: dict[str, Any]) -> CommandResult:
        return status_result(await self.request(action, payload))

    async def certificate_signed(self, chain_pem: str, use: SigningUse) -> CommandResult:
        if use is not SigningUse.CHARGING_STATION:
            return refused("OCPP 1.6 chargers have no V2G certificate")
        return status_result(await self.request("CertificateSigned", fd.certificate_signed(chain_pem)))

    async def install_certificate(self, use: CertificateUse, pem: str) -> CommandResult:
        payload = fd.install_certificate(use, pem)
        if payload is None:
            return refused(f"OCPP 1.6 installs CSMS and manufacturer roots only, not {use.value}")
        return status_result(await self.request("InstallCertificate", payload))

    async def installed_certificates(self, uses: list[CertificateUse] | None) -> CommandResult:
        """1.6 asks for one use at a time: one request per use, the rows joined (NotFound for all: NotFound)."""
        wanted = uses or list(fd.CERTIFICATE_USE)
        unknown = [u.value for u in wanted if u not in fd.CERTIFICATE_USE]
        if unknown:
            return refused(f"OCPP 1.6 has no certificate use {', '.join(unknown)}")
        rows: list[dict[str, str]] = []
        found = False
        for use in wanted:
            answer = await self.request("GetInstalledCertificateIds", fd.get_installed_certificate_ids(use))
            found = found or answer.get("status") == "Accepted"
            rows += fd.installed_certificates(use, answer)
        return CommandResult("Accepted" if found else "NotFound", data={"certificates": rows})

    async def delete_certificate(self, hash_data: CertificateHashData) -> CommandResult:
        return status_result(await self.request("DeleteCertificate", fd.delete_certificate(hash_data)))

    async def fetch_capabilities(self) -> Capabilities:
        answer = await self.request("GetConfiguration", fd.get_configuration(fd.CAPABILITY_KEYS))
        return fd.capabilities(fd.configuration(answer)["values"])
