"""The OCPP-J RPC protocol of one connection, without I/O: text frames in, events out, frames to send.

Modelled on python-websockets' sans-I/O `protocol.py`: this class never reads a socket, never sleeps and
never awaits. The asyncio shell (csms.ocpp.connection) feeds it what the websocket delivers and the time,
acts on the events it returns, and writes out `data_to_send()`. Everything OCPP-J says about frames lives
here, so it is tested frame-in, event/frame-out with a fake clock (tests/unit/ocpp/test_protocol.py):

* framing (OCPP-J 1.6 section 4, 2.0.1 Part 4 section 4): `[2, id, action, payload]` CALL,
  `[3, id, payload]` CALLRESULT, `[4, id, code, description, details]` CALLERROR. Every frame that is not
  a usable CALL or answer gets a CALLERROR (`ProtocolError`): with its message id when it can be read,
  else id "-1"; codes spelled for the version (csms.ocpp.errors: FormationViolation / RpcFrameworkError,
  ProtocolError / MessageTypeNotSupported, ...). Answers are never answered: one that matches no
  outstanding CALL is dropped (`AnswerIgnored`).
* admission of a CALL (`admit`): registration gate (B02.FR.09: nothing but BootNotification before
  Accepted: SecurityError), NotImplemented / NotSupported for actions without a handler, schema validation.
  It runs when the shell takes the CALL up, not when it arrives, so a BootNotification's answer counts for
  the CALL after it even if the charger did not wait for the answer.
* correlation of CSMS-initiated CALLs: at most one outstanding (OCPP-J: a sender waits for the answer or a
  timeout before its next CALL), the others queue in order and are released as the previous one ends.
* timeouts as deadlines: a CALL's deadline starts when its frame is released; the shell asks
  `next_deadline()` and calls `expire(now)` when its clock reaches it.
* validation of all four directions with one compiled schema per (message type, action, version)
  (csms.ocpp.schemas).
"""

from __future__ import annotations

import json
import re
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from csms.domain.enums import RegistrationStatus
from csms.ocpp import errors as oe
from csms.ocpp import schemas

CALL, CALLRESULT, CALLERROR = 2, 3, 4

#: The message id of a CALL whose JSON cannot be parsed: `[2,"<id>"` at the start of the frame.
_CALL_ID = re.compile(r'\s*\[\s*2\s*,\s*"([^"\\]{1,64})"')


# --- events ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallReceived:
    """A well-formed CALL from the charger; `admit` it when taking it up, then answer it."""
    uid: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResultReceived:
    """The answer to our outstanding CALL `uid`. `error` says why it is unusable (not an object, or not
    schema-valid); then `payload` is what was received."""
    uid: str
    action: str
    payload: Any
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CallErrorReceived:
    """The charger refused our outstanding CALL `uid`."""
    uid: str
    action: str
    code: str
    description: str
    details: Any


