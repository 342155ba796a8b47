"""The OCPP-J websocket endpoint: `ws://HOST:PORT{path_prefix}/{charge_point_id}`.

Handshake rules, checked before the upgrade, cheapest first (docs/ocpp.md):

1. path: `{path_prefix}/{id}`, else 404. The id is URL-decoded, 1..48 printable characters, no ':'
   (it is the HTTP Basic username) and no '/', else 400.
2. subprotocol: the first of `cfg.subprotocols` (server order) that the charger offers; a charger
   offering none of them is refused with 400, never served without a subprotocol.
3. identity: `directory.access(id)` None -> 404, unless `cfg.allow_unknown_chargers`.
4. security profile (csms.ocpp.security.admit): 2 and 3 need TLS (403 on ws://); 3 needs a client
   certificate (verified by the TLS layer against `tls.ca_file`) whose subject CN is the identity
   (401 without one, 403 for another); 1 and 2 need HTTP Basic auth with username == id and the right
   password, else 401 (also when no password is set: only profile 0 connects without one).

Failed attempts (unknown identity, refused profile, wrong password) are throttled per identity and per
remote address with exponential backoff (csms.ocpp.throttle): a blocked attempt gets 429 with Retry-After
before the directory lookup and before any password hash.

With `cfg.tls` set, the same handler also listens for wss:// on `tls.port` (`.tls_port`).

A second connection with an identity already connected replaces the first: the old one is closed
with 1000 "replaced by a new connection" and its end does not mark the station offline; only the end
of the current connection calls `events.disconnected`. Keepalive: a charger that sent nothing for
`ping_interval_s` is pinged (one that talks is not: keepalive.py); no pong within `ping_timeout_s` closes
the connection (-> disconnected), at most ping_interval_s + 2 x ping_timeout_s after the charger went silent
(the close handshake waits min(5 s, ping_timeout_s)).

Readiness: `events.ready(id)` runs as a task once the station may receive CSMS-initiated calls:
after a BootNotification answered Accepted has been sent, and on connect of a station the directory
knows if no BootNotification arrives within `ready_grace_s` (a charger reconnecting after a CSMS
restart without rebooting still gets its profiles). Capabilities are fetched just before, once per
station: a reconnect reuses what an earlier connection discovered unless the station boots as something
else (another firmware, model or serial), or a ChangeConfiguration/RawCall was sent to it meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import weakref
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import InvalidHeader, NegotiationError
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.config import OcppServerConfig
from csms.domain.certificates import CertificateEvents
from csms.domain.clock import Clock
from csms.domain.enums import RegistrationStatus
from csms.domain.ports import ChargerEvents, StationAccess, StationDirectory
from csms.ocpp.auth import BasicAuthChecker
from csms.ocpp.common import identity_from_path
from csms.ocpp.connection import OcppConnection
from csms.ocpp.keepalive import QuietKeepaliveConnection
from csms.ocpp.observe import NULL_OBSERVER, OcppObserver
from csms.ocpp.ready import ReadyGate
from csms.ocpp.registry import ConnectionRegistry
from csms.ocpp.security import admit, certificate_cn, server_ssl_context
from csms.ocpp.throttle import LoginThrottle
from csms.ocpp.v16.handlers import V16ChargePoint
from csms.ocpp.v201.handlers import V201ChargePoint

log = logging.getLogger("csms.ocpp")

ADAPTERS: dict[str, type[OcppConnection]] = {"ocpp1.6": V16ChargePoint, "ocpp2.0.1": V201ChargePoint}


class OcppServer:
    """Serve OCPP 1.6J and 2.0.1 on one endpoint. `async with OcppServer(...)` or start()/stop().

    Args:
        cfg: host, port (0: ephemeral, see `.port`), path prefix, subprotocol preference, keepalive,
            response timeout, max frame size.
        events: the ChargerEvents port every charger message is delivered to.
        directory: StationDirectory consulted at the handshake.
        clock: timestamps of answers (currentTime) and of messages without one.
        registry: the ConnectionRegistry (gateway) to fill; a new one by default (`.registry`).
        ready_grace_s: how long a known station that connects without booting is given to send a
            BootNotification before events.ready is called anyway.
        compression: websockets permessage-deflate ("deflate") or None. Off by default: OCPP frames
            are small and deflate costs ~40-60 KiB of zlib state per connection.
        observer: told about every message handled and every request sent (metrics).
    """

    def __init__(
        self, cfg: OcppServerConfig, events: ChargerEvents, directory: StationDirectory, clock: Clock, *,
        registry: ConnectionRegistry | None = None, ready_grace_s: float = 1.0, compression: str | None = None,
        observer: OcppObserver = NULL_OBSERVER, throttle: LoginThrottle | None = None,
        certificates: CertificateEvents | None = None,
    ) -> None:
        self.cfg = cfg
        self.events = events
        self.directory = directory
        self.clock = clock
        self.registry = registry if registry is not None else ConnectionRegistry()
        self.ready_grace_s = ready_grace_s
        #: Capability discovery + ready of at most READY_AT_ONCE connections at a time (csms/ocpp/ready.py).
        self.ready_gate = ReadyGate()
        self.compression = compression
        self.observer = observer
        #: SignCertificate and the ISO 15118 certificate messages go here (None: answered NotSupported).
        self.certificates = certificates
        self.port: int | None = None
        self.tls_port: int | None = None
        self._server: Server | None = None
        self._tls_server: Server | None = None
        self._auth = BasicAuthChecker()
        #: Failed logins per identity and per address (csms.ocpp.throttle); `.refused` counts blocked attempts.
        self.throttle = throttle if throttle is not None else LoginThrottle()
        #: What the handshake found, for the connection's start (None: an allowed unknown charger).
        self._access: weakref.WeakKeyDictionary[ServerConnection, StationAccess | None] = weakref.WeakKeyDictionary()
        self._closers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        cfg = self.cfg
        self._server = await self._serve(cfg.host, cfg.port, None)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("ocpp server listening url=ws://%s:%s%s/{id} subprotocols=%s", cfg.host, self.port,
                 cfg.path_prefix, ",".join(cfg.subprotocols))
        if cfg.tls is not None:
            host = cfg.tls.host or cfg.host
            try:
                self._tls_server = await self._serve(host, cfg.tls.port, server_ssl_context(cfg.tls))
            except BaseException:
                await self.stop()
                raise
            self.tls_port = self._tls_server.sockets[0].getsockname()[1]
            log.info("ocpp server listening url=wss://%s:%s%s/{id} client_certificates=%s", host, self.tls_port,
                     cfg.path_prefix, cfg.tls.ca_file is not None)

    async def _serve(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> Server:
        cfg = self.cfg
        return await serve(
            self._handle, host, port, ssl=ssl_context,
            subprotocols=[Subprotocol(p) for p in cfg.subprotocols],
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            ping_interval=cfg.ping_interval_s, ping_timeout=cfg.ping_timeout_s,
            create_connection=QuietKeepaliveConnection,  # pings only chargers that went quiet (keepalive.py)
            # After a missed pong, websockets still waits close_timeout for the closing handshake
            # before dropping the TCP connection (default 10 s); a dead charger never answers it.
            close_timeout=min(5.0, cfg.ping_timeout_s),
            max_size=cfg.max_message_bytes, compression=self.compression,
            logger=logging.getLogger("csms.ocpp.ws"),
        )

    async def stop(self) -> None:
        """Close every connection (1001 going away) and wait for their handlers to finish."""
        servers = [srv for srv in (self._server, self._tls_server) if srv is not None]
        if not servers:
            return
        for srv in servers:
            srv.close()
        for srv in servers:
            await srv.wait_closed()
        self._server = self._tls_server = None
        log.info("ocpp server stopped")

    async def __aenter__(self) -> OcppServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- handshake -------------------------------------------------------------------------------
    def _select_subprotocol(self, conn: ServerConnection, offered: Any) -> Subprotocol:
        for proto in self.cfg.subprotocols:  # server preference wins, deterministically
            if proto in offered:
                return Subprotocol(proto)
        raise NegotiationError(f"expected one of {', '.join(self.cfg.subprotocols)}")

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        status, ident = identity_from_path(request.path, self.cfg.path_prefix)
        if status:
            return self._refuse(conn, status, ident, request.path)
        try:
            offered = [p for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in parse_subprotocol(h)]
        except InvalidHeader:
            offered = []
        if not any(p in offered for p in self.cfg.subprotocols):  # checked here too: before any lookup
            return self._refuse(conn, HTTPStatus.BAD_REQUEST, f"offer one of {', '.join(self.cfg.subprotocols)}",
                                ident)
        addr = _remote_host(conn)
        now = asyncio.get_running_loop().time()
        wait_s = self.throttle.retry_after_s(ident, addr, now)
        if wait_s:  # before any lookup or hash: refusing costs two dict reads (no log line per attempt)
            resp = conn.respond(HTTPStatus.TOO_MANY_REQUESTS, "too many failed attempts\n")
            resp.headers["Retry-After"] = str(math.ceil(wait_s))
            return resp
        access = await self.directory.access(ident)
        if access is None and not self.cfg.allow_unknown_chargers:
            self.throttle.failed(None, addr, now)
            return self._refuse(conn, HTTPStatus.NOT_FOUND, "unknown charger", ident)
        ssl_object = conn.transport.get_extra_info("ssl_object")
        profile = access.security_profile if access is not None else self.cfg.security_profile
        verdict = admit(profile, ident, tls=ssl_object is not None, known=access is not None,
                        cert_cn=certificate_cn(ssl_object.getpeercert()) if ssl_object is not None else None)
        if verdict.status is not None:
            self.throttle.failed(ident, addr, now)
            return self._refuse(conn, verdict.status, verdict.reason, ident)
        if verdict.needs_password:
            assert access is not None
            header = request.headers.get("Authorization")
            if not access.password_hash or not await self._auth.check(ident, header, access.password_hash):
                self.throttle.failed(ident, addr, now)
                resp = self._refuse(conn, HTTPStatus.UNAUTHORIZED, "authentication required", ident)
                resp.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
                return resp
        self.throttle.succeeded(ident, addr)
        self._access[conn] = access
        return None

    @staticmethod
    def _refuse(conn: ServerConnection, status: int, reason: str, who: str) -> Response:
        log.info("handshake refused station=%s status=%s reason=%s remote=%s", who, int(status), reason,
                 _remote(conn))
        return conn.respond(status, reason + "\n")

    # --- connection lifecycle --------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        _, ident = identity_from_path(ws.request.path if ws.request else "", self.cfg.path_prefix)
        proto = ws.subprotocol or ""
        conn = ADAPTERS[proto](ident, ws, events=self.events, clock=self.clock,
                               response_timeout_s=self.cfg.response_timeout_s, observer=self.observer,
                               certificates=self.certificates)
        conn.ready_gate = self.ready_gate
        old = self.registry.register(ident, conn)
        conn.remembered = self.registry.discovered(ident)
        log.info("connected station=%s protocol=%s remote=%s replaced=%s", ident, proto, _remote(ws),
                 old is not None)
        if old is not None:
            self._spawn(old.close_replaced())
        try:
            await self.events.connected(ident, proto)
        except Exception:  # noqa: BLE001 - the charger is still served; the service logs its own failure
            log.exception("events.connected failed station=%s", ident)
        access = self._access.pop(ws, None)
        # Until Accepted, everything but BootNotification is answered SecurityError (unknown: Pending).
        conn.registration = access.registration if access is not None else RegistrationStatus.PENDING
        if access is not None and access.known and access.registration is RegistrationStatus.ACCEPTED:
            conn.schedule_ready(self.ready_grace_s, unless_booted=True)
        try:
            await conn.start()
        finally:
            current = self.registry.unregister(ident, conn)
            log.info("disconnected station=%s code=%s reason=%s replaced=%s", ident, ws.close_code,
                     ws.close_reason or "", not current)
            if current:
                try:
                    await self.events.disconnected(ident)
                except Exception:  # noqa: BLE001
                    log.exception("events.disconnected failed station=%s", ident)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._closers.add(t)
        t.add_done_callback(self._closers.discard)


def _remote_host(conn: ServerConnection) -> str:
    try:
        return str(conn.remote_address[0])
    except Exception:  # noqa: BLE001
        return "?"


def _remote(conn: ServerConnection) -> str:
    try:
        host, port = conn.remote_address[:2]
        return f"{host}:{port}"
    except Exception:  # noqa: BLE001
        return "?"
