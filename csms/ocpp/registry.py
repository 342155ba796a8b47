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
(v16/v201 handlers) runs its version's command table (csms.ocpp.v16.commands, csms.ocpp.v201.commands).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from csms.domain.commands import ChangeConfiguration, Command, RawCall
from csms.domain.enums import CommandStatus, RegistrationStatus
from csms.domain.model import Capabilities, CommandResult, StationInfo
from csms.ocpp.connection import CommandFailed, OcppConnection

log = logging.getLogger("csms.ocpp")

_DEFAULT_CAPS = Capabilities()


class ConnectionRegistry:
    def __init__(self) -> None:
        self._conns: dict[str, OcppConnection] = {}
        self._caps: dict[str, Capabilities] = {}
        #: Per station, the last successful discovery and what the station had booted as then
        #: (OcppConnection.discovered): a reconnect of the same station reuses it (OcppConnection.remembered).
        self._discovered: dict[str, tuple[StationInfo | None, Capabilities]] = {}

    # --- bookkeeping (used by OcppServer) --------------------------------------------------------
    def register(self, station_id: str, conn: OcppConnection) -> OcppConnection | None:
        """Make `conn` the station's current connection; returns the one it replaces, if any."""
        old = self._conns.get(station_id)
        if old is not None and old.discovered is not None:
            self._discovered[station_id] = old.discovered
        self._conns[station_id] = conn
        return old

    def discovered(self, station_id: str) -> tuple[StationInfo | None, Capabilities] | None:
        """(boot info, capabilities) of the station's last successful discovery, kept past its connection."""
        conn = self._conns.get(station_id)
        if conn is not None and conn.discovered is not None:
            return conn.discovered
        return self._discovered.get(station_id)

    def unregister(self, station_id: str, conn: OcppConnection) -> bool:
        """Forget `conn`. True if it was the current connection (only then is the station offline)."""
        if conn.capabilities is not None:
            self._caps[station_id] = conn.capabilities
        if self._conns.get(station_id) is conn:
            if conn.discovered is not None:  # a replaced connection's was kept by register()
                self._discovered[station_id] = conn.discovered
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

    async def send(self, station_id: str, command: Command) -> CommandResult:
        """Any command (csms.domain.commands), through the station's version table."""
        if isinstance(command, ChangeConfiguration | RawCall):  # may change what a discovery found: ask again
            self.forget_discovery(station_id)
        return await self._run(station_id, type(command).__name__, lambda c: c.send(command))

    async def refresh_capabilities(self, station_id: str) -> Capabilities:
        conn = self._conns.get(station_id)
        if conn is None:
            return self.capabilities(station_id)
        try:
            conn.capabilities = await conn.fetch_capabilities()
            conn.discovered = (conn.boot_info, conn.capabilities)
        except CommandFailed as e:
            log.info("capabilities unknown station=%s status=%s", station_id, e.result.status)
        return self.capabilities(station_id)

    def forget_discovery(self, station_id: str) -> None:
        """The station's next connection asks for its capabilities again."""
        self._discovered.pop(station_id, None)
        conn = self._conns.get(station_id)
        if conn is not None:
            conn.discovered = None

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
            # An accepted command at DEBUG (smart charging sends thousands; csms_ocpp_call_latency_seconds counts them);
            # anything else at INFO, where an operator looks for why a charger did not follow.
            log.log(logging.DEBUG if result.accepted else logging.INFO,
                    "command station=%s command=%s status=%s ms=%.0f detail=%s", station_id, name,
                    result.status, (time.perf_counter() - t0) * 1000, result.detail)
        return result
