"""Error mapping (one table per boundary) and frame routing without sockets: bytes in, frames out."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.messages import get_validator
from websockets.exceptions import ConnectionClosedOK

from csms.domain import errors as de
from csms.domain.clock import FakeClock
from csms.ocpp import errors as oe
from csms.ocpp.common import BadPayload
from csms.ocpp.v16.handlers import V16ChargePoint
from csms.ocpp.v201.handlers import V201ChargePoint

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("kind, v16, v201", [
    (oe.FORMAT, "FormationViolation", "FormatViolation"),
    (oe.OCCURRENCE, "OccurenceConstraintViolation", "OccurrenceConstraintViolation"),
    (oe.RPC, "FormationViolation", "RpcFrameworkError"),
    (oe.MSG_TYPE, "ProtocolError", "MessageTypeNotSupported"),
    (oe.PROPERTY, "PropertyConstraintViolation", "PropertyConstraintViolation"),
    (oe.TYPE, "TypeConstraintViolation", "TypeConstraintViolation"),
    (oe.INTERNAL, "InternalError", "InternalError"),
])
def test_codes_are_spelled_per_version(kind: str, v16: str, v201: str) -> None:
    assert oe.code(kind, "1.6") == v16 and oe.code(kind, "2.0.1") == v201


class Weird(de.UnknownTransaction):
    pass


@pytest.mark.parametrize("exc, kind", [
    (de.UnknownTransaction("x"), oe.PROPERTY),
    (Weird("x"), oe.PROPERTY),  # the most specific mapped class in the MRO
    (de.UnknownStation("x"), oe.SECURITY),
    (de.Conflict("x"), oe.GENERIC),
    (de.DomainError("x"), oe.GENERIC),
    (BadPayload("bad ts", "type"), oe.TYPE),
    (KeyError("boom"), oe.INTERNAL),
    (RuntimeError("boom"), oe.INTERNAL),
])
def test_exceptions_map_once(exc: Exception, kind: str) -> None:
    assert oe.from_exception(exc, "X", "CP").kind == kind


def test_every_domain_error_class_is_covered() -> None:
    for cls in de.DomainError.__subclasses__():
        assert oe.from_exception(cls("x"), "X", "CP").kind != oe.INTERNAL or cls in (de.StationOffline,
                                                                                  de.StoreUnavailable)


@pytest.mark.parametrize("payload, kind", [
    ({"connectorId": 1, "errorCode": "NoError"}, oe.OCCURRENCE),
    ({"connectorId": "1", "errorCode": "NoError", "status": "Available"}, oe.TYPE),
    ({"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"}, oe.PROPERTY),
    ({"connectorId": 1, "errorCode": "NoError", "status": "Available", "extra": 1}, oe.FORMAT),
    ({"connectorId": 1, "errorCode": "NoError", "status": "Available", "info": "x" * 51}, oe.TYPE),
])
def test_schema_errors(payload: dict, kind: str) -> None:
    from jsonschema.exceptions import best_match
    err = best_match(get_validator(2, "StatusNotification", "1.6").iter_errors(payload))
    assert err is not None and oe.from_schema_error(err).kind == kind


# --- frames without sockets ----------------------------------------------------------------------
class FakeWs:
    """A websocket that delivers `frames`, then closes; what the connection sends is kept."""

    def __init__(self, frames: list[str]) -> None:
        self.incoming = list(frames)
        self.sent: list[Any] = []

    async def recv(self) -> str:
        if not self.incoming:
            raise ConnectionClosedOK(None, None)
        return self.incoming.pop(0)

    async def send(self, message: str) -> None:
        self.sent.append(json.loads(message))


class Events:
    async def heartbeat(self, station_id: str) -> datetime:
        return NOW

    def __getattr__(self, name: str) -> Any:
        async def _noop(*a: Any, **k: Any) -> None:
            return None
        return _noop


async def feed(cls: type, raw: str) -> list[Any]:
    """One frame through a whole connection (reader, core, worker, handler), as the server runs it."""
    ws = FakeWs([raw])
    conn = cls("CP", ws, events=Events(), clock=FakeClock(NOW), response_timeout_s=1)
    await conn.start()
    return ws.sent


@pytest.mark.parametrize("cls, raw, code", [
    (V16ChargePoint, '[2,"a1","Heartbeat",{', "FormationViolation"),
    (V201ChargePoint, '[2,"a1","Heartbeat",{', "RpcFrameworkError"),
    (V16ChargePoint, '[2,"a1","Heartbeat"]', "FormationViolation"),
    (V201ChargePoint, '[2,"a1",5,{}]', "RpcFrameworkError"),
    (V16ChargePoint, '[2,"a1","Heartbeat",[]]', "FormationViolation"),
    (V201ChargePoint, '[2,"a1","Heartbeat",[]]', "FormatViolation"),
    (V201ChargePoint, '[7,"a1"]', "MessageTypeNotSupported"),
    (V16ChargePoint, '[2,"a1","Heartbeat",{"x":1}]', "FormationViolation"),
    (V201ChargePoint, '[2,"a1","Heartbeat",{"x":1}]', "FormatViolation"),
    (V16ChargePoint, '[2,"a1","StartTransaction",{"connectorId":1}]', "OccurenceConstraintViolation"),
    (V201ChargePoint, '[2,"a1","Authorize",{}]', "OccurrenceConstraintViolation"),
    (V16ChargePoint, '[2,"a1","GetConfiguration",{}]', "NotImplemented"),
    (V201ChargePoint, '[2,"a1","Launch",{}]', "NotSupported"),
    (V16ChargePoint, '[2,"a1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available",'
                     '"timestamp":"soon"}]', "TypeConstraintViolation"),
])
async def test_bad_frames_get_the_right_callerror(cls: type, raw: str, code: str) -> None:
    sent = await feed(cls, raw)
    assert len(sent) == 1 and sent[0][:3] == [4, "a1", code]


@pytest.mark.parametrize("raw", ["", "nonsense", "{}", "[]", '["2"]', "[2]", "[" * 50_000])
@pytest.mark.parametrize("cls, code", [(V16ChargePoint, "FormationViolation"), (V201ChargePoint, "RpcFrameworkError")])
async def test_frames_without_a_readable_id_are_answered_as_minus_1(raw: str, cls: type, code: str) -> None:
    sent = await feed(cls, raw)
    assert len(sent) == 1 and sent[0][:3] == [4, "-1", code]


@pytest.mark.parametrize("raw", ['[3,"zz",{}]', '[4,"zz","X","y",{}]', "[3]"])
async def test_answers_that_match_nothing_get_no_answer(raw: str) -> None:
    assert await feed(V16ChargePoint, raw) == []


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=80), st.builds(lambda t: '[2,"id",' + t, st.text(max_size=40))))
def test_garbage_never_raises_and_answers_are_callerrors(raw: str) -> None:
    for cls in (V16ChargePoint, V201ChargePoint):
        sent = asyncio.run(feed(cls, raw))
        for frame in sent:
            assert frame[0] in (3, 4) and isinstance(frame[1], str)
