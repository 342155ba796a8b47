from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulator.ev import EV, EVModel
from simulator.station import Evse, Reservation, Status, Transaction, TransitionError

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def tx(token: str = "TAG") -> Transaction:
    return Transaction("tx-1", token, T0, 0.0)


def statuses(intents: list) -> list[Status]:
    return [i.status for i in intents]


def test_full_session_transitions() -> None:
    e = Evse(1)
    ev = EV(EVModel(), soc=0.5, energy_need_wh=1000)
    assert statuses(e.plug_in(ev, T0, "TAG")) == [Status.PREPARING]
    assert statuses(e.start_transaction(tx(), T0)) == [Status.SUSPENDED_EV]
    assert statuses(e.update_power(11_000, 11_000, T0)) == [Status.CHARGING]
    assert e.update_power(11_000, 11_000, T0) == []                      # no change, no intent
    assert statuses(e.update_power(0, 0, T0)) == [Status.SUSPENDED_EVSE]  # station limit 0
    ev.delivered_wh = 1000                                               # need met -> EV stops drawing
    assert statuses(e.update_power(11_000, 0, T0)) == [Status.SUSPENDED_EV]
    done, intents = e.stop_transaction(T0)
    assert done.transaction_id == "tx-1" and statuses(intents) == [Status.FINISHING]
    assert statuses(e.unplug(T0)) == [Status.AVAILABLE]
    assert [h.status for h in e.history] == [Status.PREPARING, Status.SUSPENDED_EV, Status.CHARGING,
                                             Status.SUSPENDED_EVSE, Status.SUSPENDED_EV, Status.FINISHING,
                                             Status.AVAILABLE]


def test_guards() -> None:
    e = Evse(1)
    with pytest.raises(TransitionError):
        e.start_transaction(tx(), T0)                # nothing plugged
    e.plug_in(EV(), T0)
    with pytest.raises(TransitionError):
        e.plug_in(EV(), T0)                          # already plugged
    e.start_transaction(tx(), T0)
    with pytest.raises(TransitionError):
        e.unplug(T0)                                 # stop first
    with pytest.raises(TransitionError):
        e.start_transaction(tx(), T0)                # already running


def test_reservation_only_reserved_token_may_start_and_is_consumed() -> None:
    e = Evse(1)
    status, intents = e.reserve(Reservation(7, "ALICE", T0 + timedelta(hours=1)), T0)
    assert status == "Accepted" and statuses(intents) == [Status.RESERVED]
    assert e.reserve(Reservation(8, "BOB", T0 + timedelta(hours=1)), T0)[0] == "Occupied"
    e.plug_in(EV(), T0)
    assert e.may_start("BOB") == (False, "reserved for another id token")
    with pytest.raises(TransitionError):
        e.start_transaction(tx("BOB"), T0)
    t = tx("ALICE")
    e.start_transaction(t, T0)
    assert t.reservation_id == 7 and e.reservation is None


def test_reservation_cancel_and_expiry() -> None:
    e = Evse(1)
    e.reserve(Reservation(1, "A", T0 + timedelta(minutes=10)), T0)
    assert e.cancel_reservation(2, T0) == (False, [])
    ok, intents = e.cancel_reservation(1, T0)
    assert ok and statuses(intents) == [Status.AVAILABLE]
    e.reserve(Reservation(3, "A", T0 + timedelta(minutes=10)), T0)
    assert e.expire_reservation(T0 + timedelta(minutes=5)) == []
    assert statuses(e.expire_reservation(T0 + timedelta(minutes=10))) == [Status.AVAILABLE]


def test_availability_scheduled_during_transaction() -> None:
    e = Evse(1)
    assert e.set_operative(False, T0) == ("Accepted", e.history[-1:])
    assert e.status is Status.UNAVAILABLE
    with pytest.raises(TransitionError):
        e.plug_in(EV(), T0)
    assert e.reserve(Reservation(1, "A", T0), T0)[0] == "Unavailable"
    status, intents = e.set_operative(True, T0)
    assert status == "Accepted" and statuses(intents) == [Status.AVAILABLE]
    e.plug_in(EV(), T0)
    e.start_transaction(tx(), T0)
    assert e.set_operative(False, T0) == ("Scheduled", [])
    e.stop_transaction(T0)
    assert statuses(e.unplug(T0)) == [Status.UNAVAILABLE]


def test_fault() -> None:
    e = Evse(1)
    assert statuses(e.set_fault(True, T0)) == [Status.FAULTED]
    assert e.reserve(Reservation(1, "A", T0), T0)[0] == "Faulted"
    assert statuses(e.set_fault(False, T0)) == [Status.AVAILABLE]


def test_transaction_seq_numbers() -> None:
    t = tx()
    assert [t.next_seq() for _ in range(3)] == [0, 1, 2]
