"""Piecewise limits and the two-phase change order that keeps a site within its limits in flight."""

from datetime import UTC, datetime, timedelta
from itertools import product

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.services.limits import Piecewise, floor_to, never_above, per_slot_max, pointwise, same_from

T0 = datetime(2026, 11, 27, 8, tzinfo=UTC)
SLOT = 900


def test_from_slots_merges_equal_neighbours_and_reverts_after_end() -> None:
    p = Piecewise.from_slots(T0, SLOT, [10, 10, 16, 16, 0], after=6)
    assert p.values == (10, 16, 0)
    assert p.at(T0) == 10 and p.at(T0 + timedelta(seconds=1800)) == 16
    assert p.at(T0 + timedelta(seconds=5 * SLOT)) == 6  # the TxDefault again
    assert p.at(T0 - timedelta(seconds=1)) == 6


def test_max_between_sees_a_peak_inside_the_window() -> None:
    p = Piecewise.from_slots(T0, 60, [5, 20, 5])
    assert p.max_between(T0, T0 + timedelta(seconds=180)) == 20
    assert per_slot_max(p, T0, 120, 2) == (20, 5)


def test_floor_never_rounds_up() -> None:
    assert floor_to(12.4999) == 12.4
    assert floor_to(6.0) == 6.0
    assert floor_to(0.05) == 0.0


def test_same_and_never_above() -> None:
    a = Piecewise.from_slots(T0, SLOT, [10, 12])
    b = Piecewise.from_slots(T0, SLOT, [10, 12.01])
    c = Piecewise.from_slots(T0, SLOT, [10, 13])
    assert same_from(a, b, T0)
    assert not same_from(a, c, T0)
    assert never_above(a, c, T0) and not never_above(c, a, T0)


values = st.lists(st.sampled_from([0.0, 6.0, 10.0, 16.0, 32.0]), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(values, values), min_size=1, max_size=4))
def test_two_phase_change_keeps_every_mix_within_both_plans(pairs: list[tuple[list[float], list[float]]]) -> None:
    """Every mix of {old, min(old,new)} and of {min(old,new), new} is bounded slot by slot by sum(old) or sum(new)."""
    olds = [Piecewise.from_slots(T0, SLOT, o) for o, _ in pairs]
    news = [Piecewise.from_slots(T0, SLOT, n) for _, n in pairs]
    lows = [pointwise(o, n, min) for o, n in zip(olds, news)]
    horizon = max(len(o) for pair in pairs for o in pair)
    for t in range(horizon):
        at = T0 + timedelta(seconds=t * SLOT)
        old_sum = sum(p.at(at) for p in olds)
        new_sum = sum(p.at(at) for p in news)
        for mix in product(*[(o, lo) for o, lo in zip(olds, lows)]):  # phase 1 in flight
            assert sum(p.at(at) for p in mix) <= old_sum + 1e-9
        for mix in product(*[(lo, n) for lo, n in zip(lows, news)]):  # phase 2 in flight
            assert sum(p.at(at) for p in mix) <= new_sum + 1e-9


def test_from_breaks_follows_real_slot_starts_and_since_drops_the_past() -> None:
    starts = [T0 + timedelta(minutes=7), T0 + timedelta(minutes=15), T0 + timedelta(minutes=30),
              T0 + timedelta(minutes=45)]
    p = Piecewise.from_breaks(starts, [10, 10, 16], after=6)
    assert p.breaks == (starts[0], starts[2]) and p.values == (10, 16) and p.end == starts[3]
    assert p.at(T0) == 6 and p.at(T0 + timedelta(minutes=20)) == 10 and p.at(starts[3]) == 6
    later = p.since(T0 + timedelta(minutes=20))
    assert later.breaks == (T0 + timedelta(minutes=20), starts[2]) and later.values == (10, 16)
    assert later.end == p.end and later.after == 6
