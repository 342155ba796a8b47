"""The sans-I/O OCPP-J core (csms.ocpp.protocol): text frames in, events and frames out, no sockets, no event
loop; time is a number passed in (a fake clock)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.v16.enums import Action as A16
from ocpp.v201.enums import Action as A201

from csms.domain.enums import RegistrationStatus
from csms.ocpp import errors as oe
from csms.ocpp import protocol as p

HANDLED = frozenset({"BootNotification", "Heartbeat", "StatusNotification", "StartTransaction", "Authorize",
                     "MeterValues"})


def core(version: str = "1.6", timeout_s: float = 30.0) -> p.OcppProtocol:
    actions = frozenset(a.value for a in (A16 if version == "1.6" else A201))
    ids = itertools.count(1)
    return p.OcppProtocol(version, actions=actions, handled=HANDLED, response_timeout_s=timeout_s,
                          new_id=lambda: f"m{next(ids)}")


def sent(c: p.OcppProtocol) -> list[Any]:
    return [json.loads(f) for f in c.data_to_send()]


def through(c: p.OcppProtocol, raw: str) -> list[Any]:
    """A frame in, admitted like the shell does; the frames the core wants written."""
    for ev in c.receive_text(raw, 0.0):
        if isinstance(ev, p.CallReceived):
            c.admit(ev)
    return sent(c)


# --- the charger's CALLs --------------------------------------------------------------------------
def test_a_call_becomes_an_event_and_its_answer_a_frame() -> None:
    c = core()
    [ev] = c.receive_text('[2,"a1","Heartbeat",{}]', 0.0)
    assert ev == p.CallReceived("a1", "Heartbeat", {})
    assert c.admit(ev) is None and sent(c) == []
    c.send_result("a1", "Heartbeat", {"currentTime": "2026-01-01T00:00:00.000Z"})
    assert sent(c) == [[3, "a1", {"currentTime": "2026-01-01T00:00:00.000Z"}]]


def test_our_invalid_answer_is_not_sent() -> None:
    c = core()
    with pytest.raises(p.InvalidAnswer):
        c.send_result("a1", "Heartbeat", {})
    assert sent(c) == []
    assert oe.from_exception(p.InvalidAnswer("x"), "Heartbeat", "CP").kind == oe.INTERNAL


@pytest.mark.parametrize("version, raw, uid, code", [
    # not JSON: the id is read from the text when it can be
    ("1.6", '[2,"a1","Heartbeat",{', "a1", "FormationViolation"),
    ("2.0.1", '[2,"a1","Heartbeat",{', "a1", "RpcFrameworkError"),
    ("2.0.1", "nonsense", "-1", "RpcFrameworkError"),
    ("1.6", "[" * 50_000, "-1", "FormationViolation"),  # deeper than the parser's stack
    # JSON, not an OCPP-J array
    ("1.6", "{}", "-1", "FormationViolation"),
    ("2.0.1", "[]", "-1", "RpcFrameworkError"),
    ("2.0.1", '["2","a1"]', "a1", "RpcFrameworkError"),
    ("1.6", "[true,\"a1\"]", "a1", "FormationViolation"),  # a bool is not a MessageTypeId
    # a CALL of the wrong shape
    ("1.6", '[2,"a1","Heartbeat"]', "a1", "FormationViolation"),
    ("2.0.1", '[2,"a1",5,{}]', "a1", "RpcFrameworkError"),
    ("2.0.1", '[2,7,"Heartbeat",{}]', "-1", "RpcFrameworkError"),
    ("1.6", '[2,"a1","Heartbeat",[]]', "a1", "FormationViolation"),
    ("2.0.1", '[2,"a1","Heartbeat",[]]', "a1", "FormatViolation"),
    # an unknown MessageTypeId
    ("2.0.1", '[7,"a1"]', "a1", "MessageTypeNotSupported"),
    ("1.6", '[5,"a1",{}]', "a1", "ProtocolError"),
    # admission: handler, schema
    ("1.6", '[2,"a1","GetConfiguration",{}]', "a1", "NotImplemented"),
    ("2.0.1", '[2,"a1","Launch",{}]', "a1", "NotSupported"),
    ("1.6", '[2,"a1","Heartbeat",{"x":1}]', "a1", "FormationViolation"),
    ("2.0.1", '[2,"a1","Heartbeat",{"x":1}]', "a1", "FormatViolation"),
    ("1.6", '[2,"a1","StartTransaction",{"connectorId":1}]', "a1", "OccurenceConstraintViolation"),
    ("2.0.1", '[2,"a1","Authorize",{}]', "a1", "OccurrenceConstraintViolation"),
    ("1.6", '[2,"a1","StatusNotification",{"connectorId":"1","errorCode":"NoError","status":"Available"}]', "a1",
     "TypeConstraintViolation"),
    ("1.6", '[2,"a1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Sleeping"}]', "a1",
     "PropertyConstraintViolation"),
])
def test_every_malformed_frame_class_gets_its_callerror(version: str, raw: str, uid: str, code: str) -> None:
    frames = through(core(version), raw)
    assert len(frames) == 1 and frames[0][:3] == [4, uid, code]
    assert isinstance(frames[0][3], str) and frames[0][4] == {}


def test_nothing_but_boot_before_acceptance() -> None:
    c = core("2.0.1")
    c.registration = RegistrationStatus.PENDING
    [hb] = c.receive_text('[2,"h","Heartbeat",{"x":1}]', 0.0)  # refused before its schema is looked at
    refusal = c.admit(hb)
    assert refusal is not None and refusal.kind == oe.SECURITY and "Pending" in refusal.description
    assert sent(c)[0][:3] == [4, "h", "SecurityError"]
    [boot] = c.receive_text('[2,"b","BootNotification",{"reason":"PowerUp","chargingStation":'
                            '{"model":"M","vendorName":"V"}}]', 0.0)
    assert c.admit(boot) is None
    c.registration = RegistrationStatus.ACCEPTED  # what the Boot answer decided, before the next CALL is taken up
    [hb2] = c.receive_text('[2,"h2","Heartbeat",{}]', 0.0)
    assert c.admit(hb2) is None


@pytest.mark.parametrize("raw", ['[3,"zz",{}]', '[4,"zz","X","y",{}]', "[3]", '[3,"zz"]'])
def test_answers_that_match_nothing_are_dropped_unanswered(raw: str) -> None:
    c = core()
    [ev] = c.receive_text(raw, 0.0)
    assert isinstance(ev, p.AnswerIgnored) and sent(c) == []


# --- our CALLs: correlation, queue, deadlines -------------------------------------------------------
RESET = {"type": "Soft"}


def test_one_outstanding_call_the_rest_queue_in_order() -> None:
    c = core(timeout_s=30)
    a = c.send_call("Reset", RESET, now=100.0)
    b = c.send_call("ClearCache", {}, now=100.0)
    assert sent(c) == [[2, a, "Reset", RESET]]  # b waits for a's answer
    assert c.outstanding == a and c.next_deadline() == 130.0
    assert c.receive_text(f'[3,"{b}",{{"status":"Accepted"}}]', 101.0) == [p.AnswerIgnored(b)]  # not b's turn
    [ev] = c.receive_text(f'[3,"{a}",{{"status":"Accepted"}}]', 105.0)
    assert ev == p.CallResultReceived(a, "Reset", {"status": "Accepted"})
    assert sent(c) == [[2, b, "ClearCache", {}]] and c.outstanding == b
    assert c.next_deadline() == 135.0  # b's deadline starts when b is sent
    [ev] = c.receive_text(f'[4,"{b}","NotSupported","no",{{"x":1}}]', 106.0)
    assert ev == p.CallErrorReceived(b, "ClearCache", "NotSupported", "no", {"x": 1})
    assert c.outstanding is None and c.next_deadline() is None and sent(c) == []


def test_a_deadline_expires_on_the_clock_passed_in() -> None:
    c = core(timeout_s=5)
    a = c.send_call("Reset", RESET, now=0.0)
    b = c.send_call("Reset", RESET, now=0.0)
    sent(c)
    assert c.expire(4.999) == []
    assert c.expire(5.0) == [p.CallTimedOut(a, "Reset", 5)]
    assert sent(c) == [[2, b, "Reset", RESET]] and c.next_deadline() == 10.0
    assert c.receive_text(f'[3,"{a}",{{"status":"Accepted"}}]', 6.0) == [p.AnswerIgnored(a)]  # too late
    assert c.expire(9.0) == [] and c.outstanding == b


def test_answers_are_validated() -> None:
    c = core()
    a = c.send_call("Reset", RESET, 0.0)
    [ev] = c.receive_text(f'[3,"{a}",{{"status":"Maybe"}}]', 0.0)
    assert isinstance(ev, p.CallResultReceived) and ev.error is not None and "invalid Reset answer" in ev.error
    b = c.send_call("Reset", RESET, 0.0)
    [ev] = c.receive_text(f'[3,"{b}",[]]', 0.0)
    assert isinstance(ev, p.CallResultReceived) and ev.error == "Reset answer is not an object"


def test_invalid_requests_are_refused_before_anything_is_sent() -> None:
    c = core()
    with pytest.raises(p.InvalidRequest, match="invalid Reset request"):
        c.send_call("Reset", {"type": "Sideways"}, 0.0)
    with pytest.raises(p.InvalidRequest, match="not an OCPP 1.6 action"):
        c.send_call("../../etc/passwd", {}, 0.0)
    assert sent(c) == [] and c.outstanding is None


def test_a_charging_limit_of_7_1_a_is_a_multiple_of_0_1_both_ways() -> None:
    """1.6 schedules: limit multipleOf 0.1, checked on the decimal value, not the binary float."""
    c = core()
    profile = {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 7.1}]}}}
    c.send_call("SetChargingProfile", profile, 0.0)
    profile["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 7.15  # type: ignore[index]
    with pytest.raises(p.InvalidRequest, match="multiple of 0.1"):
        c.send_call("SetChargingProfile", profile, 0.0)


def test_forgotten_queued_calls_are_never_sent() -> None:
    c = core()
    c.send_call("Reset", RESET, 0.0)
    b = c.send_call("ClearCache", {}, 0.0)
    sent(c)
    c.forget(b)
    assert c.expire(30.0)[0].action == "Reset" and sent(c) == [] and c.outstanding is None


def test_connection_lost_aborts_sent_and_queued_calls() -> None:
    c = core()
    a = c.send_call("Reset", RESET, 0.0)
    b = c.send_call("ClearCache", {}, 0.0)
    assert c.connection_lost() == [p.CallAborted(a, "Reset"), p.CallAborted(b, "ClearCache")]
    assert c.next_deadline() is None and c.closed
    with pytest.raises(RuntimeError):
        c.send_call("Reset", RESET, 0.0)


# --- anything in: never raises, always an event (and only CALLERRORs as frames) ----------------------
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
                           lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=6), kids,
                                                                                     max_size=4), max_leaves=20)
frames_like = st.one_of(
    st.text(max_size=80),
    json_values.map(json.dumps),
    st.tuples(st.integers(-1, 8), st.text(max_size=8), st.sampled_from(["Heartbeat", "MeterValues", "Authorize",
                                                                       "Launch", ""]), json_values)
    .map(lambda t: json.dumps([t[0], t[1], t[2], t[3]])),
)


@settings(max_examples=400, deadline=None)
@given(raw=frames_like, version=st.sampled_from(["1.6", "2.0.1"]))
def test_arbitrary_text_never_raises(raw: str, version: str) -> None:
    c = core(version)
    c.send_call("Reset", RESET if version == "1.6" else {"type": "Immediate"}, 0.0)
    sent(c)
    events = c.receive_text(raw, 1.0)
    assert len(events) == 1
    ev = events[0]
    if isinstance(ev, p.CallReceived):
        refusal = c.admit(ev)
        assert refusal is None or refusal.kind in oe._CODES
    frames = sent(c)
    assert len(frames) <= 1
    for f in frames:
        assert f[0] == 4 and isinstance(f[1], str) and isinstance(f[2], str)
    if isinstance(ev, p.ProtocolError):
        assert frames and json.loads(ev.frame) == frames[0]
