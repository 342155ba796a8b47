"""Malformed frames over a real websocket: the right CALLERROR whenever the id can be read, and the
connection keeps answering afterwards."""

from __future__ import annotations

import asyncio
import json

import pytest

from .conftest import Env

HEARTBEAT = '[2,"hb-after","Heartbeat",{}]'

CASES = [
    # (version, frame, expected error code)
    ("1.6", '[2,"m1","Heartbeat",{', "FormationViolation"),
    ("1.6", '[2,"m1","StatusNotification",{"connectorId":"one","errorCode":"NoError","status":"Available"}]',
     "TypeConstraintViolation"),
    ("1.6", '[2,"m1","StartTransaction",{"connectorId":1,"idTag":"T","timestamp":"2026-01-01T00:00:00Z"}]',
     "OccurenceConstraintViolation"),
    ("1.6", '[2,"m1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Asleep"}]',
     "PropertyConstraintViolation"),
    ("1.6", '[2,"m1","Heartbeat",{"unexpected":true}]', "FormationViolation"),
    ("1.6", '[2,"m1","FlyToMoon",{}]', "NotSupported"),
    ("2.0.1", '[2,"m1","Heartbeat",{', "RpcFrameworkError"),
    ("2.0.1", '[2,"m1","StatusNotification",{"timestamp":"2026-01-01T00:00:00Z","connectorStatus":"Available",'
              '"evseId":"1","connectorId":1}]', "TypeConstraintViolation"),
    ("2.0.1", '[2,"m1","Authorize",{}]', "OccurrenceConstraintViolation"),
    ("2.0.1", '[2,"m1","StatusNotification",{"timestamp":"2026-01-01T00:00:00Z","connectorStatus":"Asleep",'
              '"evseId":1,"connectorId":1}]', "PropertyConstraintViolation"),
    ("2.0.1", '[2,"m1","Heartbeat",{"unexpected":true}]', "FormatViolation"),
    ("2.0.1", '[2,"m1","FlyToMoon",{}]', "NotSupported"),
    ("2.0.1", '[5,"m1","Heartbeat",{}]', "MessageTypeNotSupported"),
]


@pytest.mark.parametrize("version, frame, code", CASES)
async def test_malformed_frame_gets_callerror_and_connection_survives(env: Env, version: str, frame: str,
                                                                      code: str) -> None:
    ws = await env.ws("CP1", ["ocpp1.6" if version == "1.6" else "ocpp2.0.1"])
    await ws.send(frame)
    err = json.loads(await asyncio.wait_for(ws.recv(), 2))
    assert err[0] == 4 and err[1] == "m1" and err[2] == code and isinstance(err[4], dict)
    await ws.send(HEARTBEAT)
    ok = json.loads(await asyncio.wait_for(ws.recv(), 2))
    assert ok[:2] == [3, "hb-after"] and ok[2]["currentTime"].endswith("Z")


@pytest.mark.parametrize("version, code", [("1.6", "FormationViolation"), ("2.0.1", "RpcFrameworkError")])
async def test_unreadable_id_is_answered_as_minus_1_and_answers_are_never_answered(env: Env, version: str,
                                                                                   code: str) -> None:
    ws = await env.ws("CP1", ["ocpp1.6" if version == "1.6" else "ocpp2.0.1"])
    junk = ["hello", "{}", "[]", "[2]", '[2,5,"Heartbeat",{}]', "[[[", "[" * 5000 + "]" * 5000, b"\x00\x01",
            '{"a":' * 3000 + "1" + "}" * 3000]
    for frame in junk:
        await ws.send(frame)
        err = json.loads(await asyncio.wait_for(ws.recv(), 2))
        assert err[:3] == [4, "-1", code], frame
    for answer in ('[3,"nobody-asked",{}]', '[4,"nobody-asked","GenericError","",{}]'):
        await ws.send(answer)  # a late or unknown answer: logged, never answered
    await ws.send(HEARTBEAT)
    assert json.loads(await asyncio.wait_for(ws.recv(), 2))[:2] == [3, "hb-after"]


@pytest.mark.parametrize("version, unparsable", [("1.6", "FormationViolation"), ("2.0.1", "RpcFrameworkError")])
async def test_deep_nesting_is_a_callerror_not_a_closed_connection(env: Env, version: str, unparsable: str) -> None:
    ws = await env.ws("CP1", ["ocpp1.6" if version == "1.6" else "ocpp2.0.1"])
    # 100,000 deep: the JSON parser itself gives up (RecursionError); the id is read from the frame's start.
    await ws.send('[2,"deep1","DataTransfer",{"vendorId":"V","data":' + "[" * 100_000 + "]" * 100_000 + "}]")
    err = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert err[:3] == [4, "deep1", unparsable]
    # 900 deep parses, but is deeper than validating and mapping it may go: a payload error, not InternalError.
    depth = 900
    await ws.send('[2,"deep2","DataTransfer",{"vendorId":"V","data":' + "[" * depth + "]" * depth + "}]")
    err = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert err[0] in (3, 4) and err[1] == "deep2"
    if err[0] == 4:  # 1.6: data must be a string (TypeConstraintViolation); 2.0.1: any JSON, as deep as it goes
        assert err[2] != "InternalError", err
    await ws.send(HEARTBEAT)
    assert json.loads(await asyncio.wait_for(ws.recv(), 2))[:2] == [3, "hb-after"]
