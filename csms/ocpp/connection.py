"""One charger's OCPP-J connection: frame routing, CALL dispatch, CSMS-initiated requests. Version-neutral.

Why the `ocpp` library's `ChargePoint.start()`/`route_message()`/`call()` are replaced:

* Its reader awaits each `@on` handler inline, so a handler that (directly or through the events
  port) awaits a CALL to the same charger deadlocks: the answer is never read. Here the reader only
  routes frames: answers resolve the pending request at once; CALLs go to a per-connection worker
  that handles them one by one, in order.
* It drops unparsable frames and frames with bad types without a CALLERROR. Here every frame but an
  answer gets one: with its message id when that can be read, else with id "-1" and RpcFrameworkError;
  codes are spelled for the connection's version (csms.ocpp.errors), and the connection keeps working.
  Answers (CALLRESULT/CALLERROR) are never answered: an unexpected one is logged and dropped.
* Its `call()` swallows CALLERRORs by default, raises on timeouts and logs every frame at INFO.
  `request()` returns the answer payload or raises CommandFailed carrying an explicit
  CommandResult (TIMEOUT / OFFLINE / ERROR), and frames are logged at DEBUG on "csms.ocpp.frames".

What is kept: `@on`/`@after` routing with snake_case keyword arguments, call_result dataclasses as
handler return values, the library's cached JSON-schema validators and its call lock (at most one
outstanding CALL per charger; further requests queue on the lock).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import re
import time
import uuid
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

from ocpp.charge_point import (
    ChargePoint,
    remove_nones,
    serialize_as_dict,
    snake_to_camel_case,
)
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallResult, validate_payload
from websockets.exceptions import ConnectionClosed

from csms.domain.certificates import CertificateEvents
from csms.domain.clock import Clock
from csms.domain.enums import CommandStatus, RegistrationStatus
from csms.domain.model import Capabilities, CommandResult
from csms.domain.ports import ChargerEvents
from csms.domain.commands import Command
from csms.ocpp import errors as oe
from csms.ocpp.commands import CommandTable, refused
from csms.ocpp import schemas
from csms.ocpp.observe import NULL_OBSERVER, OcppObserver

log = logging.getLogger("csms.ocpp")
frames = logging.getLogger("csms.ocpp.frames")

#: The message id of a CALL whose JSON cannot be parsed: `[2,"<id>"` at the start of the frame.
_CALL_ID = re.compile(r'\s*\[\s*2\s*,\s*"([^"\\]{1,64})"')
_CLOSED = object()
_DEBUG = logging.DEBUG


class CommandFailed(Exception):
    """A CSMS-initiated request that did not get a usable answer; `result` says why."""

    def __init__(self, result: CommandResult) -> None:
        super().__init__(result.status, result.detail)
        self.result = result


_SNAKE_1 = re.compile("(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile("([a-z0-9])([A-Z])(?=\\S)")


@functools.lru_cache(maxsize=4096)
def _snake_key(key: str) -> str:
    """The `ocpp` library's camel_to_snake_case for one key, memoised (2 regexes per key per message
    were the largest cost of a MeterValues after schema validation). Equality is tested."""
    key = key.replace("ocppCSMSURL", "ocpp_csms_url").replace("V2X", "_v2x").replace("V2G", "_v2g")
    return _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", key)).lower()


def snake_case(data: Any) -> Any:
    """camelCase keys -> snake_case keys, recursively (what the library passes to @on handlers)."""
    if isinstance(data, dict):
        return {_snake_key(k): snake_case(v) for k, v in data.items()}
    if isinstance(data, list):
        return [snake_case(v) for v in data]
    return data


def _plain(v: Any) -> Any:
    """Decimals (the library parses some 1.6 schedules with Decimal to check multipleOf 0.1) -> float."""
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


class OcppConnection(ChargePoint):
    """Base of the per-version adapters (`v16.handlers.V16ChargePoint`, `v201.handlers.V201ChargePoint`).

    Subclasses set `protocol` ("ocpp1.6"), `_ocpp_version` ("1.6"), `_actions` (every action name of
    their version), `commands` (their version's command table: v16/commands.py, v201/commands.py) and
    `fetch_capabilities`.
    """

    protocol: str = ""
    _ocpp_version: str = ""
    _actions: frozenset[str] = frozenset()
    commands: CommandTable = {}

    def __init__(
        self, station_id: str, connection: Any, *, events: ChargerEvents, clock: Clock,
        response_timeout_s: float, inbox_size: int = 64, observer: OcppObserver = NULL_OBSERVER,
        certificates: CertificateEvents | None = None,
    ) -> None:
        super().__init__(station_id, connection, response_timeout_s, logger=log)
        self.events = events
        self.clock = clock
        self.observer = observer
        self.certs = certificates
        self.capabilities: Capabilities | None = None
        self._inbox: asyncio.Queue[tuple[str, str, dict[str, Any]] | None] = asyncio.Queue(inbox_size)
        self._pending: tuple[str, asyncio.Future[Any]] | None = None
        self._closed = False
        self._boot_seen = False
        #: Set by the server from the directory, then by each BootNotification answer.
        self.registration = RegistrationStatus.ACCEPTED
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- reading ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Read frames until the connection closes. Never raises ConnectionClosed.

        On close: the pending request (if any) returns OFFLINE, CALLs already received are still
        handled (their answers cannot be sent any more), then this returns.
        """
        worker = asyncio.create_task(self._work(), name=f"ocpp-worker-{self.id}")
        try:
            while True:
                raw = await self._connection.recv()
                await self.route_message(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
        except ConnectionClosed:
            pass
        finally:
            self._closed = True
            self._fail_pending()
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

    async def route_message(self, raw_msg: str) -> None:
        """Route one frame: CALLs to the worker, answers to the pending request, garbage to a CALLERROR."""
        if frames.isEnabledFor(_DEBUG):
            frames.debug("%s < %s", self.id, raw_msg)
        try:
            msg = json.loads(raw_msg)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
            m = _CALL_ID.match(raw_msg)
            await self._reject_frame(m.group(1) if m else None, oe.RPC, "frame is not valid JSON")
            return
        if type(msg) is not list or not msg or type(msg[0]) is not int:
            uid = msg[1] if type(msg) is list and len(msg) > 1 and type(msg[1]) is str else None
            await self._reject_frame(uid, oe.RPC, "frame is not an OCPP-J message array")
            return
        kind = msg[0]
        uid = msg[1] if len(msg) > 1 and type(msg[1]) is str else None
        if kind == 2:
            if len(msg) != 4 or uid is None or type(msg[2]) is not str:
                await self._reject_frame(uid, oe.RPC, "a CALL is [2, id, action, payload]")
            elif type(msg[3]) is not dict:
                await self._reject_frame(uid, oe.FORMAT, "the CALL payload must be a JSON object")
            else:
                await self._inbox.put((uid, msg[2], msg[3]))
        elif kind in (3, 4):
            self._on_answer(msg)
        else:
            await self._reject_frame(uid, oe.MSG_TYPE, f"message type {kind} is not supported")

    async def _reject_frame(self, uid: str | None, kind: str, why: str) -> None:
        """Answer a frame that cannot be handled. An unreadable id is answered as "-1" (OCPP 2.0.1 Part 4,
        RpcFrameworkError; 1.6 spells the kind FormationViolation), so the sender learns it was refused."""
        log.warning("malformed frame station=%s id=%s error=%s", self.id, uid, why)
        fault = oe.OcppFault(kind if uid is not None else oe.RPC, why)
        await self._send_frame(oe.call_error_frame(uid if uid is not None else "-1", fault, self._ocpp_version))

    def _on_answer(self, msg: list[Any]) -> None:
        p = self._pending
        if p is not None and len(msg) >= 3 and msg[1] == p[0] and not p[1].done():
            p[1].set_result(msg)
        else:
            log.warning("unexpected answer station=%s id=%s (late or unknown)", self.id, msg[1:2])

    def _fail_pending(self) -> None:
        p = self._pending
        if p is not None and not p[1].done():
            p[1].set_result(_CLOSED)

    # --- handling CALLs --------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            item = await self._inbox.get()
            if item is None:
                return
            try:
                await self._dispatch(*item)
            except ConnectionClosed:
                pass
            except Exception:  # noqa: BLE001 - one bad message never kills the connection
                log.exception("dispatch failed station=%s", self.id)

    async def _dispatch(self, uid: str, action: str, payload: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        handlers = self.route_map.get(action) or {}
        on = handlers.get("_on_action")
        kwargs: dict[str, Any] = {}
        try:
            if self.registration is not RegistrationStatus.ACCEPTED and action != "BootNotification":
                # OCPP 2.0.1 B02.FR.09 / B03.FR.07 (1.6: the same code): nothing counts before acceptance.
                raise oe.OcppFault(oe.SECURITY, f"{action} refused: registration is {self.registration.value}, "
                                                f"send BootNotification")
            if on is None:
                kind = oe.NOT_IMPLEMENTED if action in self._actions else oe.NOT_SUPPORTED
                raise oe.OcppFault(kind, f"{action} is not handled by this central system")
            validate = not handlers.get("_skip_schema_validation", False)
            if validate:
                self._check_request(action, payload)
            kwargs = snake_case(payload)
            result = on(**kwargs)
            if inspect.isawaitable(result):
                result = await result
            body = snake_to_camel_case(remove_nones(serialize_as_dict(result)))
            if validate:
                self._check_own_answer(uid, action, body)
        except Exception as e:  # noqa: BLE001 - mapped to a CALLERROR in one place
            fault = oe.from_exception(e, action, self.id)
            await self._send_frame(oe.call_error_frame(uid, fault, self._ocpp_version))
            self.observer.handled(self.protocol, self._label(action), time.perf_counter() - t0, fault.kind)
            return
        await self._send_frame([3, uid, body])
        self.observer.handled(self.protocol, self._label(action), time.perf_counter() - t0, None)
        after = handlers.get("_after_action")
        if after is not None:
            res = after(**kwargs)
            if inspect.isawaitable(res):
                self.spawn(res)  # type: ignore[arg-type]

    def _check_request(self, action: str, payload: dict[str, Any]) -> None:
        try:
            sch = schemas.schema(2, action, self._ocpp_version)
        except (OSError, ValueError) as e:
            raise oe.OcppFault(oe.NOT_SUPPORTED, f"no schema for {action}") from e
        err = sch.error(payload)
        if err is not None:
            raise oe.from_schema_error(err)

    def _check_own_answer(self, uid: str, action: str, body: dict[str, Any]) -> None:
        err = schemas.schema(3, action, self._ocpp_version).error(body)
        if err is not None:  # our bug, not the charger's: InternalError + a log line with the cause
            raise RuntimeError(f"invalid {action} answer {body}: {err.message}")

    async def _send(self, message: str) -> None:
        if frames.isEnabledFor(_DEBUG):
            frames.debug("%s > %s", self.id, message)
        await self._connection.send(message)

    async def _send_frame(self, frame: list[Any]) -> None:
        try:
            await self._send(json.dumps(frame, separators=(",", ":")))
        except ConnectionClosed:
            log.info("answer not sent, connection closed station=%s", self.id)

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
        if action not in self._actions:  # also keeps arbitrary names away from the schema file lookup
            raise CommandFailed(CommandResult(CommandStatus.ERROR, detail=f"{action} is not an OCPP "
                                                                          f"{self._ocpp_version} action"))
        uid = str(uuid.uuid4())
        call = Call(uid, action, payload)
        try:
            await validate_payload(call, self._ocpp_version)
        except OCPPError as e:
            raise CommandFailed(CommandResult(CommandStatus.ERROR, detail=f"invalid {action} request: "
                                              f"{e.details.get('cause', e.description)}")) from e
        async with self._call_lock:
            if self._closed:
                raise CommandFailed(CommandResult(CommandStatus.OFFLINE, detail="connection closed"))
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending = (uid, fut)
            try:
                await self._send(call.to_json())
                answer = await asyncio.wait_for(fut, self._response_timeout)
            except TimeoutError:
                log.warning("no answer station=%s action=%s timeout_s=%s", self.id, action, self._response_timeout)
                raise CommandFailed(CommandResult(
                    CommandStatus.TIMEOUT, detail=f"no answer to {action} within {self._response_timeout}s"
                )) from None
            except ConnectionClosed:
                answer = _CLOSED
            finally:
                self._pending = None
        return await self._answer_payload(uid, action, answer)

    async def _answer_payload(self, uid: str, action: str, answer: Any) -> dict[str, Any]:
        if answer is _CLOSED:
            raise CommandFailed(CommandResult(CommandStatus.OFFLINE, detail="connection closed"))
        if answer[0] == 4:
            code = answer[2] if len(answer) > 2 else "?"
            desc = answer[3] if len(answer) > 3 else ""
            log.info("call error station=%s action=%s code=%s description=%s", self.id, action, code, desc)
            raise CommandFailed(CommandResult(
                CommandStatus.ERROR, data={"error_code": code, "error_description": desc,
                                           "error_details": answer[4] if len(answer) > 4 else {}},
                detail=f"{code}: {desc}",
            ))
        result = CallResult(uid, answer[2], action)
        if type(result.payload) is not dict:
            raise CommandFailed(CommandResult(CommandStatus.ERROR, detail=f"{action} answer is not an object"))
        try:
            await validate_payload(result, self._ocpp_version)
        except OCPPError as e:
            raise CommandFailed(CommandResult(CommandStatus.ERROR, data={"answer": _plain(result.payload)},
                                              detail=f"invalid {action} answer: {e.description}")) from e
        return _plain(result.payload)  # type: ignore[no-any-return]

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

    async def call(self, payload: Any, suppress: bool = True, unique_id: Any = None,
                   skip_schema_validation: bool = False) -> Any:
        raise NotImplementedError("use request(action, payload) or the ConnectionRegistry gateway")

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

    def note_boot(self) -> None:
        self._boot_seen = True

    async def _ready(self, delay_s: float, unless_booted: bool) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        if self._closed or (unless_booted and self._boot_seen):
            return
        if self.capabilities is None:
            try:
                self.capabilities = await self.fetch_capabilities()
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
