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


async def test_unreadable_garbage_is_ignored_and_connection_survives(env: Env) -> None:
    ws = await env.ws("CP1")
    for junk in ("hello", "{}", "[]", "[3,\"nobody-asked\",{}]", b"\x00\x01"):
        await ws.send(junk)
    await ws.send(HEARTBEAT)
    assert json.loads(await asyncio.wait_for(ws.recv(), 2))[:2] == [3, "hb-after"]
