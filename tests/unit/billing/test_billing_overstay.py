from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from csms.billing import (
    AllottedBy,
    Money,
    OverstayPhase,
    OverstayPolicy,
    allotted_end,
    assess_overstay,
    busy_intervals_from_occupancy,
    overstay_fee,
    overstay_minutes,
    overstay_state,
)

D = Decimal
T0 = datetime(2024, 1, 15, 16, 0, tzinfo=UTC)  # "charging finished" in most cases
TEN_CENTS = Money(D("0.10"), "EUR")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def policy(**kw) -> OverstayPolicy:  # type: ignore[no-untyped-def]
    return OverstayPolicy(
        fee_per_minute=kw.pop("fee_per_minute", TEN_CENTS), grace=timedelta(minutes=10), **kw
    )


@pytest.mark.parametrize(
    "unplugged_after_min, expected_minutes",
    [
        (40, 30),  # the spec case: 40 min after full, 10 min grace -> exactly 30
        (40 + 59 / 60, 30),  # floor: 30 min 59 s is still 30 completed minutes
        (41, 31),
        (10, 0),  # inside the grace
        (10.99, 0),
        (-5, 0),  # unplugged before the allotted end
    ],
)
def test_overstay_minutes_floor_after_grace(unplugged_after_min: float, expected_minutes: int) -> None:
    assert overstay_minutes(T0, at(unplugged_after_min), timedelta(minutes=10)) == expected_minutes


def test_no_allotted_end_means_no_overstay() -> None:
    assert overstay_minutes(None, at(500), timedelta(0)) == 0


@pytest.mark.parametrize(
    "by, booking_end, stated, finished, expected",
    [
        (AllottedBy.CHARGING_FINISHED, at(120), at(90), at(0), at(0)),
        (AllottedBy.BOOKING_END, at(120), at(90), at(0), at(120)),
        (AllottedBy.BOOKING_END, None, at(90), at(0), at(0)),  # walk-in: falls back to charging finished
        (AllottedBy.STATED_DEPARTURE, at(120), at(90), at(0), at(90)),
        (AllottedBy.STATED_DEPARTURE, at(120), None, None, None),
        (AllottedBy.EARLIEST, at(120), at(90), at(100), at(90)),
        (AllottedBy.LATEST, at(120), None, at(130), at(130)),
        (AllottedBy.EARLIEST, None, None, None, None),
    ],
)
def test_allotted_end_options(by, booking_end, stated, finished, expected) -> None:  # type: ignore[no-untyped-def]
    assert allotted_end(policy(allotted_by=by), booking_end, stated, finished) == expected


@pytest.mark.parametrize(
    "kw, group, minutes, fee",
    [
        ({}, None, 30, "3.00"),  # 30 x 0.10
        ({"cap": Money(D("2.50"), "EUR")}, None, 30, "2.50"),
        ({"cap": Money(D("5.00"), "EUR")}, None, 30, "3.00"),
        ({"exempt_groups": frozenset({"staff"})}, "staff", 30, "0.00"),
        ({"exempt_groups": frozenset({"staff"})}, "public", 30, "3.00"),
        ({"fee_per_minute_by_group": {"fleet": Money(D("0.05"), "EUR")}}, "fleet", 30, "1.50"),
        ({"fee_per_minute": Money(D("0.125"), "EUR")}, None, 3, "0.38"),  # 0.375 -> HALF_UP
        ({"fee_per_minute": Money(D("15"), "JPY")}, None, 30, "450"),
    ],
)
def test_overstay_fee(kw, group, minutes, fee) -> None:  # type: ignore[no-untyped-def]
    result = overstay_fee(policy(**kw), minutes, group)
    assert str(result.amount) == fee


def test_booking_end_policy_assessment() -> None:
    # Booked until 18:00 (T0+120), car full at 16:00, unplugged 18:45: 45 - 10 grace = 35 minutes.
    p = policy(allotted_by=AllottedBy.BOOKING_END)
    a = assess_overstay(p, group=None, unplugged_at=at(165), booking_end=at(120), charging_finished_at=at(0))
    assert (a.allotted_end, a.billable_from, a.minutes, a.fee) == (
        at(120),
        at(130),
        35,
        Money(D("3.50"), "EUR"),
    )


def test_cap_is_reported() -> None:
    a = assess_overstay(
        policy(cap=Money(D(1), "EUR")), group=None, unplugged_at=at(40), charging_finished_at=at(0)
    )
    assert a.capped and a.fee == Money(D("1.00"), "EUR") and a.minutes == 30


@pytest.mark.parametrize(
    "busy, minutes",
    [
        ([], 0),  # never busy: nothing billed
        ([(at(0), at(100))], 30),  # busy throughout
        ([(at(20), at(25))], 5),
        ([(at(0), at(15))], 5),  # only the part after grace counts
        ([(at(20), at(25)), (at(22), at(30)), (at(35), at(60))], 15),  # overlaps merged: 10 + 5
        (
            [
                (
                    at(20),
                    at(
                        25,
                    ),
                ),
                (at(30), at(30.5)),
            ],
            5,
        ),  # 5.5 min in total -> 5
    ],
)
def test_only_when_busy(busy, minutes) -> None:  # type: ignore[no-untyped-def]
    p = policy(only_when_busy=True)
    a = assess_overstay(p, group=None, unplugged_at=at(40), charging_finished_at=at(0), busy_intervals=busy)
    assert a.minutes == minutes and a.fee == (TEN_CENTS * minutes).rounded()


def test_busy_intervals_ignored_unless_policy_says_so() -> None:
    a = assess_overstay(
        policy(), group=None, unplugged_at=at(40), charging_finished_at=at(0), busy_intervals=[]
    )
    assert a.minutes == 30


def test_only_when_busy_requires_busy_intervals() -> None:
    with pytest.raises(ValueError):
        assess_overstay(
            policy(only_when_busy=True), group=None, unplugged_at=at(40), charging_finished_at=at(0)
        )


def test_busy_intervals_from_occupancy() -> None:
    occupancy = [(at(0), at(10), 0.5), (at(10), at(20), 0.9), (at(20), at(30), 0.8), (at(30), at(40), 0.2)]
    assert busy_intervals_from_occupancy(occupancy, 0.8) == [(at(10), at(30))]


@pytest.mark.parametrize(
    "now_min, phase, minutes, fee",
    [
        (-30, OverstayPhase.OK, 0, "0.00"),  # still charging / well before
        (0, OverstayPhase.WARNING, 0, "0.00"),  # warn_before 10 min of T0 + 10 grace
        (9.9, OverstayPhase.WARNING, 0, "0.00"),
        (10, OverstayPhase.OVERSTAYING, 0, "0.00"),
        (25.5, OverstayPhase.OVERSTAYING, 15, "1.50"),
    ],
)
def test_overstay_state(now_min: float, phase: OverstayPhase, minutes: int, fee: str) -> None:
    state = overstay_state(at(now_min), policy(), group=None, charging_finished_at=T0)
    assert (state.phase, state.minutes_so_far, str(state.fee_so_far.amount)) == (phase, minutes, fee)
    assert state.billable_from == at(10)


def test_overstay_state_unknown_end_is_ok() -> None:
    assert overstay_state(at(500), policy(), group=None).phase is OverstayPhase.OK


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        OverstayPolicy(fee_per_minute=TEN_CENTS, cap=Money(D(1), "USD"))
    with pytest.raises(ValueError):
        OverstayPolicy(fee_per_minute=TEN_CENTS, busy_occupancy_threshold=1.5)
