"""Live charger connections by station id, and the version-neutral gateway that routes commands to them.

`ConnectionRegistry` implements csms.domain.ports.ChargerGateway. Every command returns a
CommandResult and never raises for the charger's refusal, absence or silence:

* OFFLINE: the station has no connection (or it closed while the command waited for its answer);
* TIMEOUT: no answer within the server's response timeout (OcppServerConfig.response_timeout_s);
* ERROR: the charger answered with a CALLERROR (code and description in `detail` and `data`), its
  answer was not schema-valid, or the request could not be expressed (e.g. invalid raw_call payload);
* otherwise the charger's own status word (Accepted, Rejected, Scheduled, NotSupported, ...), with
  the answer in `data`.

Commands to one station are serialised: at most one CALL is outstanding per charger, the others
wait for it in arrival order. The registry does not know any OCPP version; each connection class
(v16/v201 handlers) implements the commands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from csms.domain.certificates import CertificateHashData, CertificateUse, SigningUse
from csms.domain.enums import CommandStatus, RegistrationStatus
from csms.domain.ids import EvseRef
from csms.domain.model import Capabilities, ChargingProfile, CommandResult
from csms.ocpp.connection import CommandFailed, OcppConnection

log = logging.getLogger("csms.ocpp")

_DEFAULT_CAPS = Capabilities()


class ConnectionRegistry:
    def __init__(self) -> None:
        self._conns: dict[str, OcppConnection] = {}
        self._caps: dict[str, Capabilities] = {}

    # --- bookkeeping (used by OcppServer) --------------------------------------------------------
    def register(self, station_id: str, conn: OcppConnection) -> OcppConnection | None:
        """Make `conn` the station's current connection; returns the one it replaces, if any."""
        old = self._conns.get(station_id)
        self._conns[station_id] = conn
        return old

    def unregister(self, station_id: str, conn: OcppConnection) -> bool:
        """Forget `conn`. True if it was the current connection (only then is the station offline)."""
        if conn.capabilities is not None:
            self._caps[station_id] = conn.capabilities
        if self._conns.get(station_id) is conn:
            del self._conns[station_id]
            return True
        return False

    def connection(self, station_id: str) -> OcppConnection | None:
        return self._conns.get(station_id)

    def connected_ids(self) -> list[str]:
        return list(self._conns)

    def protocol(self, station_id: str) -> str | None:
        conn = self._conns.get(station_id)
        return conn.protocol if conn else None

    def set_registration(self, station_id: str, status: RegistrationStatus) -> bool:
        """An operator changed the station's registration: the live connection (if any) gates its messages by
        it at once. True if the station is connected."""
        conn = self._conns.get(station_id)
        if conn is not None:
            conn.registration = status
        return conn is not None

    # --- ChargerGateway --------------------------------------------------------------------------
    def is_connected(self, station_id: str) -> bool:
        return station_id in self._conns

    def capabilities(self, station_id: str) -> Capabilities:
        """Discovered after the station became ready (GetConfiguration / GetVariables); the last
        known value survives a disconnect; default: amps only."""
        conn = self._conns.get(station_id)
        if conn is not None and conn.capabilities is not None:
            return conn.capabilities
        return self._caps.get(station_id, _DEFAULT_CAPS)

    async def remote_start(self, station_id: str, evse_id: int | None, id_token: str,
                           remote_start_id: int, token_type: str | None = None) -> CommandResult:
        return await self._run(station_id, "remote_start",
                               lambda c: c.remote_start(evse_id, id_token, remote_start_id, token_type))

    async def remote_stop(self, station_id: str, charger_tx_id: str) -> CommandResult:
        return await self._run(station_id, "remote_stop", lambda c: c.remote_stop(charger_tx_id))

    async def set_charging_profile(self, station_id: str, evse_id: int, profile: ChargingProfile) -> CommandResult:
        return await self._run(station_id, "set_charging_profile", lambda c: c.set_charging_profile(evse_id, profile))

    async def clear_charging_profile(self, station_id: str, profile_id: int | None = None,
                                     evse_id: int | None = None, purpose: str | None = None) -> CommandResult:
        return await self._run(station_id, "clear_charging_profile",
                               lambda c: c.clear_charging_profile(profile_id, evse_id, purpose))

    async def get_composite_schedule(self, station_id: str, evse_id: int, duration_s: int,
                                     unit: str | None = None) -> CommandResult:
        return await self._run(station_id, "get_composite_schedule",
                               lambda c: c.get_composite_schedule(evse_id, duration_s, unit))

    async def change_availability(self, station_id: str, evse_id: int | None, operative: bool) -> CommandResult:
        return await self._run(station_id, "change_availability", lambda c: c.change_availability(evse_id, operative))

    async def reset(self, station_id: str, hard: bool = False) -> CommandResult:
        return await self._run(station_id, "reset", lambda c: c.reset(hard))

    async def unlock_connector(self, station_id: str, evse: EvseRef) -> CommandResult:
        return await self._run(station_id, "unlock_connector", lambda c: c.unlock_connector(evse))

    async def reserve_now(self, station_id: str, reservation_id: int, evse_id: int | None, id_token: str,
                          expires_at: datetime, token_type: str | None = None) -> CommandResult:
        return await self._run(station_id, "reserve_now",
                               lambda c: c.reserve_now(reservation_id, evse_id, id_token, expires_at, token_type))

    async def cancel_reservation(self, station_id: str, reservation_id: int) -> CommandResult:
        return await self._run(station_id, "cancel_reservation", lambda c: c.cancel_reservation(reservation_id))

    async def trigger_message(self, station_id: str, message: str, evse_id: int | None = None) -> CommandResult:
        return await self._run(station_id, "trigger_message", lambda c: c.trigger_message(message, evse_id))

    async def get_configuration(self, station_id: str, keys: list[str] | None = None) -> CommandResult:
        return await self._run(station_id, "get_configuration", lambda c: c.get_configuration(keys))

    async def change_configuration(self, station_id: str, key: str, value: str) -> CommandResult:
        return await self._run(station_id, "change_configuration", lambda c: c.change_configuration(key, value))

    async def raw_call(self, station_id: str, action: str, payload: dict[str, object]) -> CommandResult:
        """Any action of the station's version; `payload` in camelCase, validated against the schema.
        The answer payload is returned in `data`."""
        return await self._run(station_id, action, lambda c: c.raw_call(action, dict(payload)))

    async def certificate_signed(self, station_id: str, chain_pem: str, use: SigningUse) -> CommandResult:
        return await self._run(station_id, "certificate_signed", lambda c: c.certificate_signed(chain_pem, use))

    async def install_certificate(self, station_id: str, use: CertificateUse, pem: str) -> CommandResult:
        return await self._run(station_id, "install_certificate", lambda c: c.install_certificate(use, pem))

    async def installed_certificates(self, station_id: str, uses: list[CertificateUse] | None = None) -> CommandResult:
        return await self._run(station_id, "installed_certificates", lambda c: c.installed_certificates(uses))

    async def delete_certificate(self, station_id: str, hash_data: CertificateHashData) -> CommandResult:
        return await self._run(station_id, "delete_certificate", lambda c: c.delete_certificate(hash_data))

    async def refresh_capabilities(self, station_id: str) -> Capabilities:
        conn = self._conns.get(station_id)
        if conn is None:
            return self.capabilities(station_id)
        try:
            conn.capabilities = await conn.fetch_capabilities()
        except CommandFailed as e:
            log.info("capabilities unknown station=%s status=%s", station_id, e.result.status)
        return self.capabilities(station_id)

    async def _run(self, station_id: str, name: str,
                   send: Callable[[Any], Awaitable[CommandResult]]) -> CommandResult:
        conn = self._conns.get(station_id)
        if conn is None:
            result = CommandResult(CommandStatus.OFFLINE, detail="station not connected")
        else:
            t0 = time.perf_counter()
            try:
                result = await send(conn)
            except CommandFailed as e:
                result = e.result
            except Exception as e:  # noqa: BLE001 - a command never raises to the caller
                log.exception("command failed station=%s command=%s", station_id, name)
                result = CommandResult(CommandStatus.ERROR, detail=f"{type(e).__name__}: {e}")
            log.info("command station=%s command=%s status=%s ms=%.0f detail=%s", station_id, name,
                     result.status, (time.perf_counter() - t0) * 1000, result.detail)
        return result
