"""One charger's OCPP-J connection: the thin asyncio shell around the sans-I/O core (csms.ocpp.protocol).

The core knows OCPP-J (framing, CALLERRORs for bad frames, admission of CALLs, correlation, deadlines,
validation both ways); this shell does the I/O and the concurrency:

* the reader (`start`) feeds each websocket message to the core and writes out what it has to send; answers
  resolve the awaiting `request` at once; CALLs go to a per-connection worker that takes them up one by one,
  in order (`admit` there, then the `@on` handler, then the answer). The reader never awaits a handler, so a
  handler (or the events port behind it) may await a CALL to the same charger without deadlocking (the `ocpp`
  library's `ChargePoint` awaited handlers inline in its reader).
* CSMS-initiated requests (`request`, `send(command)`) queue in the core, at most one outstanding; the
  shell arms one timer at the core's next deadline (the event loop's monotonic clock) and calls `expire`.
* `request()` returns the answer payload or raises CommandFailed carrying an explicit CommandResult
  (TIMEOUT / OFFLINE / ERROR); frames are logged at DEBUG on "csms.ocpp.frames".

What is still the `ocpp` library's: its JSON schema files (csms.ocpp.schemas compiles them), its
`call_result` dataclasses and `Action` enums in the version adapters. Routing is our own `@on`/`@after`
(csms.ocpp.routing), with the same snake_case keyword arguments.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Coroutine
from typing import Any

from websockets.exceptions import ConnectionClosed

from csms.domain.certificates import CertificateEvents
from csms.domain.clock import Clock
from csms.domain.enums import CommandStatus, RegistrationStatus
from csms.domain.model import Capabilities, CommandResult, StationInfo
from csms.domain.ports import ChargerEvents
from csms.domain.commands import Command
from csms.ocpp import errors as oe
from csms.ocpp import protocol as p
from csms.ocpp.casing import snake_case, to_payload
from csms.ocpp.commands import CommandTable, refused
from csms.ocpp.observe import NULL_OBSERVER, OcppObserver
from csms.ocpp.routing import Route, routes
from csms.ocpp.ready import UNLIMITED, ReadyGate

log = logging.getLogger("csms.ocpp")
frames = logging.getLogger("csms.ocpp.frames")

_DEBUG = logging.DEBUG

__all__ = ["CommandFailed", "OcppConnection", "snake_case"]


class CommandFailed(Exception):
    """A CSMS-initiated request that did not get a usable answer; `result` says why."""

    def __init__(self, result: CommandResult) -> None:
        super().__init__(result.status, result.detail)
        self.result = result


class OcppConnection:
    """Base of the per-version adapters (`v16.handlers.V16ChargePoint`, `v201.handlers.V201ChargePoint`).

    Subclasses set `protocol` ("ocpp1.6"), `_ocpp_version` ("1.6"), `_actions` (every action name of
    their version), `commands` (their version's command table: v16/commands.py, v201/commands.py),
    `@on`/`@after` handlers and `fetch_capabilities`.
    """

    protocol: str = ""
    _ocpp_version: str = ""
    #: Set by the server: how many connections run `_ready`'s requests at once (csms/ocpp/ready.py).
    ready_gate: ReadyGate = UNLIMITED
    _actions: frozenset[str] = frozenset()
    commands: CommandTable = {}
    _routes: dict[str, Route] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._routes = routes(cls)  # once per class, not per connection

    def __init__(
        self, station_id: str, connection: Any, *, events: ChargerEvents, clock: Clock,
        response_timeout_s: float, inbox_size: int = 64, observer: OcppObserver = NULL_OBSERVER,
        certificates: CertificateEvents | None = None,
    ) -> None:
        self.id = station_id
        self._connection = connection
        self._response_timeout = response_timeout_s
        self.events = events
        self.clock = clock
        self.observer = observer
        self.certs = certificates
        self.capabilities: Capabilities | None = None
        #: What the last BootNotification of this connection said the station is (None: no boot yet).
        self.boot_info: StationInfo | None = None
        #: (boot info, capabilities) of a discovery that succeeded on this connection: the registry keeps
        #: it past the connection (`ConnectionRegistry.discovered`).
        self.discovered: tuple[StationInfo | None, Capabilities] | None = None
        #: Set by the server from the registry: what an earlier connection of this station discovered.
        #: Reused instead of asking again when the station is the same (see `_remembered_capabilities`).
        self.remembered: tuple[StationInfo | None, Capabilities] | None = None
        self.core = p.OcppProtocol(self._ocpp_version, actions=self._actions,
                                   handled=frozenset(a for a, r in self._routes.items() if r.on is not None),
                                   response_timeout_s=response_timeout_s)
        self._inbox: asyncio.Queue[p.CallReceived | None] = asyncio.Queue(inbox_size)
        #: Our CALLs awaiting their outcome, by message id (resolved with the core's event).
        self._waiting: dict[str, asyncio.Future[p.Event]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._boot_seen = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def registration(self) -> RegistrationStatus:
        """Set by the server from the directory, then by each BootNotification answer, or by an operator."""
        return self.core.registration

    @registration.setter
    def registration(self, status: RegistrationStatus) -> None:
        self.core.registration = status

    # --- reading ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Read frames until the connection closes. Never raises ConnectionClosed.

        On close: pending requests (sent or queued) return OFFLINE, CALLs already received are still
        handled (their answers cannot be sent any more), then this returns.
        """
        worker = asyncio.create_task(self._work(), name=f"ocpp-worker-{self.id}")
        try:
            while True:
                raw = await self._connection.recv()
                await self.receive(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
        except ConnectionClosed:
            pass
        finally:
            self._closed = True
            self._settle(self.core.connection_lost())
            if self._timer is not None:
                self._timer.cancel()
            try:
                self._inbox.put_nowait(None)
            except asyncio.QueueFull:
                worker.cancel()
            _, pending = await asyncio.wait({worker}, timeout=self._response_timeout)
            for t in pending:
                t.cancel()

    @property
    def closed(self) -> bool:
        return self._closed

    async def receive(self, text: str) -> None:
        """One websocket message through the core: CALLs to the worker (waits while its inbox is full, which
        stops reading: backpressure), answers to their request, refusals written out."""
        if frames.isEnabledFor(_DEBUG):
            frames.debug("%s < %s", self.id, text)
        for ev in self.core.receive_text(text, asyncio.get_running_loop().time()):
            if type(ev) is p.CallReceived:
                await self._inbox.put(ev)
            elif type(ev) is p.ProtocolError:
                log.warning("malformed frame station=%s id=%s error=%s", self.id, ev.uid, ev.description)
            elif type(ev) is p.AnswerIgnored:
                log.warning("unexpected answer station=%s id=%s (late or unknown)", self.id, ev.uid)
            else:
                self._settle([ev])
        await self._flush()

    def _settle(self, events: list[p.Event]) -> None:
        """Hand our CALLs' outcomes to their waiting requests; re-arm the timer for the next deadline."""
        for ev in events:
            fut = self._waiting.get(ev.uid)
            if fut is not None and not fut.done():
                fut.set_result(ev)
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.core.next_deadline()
        if self._timer is not None:
            if deadline is not None and self._timer.when() == deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None and not self._closed:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_deadline)

    def _on_deadline(self) -> None:
        self._timer = None
        self._settle(self.core.expire(asyncio.get_running_loop().time()))
        if self.core.outstanding is not None:  # a queued CALL was released: write it
            self.spawn(self._flush())

    async def _flush(self) -> None:
        for frame in self.core.data_to_send():
            if frames.isEnabledFor(_DEBUG):
                frames.debug("%s > %s", self.id, frame)
            try:
                await self._connection.send(frame)
            except ConnectionClosed:
                log.info("frame not sent, connection closed station=%s", self.id)
                return

    # --- handling CALLs --------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            item = await self._inbox.get()
            if item is None:
                return
            try:
                await self._dispatch(item)
            except ConnectionClosed:
                pass
            except Exception:  # noqa: BLE001 - one bad message never kills the connection
                log.exception("dispatch failed station=%s", self.id)

    async def _dispatch(self, call: p.CallReceived) -> None:
        t0 = time.perf_counter()
        refusal = self.core.admit(call)
        if refusal is not None:
            await self._flush()
            self.observer.handled(self.protocol, self._label(call.action), time.perf_counter() - t0, refusal.kind)
            return
        route = self._routes[call.action]
        assert route.on is not None  # admit() refuses actions without a handler
        kwargs: dict[str, Any] = {}
        try:
            kwargs = snake_case(call.payload)
            result = route.on(self, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            self.core.send_result(call.uid, call.action, to_payload(result))
        except Exception as e:  # noqa: BLE001 - mapped to a CALLERROR in one place
            fault = oe.from_exception(e, call.action, self.id)
            self.core.send_error(call.uid, fault)
            await self._flush()
            self.observer.handled(self.protocol, self._label(call.action), time.perf_counter() - t0, fault.kind)
            return
        await self._flush()
        self.observer.handled(self.protocol, self._label(call.action), time.perf_counter() - t0, None)
        if route.after is not None:
            res = route.after(self, **kwargs)
            if inspect.isawaitable(res):
                self.spawn(res)  # type: ignore[arg-type]

    def _label(self, action: str) -> str:
        """The action as a metric label: a charger cannot create label values with made-up names."""
        return action if action in self._actions else "other"

    # --- CSMS-initiated requests -----------------------------------------------------------------
    async def request(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """`_request`, timed for the observer."""
        t0, result = time.perf_counter(), "answered"
        try:
            return await self._request(action, payload)
        except CommandFailed as e:
            result = str(e.result.status)
            raise
        finally:
            self.observer.requested(self.protocol, self._label(action), time.perf_counter() - t0, result)

    async def _request(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL (camelCase payload, validated against this version's schema) and return the
        charger's answer payload, validated too.

        Raises CommandFailed with ERROR (invalid request, CALLERROR, invalid answer), TIMEOUT (no
        answer within the response timeout) or OFFLINE (connection closed before the answer).
        Requests queue behind each other: at most one CALL is outstanding per charger.
        """
        if self._closed:
            raise CommandFailed(CommandResult(CommandStatus.OFFLINE, detail="connection closed"))
        loop = asyncio.get_running_loop()
        try:
            uid = self.core.send_call(action, payload, loop.time())
        except p.InvalidRequest as e:
            raise CommandFailed(CommandResult(CommandStatus.ERROR, detail=str(e))) from e
        fut: asyncio.Future[p.Event] = loop.create_future()
        self._waiting[uid] = fut
        try:
            self._arm_timer()
            await self._flush()
            outcome = await fut
        finally:
            del self._waiting[uid]
            if fut.cancelled() or not fut.done():  # the caller gave up: a queued CALL is never sent
                self.core.forget(uid)
        return self._answer_payload(outcome)

    def _answer_payload(self, ev: p.Event) -> dict[str, Any]:
        if type(ev) is p.CallResultReceived:
            if ev.error is None:
                return ev.payload  # type: ignore[no-any-return]
            data: dict[str, object] = {"answer": ev.payload} if type(ev.payload) is dict else {}
            raise CommandFailed(CommandResult(CommandStatus.ERROR, data=data, detail=ev.error))
        if type(ev) is p.CallErrorReceived:
            log.info("call error station=%s action=%s code=%s description=%s", self.id, ev.action, ev.code,
                     ev.description)
            raise CommandFailed(CommandResult(
                CommandStatus.ERROR, data={"error_code": ev.code, "error_description": ev.description,
                                           "error_details": ev.details},
                detail=f"{ev.code}: {ev.description}",
            ))
        if type(ev) is p.CallTimedOut:
            log.warning("no answer station=%s action=%s timeout_s=%s", self.id, ev.action, ev.timeout_s)
            raise CommandFailed(CommandResult(
                CommandStatus.TIMEOUT, detail=f"no answer to {ev.action} within {ev.timeout_s}s"))
        raise CommandFailed(CommandResult(CommandStatus.OFFLINE, detail="connection closed"))

    async def send(self, command: Command) -> CommandResult:
        """Run a command through this version's table: encode, send each request, decode the answers.
        Raises CommandFailed like `request` (the registry turns it into the result)."""
        entry = self.commands.get(type(command))
        if entry is None:
            return refused(f"{type(command).__name__} is not a command of OCPP {self._ocpp_version}")
        encode, decode = entry
        requests = encode(command)
        if isinstance(requests, CommandResult):  # cannot be expressed in this version: nothing sent
            return requests
        return decode(command, [await self.request(action, payload) for action, payload in requests])

    def certificates(self) -> CertificateEvents:
        """The certificate service, or a NotSupported CALLERROR saying that none is configured."""
        if self.certs is None:
            raise oe.OcppFault(oe.NOT_SUPPORTED, "certificate management is not configured on this central system")
        return self.certs

    # --- readiness -------------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` as a task owned by this connection (a reference is kept until it finishes)."""
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def schedule_ready(self, delay_s: float = 0.0, *, unless_booted: bool = False) -> None:
        """Call events.ready (after discovering capabilities once) in a task, after `delay_s`.

        `unless_booted`: skip it if a BootNotification arrived meanwhile (its Accepted answer
        schedules its own ready).
        """
        self.spawn(self._ready(delay_s, unless_booted))

    def note_boot(self, info: StationInfo) -> None:
        self._boot_seen = True
        self.boot_info = info

    def _remembered_capabilities(self) -> Capabilities | None:
        """What an earlier connection of this station discovered, if it still holds: the capability
        keys are read-only configuration of the firmware, so they change with what the station boots
        as (vendor, model, serial, firmware), not with a reconnect. A reconnect without a boot is the
        same station; a boot as anything else (a firmware update) asks again. In a boot storm this
        spares every reconnecting charger a GetConfiguration/GetVariables round trip (issue 10)."""
        if self.remembered is None:
            return None
        info, caps = self.remembered
        if self.boot_info is not None and self.boot_info != info:
            return None
        return caps

    async def _ready(self, delay_s: float, unless_booted: bool) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        if self._closed or (unless_booted and self._boot_seen):
            return
        async with self.ready_gate:  # a boot storm's readiness work queues behind its boots
            if self._closed:
                return
            if self.capabilities is None:
                self.capabilities = self._remembered_capabilities()
                if self.capabilities is not None:
                    self.discovered = (self.boot_info, self.capabilities)
            if self.capabilities is None:
                try:
                    self.capabilities = await self.fetch_capabilities()
                    self.discovered = (self.boot_info, self.capabilities)
                except CommandFailed as e:
                    log.info("capabilities unknown station=%s status=%s detail=%s", self.id, e.result.status,
                             e.result.detail)
                    self.capabilities = Capabilities()
            if self._closed:
                return
            try:
                await self.events.ready(self.id)
            except Exception:  # noqa: BLE001
                log.exception("events.ready failed station=%s", self.id)

    async def fetch_capabilities(self) -> Capabilities:
        """Ask the station what its smart charging supports. Overridden per version."""
        return Capabilities()

    async def close_replaced(self) -> None:
        """Close this connection because the same identity connected again (1000, reason given)."""
        await self._connection.close(1000, "replaced by a new connection")