@dataclass(frozen=True, slots=True)
class CallTimedOut:
    """No answer to our CALL `uid` by its deadline; the next queued CALL (if any) has been released."""
    uid: str
    action: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class CallAborted:
    """Our CALL `uid` (sent or still queued) ended with the connection."""
    uid: str
    action: str


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A frame or CALL refused with a CALLERROR; `frame` (also queued in data_to_send) is that CALLERROR,
    `uid` its message id ("-1" when the frame's could not be read). `kind` is csms.ocpp.errors' error kind
    (metrics), `description` the reason."""
    uid: str
    kind: str
    description: str
    frame: str


@dataclass(frozen=True, slots=True)
class AnswerIgnored:
    """A CALLRESULT/CALLERROR that matches no outstanding CALL (late, or unknown): dropped, never answered."""
    uid: Any


Event = CallReceived | CallResultReceived | CallErrorReceived | CallTimedOut | CallAborted | ProtocolError | \
    AnswerIgnored


class InvalidRequest(ValueError):
    """A CSMS-initiated CALL that cannot be sent (unknown action, payload not schema-valid). Nothing is sent."""


class InvalidAnswer(RuntimeError):
    """Our own answer to a CALL is not schema-valid: our bug, answered InternalError (csms.ocpp.errors)."""


@dataclass(slots=True)
class _Outgoing:
    uid: str
    action: str
    frame: str


def _dumps(frame: list[Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


class OcppProtocol:
    """One OCPP-J connection's protocol state, for `version` ("1.6" or "2.0.1").

    Args:
        version: the OCPP version whose schemas and error spellings apply.
        actions: every action name of the version (unknown names are NotSupported, not NotImplemented).
        handled: the actions this side answers.
        response_timeout_s: how long an outstanding CALL waits for its answer.
        new_id: message ids of our CALLs (UUID4 by default; tests pass a counter).
    """

    def __init__(self, version: str, *, actions: frozenset[str], handled: frozenset[str],
                 response_timeout_s: float, new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.version = version
        self.actions = actions
        self.handled = handled
        self.response_timeout_s = response_timeout_s
        self._new_id = new_id
        #: Set by the shell from the directory, then by each BootNotification answer (registration gate).
        self.registration = RegistrationStatus.ACCEPTED
        self.closed = False
        self._out: list[str] = []
        self._outstanding: _Outgoing | None = None
        self._deadline: float | None = None
        self._queue: deque[_Outgoing] = deque()

    # --- output ---------------------------------------------------------------------------------
    def data_to_send(self) -> list[str]:
        """Frames to write, in order; each call returns the frames produced since the previous one."""
        out, self._out = self._out, []
        return out

    # --- frames in ------------------------------------------------------------------------------
    def receive_text(self, text: str, now: float) -> list[Event]:
        """One websocket text message. `now` (the shell's clock, seconds) starts the deadline of a CALL released
        by an answer. Never raises."""
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
            m = _CALL_ID.match(text)
            return [self._reject(m.group(1) if m else None, oe.RPC, "frame is not valid JSON")]
        if type(msg) is not list or not msg or type(msg[0]) is not int:
            uid = msg[1] if type(msg) is list and len(msg) > 1 and type(msg[1]) is str else None
            return [self._reject(uid, oe.RPC, "frame is not an OCPP-J message array")]
        kind = msg[0]
        uid = msg[1] if len(msg) > 1 and type(msg[1]) is str else None
        if kind == CALL:
            if len(msg) != 4 or uid is None or type(msg[2]) is not str:
                return [self._reject(uid, oe.RPC, "a CALL is [2, id, action, payload]")]
            if type(msg[3]) is not dict:
                return [self._reject(uid, oe.FORMAT, "the CALL payload must be a JSON object")]
            return [CallReceived(uid, msg[2], msg[3])]
        if kind in (CALLRESULT, CALLERROR):
            return self._answer(msg, now)
        return [self._reject(uid, oe.MSG_TYPE, f"message type {kind} is not supported")]

    def _reject(self, uid: str | None, kind: str, why: str) -> ProtocolError:
        """A frame that cannot be handled. An unreadable id is answered as "-1" with the RPC kind (OCPP 2.0.1
        Part 4: RpcFrameworkError; 1.6 spells it FormationViolation), so the sender learns it was refused."""
        if uid is None:
            return self.send_error("-1", oe.OcppFault(oe.RPC, why))
        return self.send_error(uid, oe.OcppFault(kind, why))

    def _answer(self, msg: list[Any], now: float) -> list[Event]:
        p = self._outstanding
        if p is None or len(msg) < 3 or msg[1] != p.uid:
            return [AnswerIgnored(msg[1] if len(msg) > 1 else None)]
        events: list[Event] = [self._answer_event(p, msg)]
        self._release_next(now)
        return events

    def _answer_event(self, p: _Outgoing, msg: list[Any]) -> Event:
        if msg[0] == CALLERROR:
            return CallErrorReceived(p.uid, p.action, str(msg[2]), str(msg[3]) if len(msg) > 3 else "",
                                     msg[4] if len(msg) > 4 else {})
        payload = msg[2]
        if type(payload) is not dict:
            return CallResultReceived(p.uid, p.action, payload, f"{p.action} answer is not an object")
        err = schemas.schema(CALLRESULT, p.action, self.version).error(payload)
        if err is not None:
            return CallResultReceived(p.uid, p.action, payload, f"invalid {p.action} answer: {err.message}")
        return CallResultReceived(p.uid, p.action, payload)

    # --- the charger's CALLs ----------------------------------------------------------------------
    def admit(self, call: CallReceived) -> ProtocolError | None:
        """None if `call` may go to its handler; else the CALLERROR refusing it (queued to send)."""
        action = call.action
        try:
            if self.registration is not RegistrationStatus.ACCEPTED and action != "BootNotification":
                # OCPP 2.0.1 B02.FR.09 / B03.FR.07 (1.6: the same code): nothing counts before acceptance.
                raise oe.OcppFault(oe.SECURITY, f"{action} refused: registration is {self.registration.value}, "
                                                f"send BootNotification")
            if action not in self.handled:
                kind = oe.NOT_IMPLEMENTED if action in self.actions else oe.NOT_SUPPORTED
                raise oe.OcppFault(kind, f"{action} is not handled by this central system")
            try:
                sch = schemas.schema(CALL, action, self.version)
            except (OSError, ValueError) as e:
                raise oe.OcppFault(oe.NOT_SUPPORTED, f"no schema for {action}") from e
            err = sch.error(call.payload)
            if err is not None:
                raise oe.from_schema_error(err)
        except oe.OcppFault as fault:
            return self.send_error(call.uid, fault)
        except RecursionError:  # a payload nested deeper than validation can walk: the sender's fault
            return self.send_error(call.uid, oe.OcppFault(oe.FORMAT, "payload nested too deeply"))
        return None

    def send_result(self, uid: str, action: str, payload: dict[str, Any]) -> None:
        """Answer the charger's CALL `uid`. Raises InvalidAnswer (nothing queued) if `payload` is not valid."""
        err = schemas.schema(CALLRESULT, action, self.version).error(payload)
        if err is not None:  # our bug, not the charger's: InternalError + a log line with the cause
            raise InvalidAnswer(f"invalid {action} answer {payload}: {err.message}")
        self._out.append(_dumps([CALLRESULT, uid, payload]))

    def send_error(self, uid: str, fault: oe.OcppFault) -> ProtocolError:
        """Answer the charger's CALL `uid` with a CALLERROR of `fault`'s kind, spelled for this version."""
        frame = _dumps(oe.call_error_frame(uid, fault, self.version))
        self._out.append(frame)
        return ProtocolError(uid, fault.kind, fault.description, frame)

    # --- our CALLs --------------------------------------------------------------------------------
    def send_call(self, action: str, payload: dict[str, Any], now: float) -> str:
        """Queue a CALL; returns its message id. Its frame is released (data_to_send) at once if no other CALL
        is outstanding, else when the ones before it end. Raises InvalidRequest (nothing queued)."""
        if self.closed:
            raise RuntimeError("send_call on a closed connection")
        if action not in self.actions:  # also keeps arbitrary names away from the schema file lookup
            raise InvalidRequest(f"{action} is not an OCPP {self.version} action")
        err = schemas.schema(CALL, action, self.version).error(payload)
        if err is not None:
            raise InvalidRequest(f"invalid {action} request: {err.message}")
        uid = self._new_id()
        self._queue.append(_Outgoing(uid, action, _dumps([CALL, uid, action, payload])))
        if self._outstanding is None:
            self._release_next(now)
        return uid

    def forget(self, uid: str) -> None:
        """The caller stopped waiting for CALL `uid`: a queued one is never sent; a sent one's answer is dropped
        when it comes (the charger's OCPP-J state still needs it, so it stays outstanding)."""
        for o in self._queue:
            if o.uid == uid:
                self._queue.remove(o)
                return

    def _release_next(self, now: float) -> None:
        self._outstanding = self._deadline = None
        if self._queue:
            o = self._outstanding = self._queue.popleft()
            self._deadline = now + self.response_timeout_s
            self._out.append(o.frame)

    @property
    def outstanding(self) -> str | None:
        """The message id of our CALL awaiting its answer, if any."""
        return self._outstanding.uid if self._outstanding is not None else None

    def next_deadline(self) -> float | None:
        """When `expire` has something to do (the outstanding CALL's deadline), in the shell's clock."""
        return self._deadline

    def expire(self, now: float) -> list[Event]:
        """CallTimedOut for the outstanding CALL if `now` is at or past its deadline (the next is released)."""
        p = self._outstanding
        if p is None or self._deadline is None or now < self._deadline:
            return []
        self._release_next(now)
        return [CallTimedOut(p.uid, p.action, self.response_timeout_s)]

    def connection_lost(self) -> list[Event]:
        """The connection ended: every CALL of ours, sent or queued, is aborted; nothing more is sent."""
        self.closed = True
        pending = ([self._outstanding] if self._outstanding is not None else []) + list(self._queue)
        self._outstanding = self._deadline = None
        self._queue.clear()
        return [CallAborted(o.uid, o.action) for o in pending]
