"""The learned departure margin (pure): smart.margin.learned_margin_s and plan_input.planning_departure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.services.plan_input import booked_deadline, planning_departure
from csms.services.smart.margin import learned_margin_s

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _pairs(early_min: list[float]) -> list[tuple[datetime, datetime]]:
    """(stated, left) with the driver leaving ``early_min`` minutes before the stated time (negative: later)."""
    return [(T0, T0 - timedelta(minutes=m)) for m in early_min]


def test_drivers_who_keep_their_word_need_no_margin() -> None:
    assert learned_margin_s(_pairs([0.0] * 15 + [-30.0] * 10), 0.9, 20) == 0.0


def test_the_quantile_of_how_early_they_left() -> None:
    early = [0.0] * 8 + [10.0, 65.0]           # 10 drivers; one left 10 min early, one 65 min early
    assert learned_margin_s(_pairs(early), 0.9, 5) == 10 * 60.0
    assert learned_margin_s(_pairs(early), 1.0, 5) == 65 * 60.0
    assert learned_margin_s(_pairs(early), 0.8, 5) == 0.0


def test_too_little_history_learns_nothing() -> None:
    assert learned_margin_s(_pairs([0.0] * 19), 0.9, 20) is None


def test_planning_departure_takes_the_smaller_of_configured_and_learned() -> None:
    stated = T0 + timedelta(hours=8)
    assert planning_departure(stated, T0, 15.0, 30.0) == stated - timedelta(minutes=30)          # configured
    assert planning_departure(stated, T0, 15.0, 30.0, learned_margin_s=0.0) == stated           # kept their word
    assert planning_departure(stated, T0, 15.0, 30.0, learned_margin_s=600.0) == stated - timedelta(minutes=10)
    assert planning_departure(stated, T0, 15.0, 30.0, learned_margin_s=7200.0) == stated - timedelta(minutes=30)
    near = T0 + timedelta(minutes=20)          # 15 % of the 20 minutes left: 3 minutes, below the learned 10
    assert planning_departure(near, T0, 15.0, 30.0, learned_margin_s=600.0) == near - timedelta(minutes=3)


@given(st.lists(st.floats(-120, 240), min_size=1, max_size=60), st.floats(0, 1))
def test_margin_is_one_of_the_observed_earliness_values(early_min: list[float], q: float) -> None:
    m = learned_margin_s(_pairs(early_min), q, 1)
    assert m is not None
    observed = {max(0.0, e * 60.0) for e in early_min} | {0.0}
    assert min(abs(m - o) for o in observed) < 1e-6
    share_at_most = sum(max(0.0, e * 60.0) <= m + 1e-6 for e in early_min) / len(early_min)
    assert share_at_most >= q - 1e-9 or m == 0.0


@pytest.mark.parametrize("q", [0.0, 0.5, 1.0])
def test_quantile_bounds(q: float) -> None:
    m = learned_margin_s(_pairs([5.0, 10.0, 20.0]), q, 1)
    assert m == {0.0: 0.0, 0.5: 600.0, 1.0: 1200.0}[q]


def test_a_booked_car_is_planned_to_be_done_a_margin_and_the_partial_slot_before_the_booking_ends() -> None:
    """A booking ending at 09:07 (5-minute margin, 15-minute slots): its energy is planned in by 09:00, not
    into the 7 minutes of the slot it ends in; one ending at 09:04 is planned in by 08:45. Once that time has
    passed the car is planned as early as possible (None: no deadline to wait for)."""
    assert booked_deadline(T0 + timedelta(hours=1, minutes=7), T0, 900, 300) == T0 + timedelta(hours=1)
    assert booked_deadline(T0 + timedelta(hours=1, minutes=4), T0, 900, 300) == T0 + timedelta(minutes=45)
    assert booked_deadline(T0 + timedelta(hours=1), T0, 900, 0) == T0 + timedelta(hours=1)   # on the grid
    assert booked_deadline(T0 + timedelta(minutes=14), T0, 900, 300) is None


async def test_auto_reads_no_history_where_the_plan_has_no_forecast() -> None:
    """With ``auto`` the learned margin is used only with a forecast, which is read only where the site shaves
    below its limit: elsewhere the store is not asked for stated departures at all."""
    from csms.config import SmartChargingConfig
    from csms.services.smart.margin import DepartureMargins

    class Store:
        def __init__(self) -> None:
            self.reads = 0

        async def stated_departures_since(self, station_ids: list[str], since: datetime) -> list:
            self.reads += 1
            return _pairs([0.0] * 20)

    store, margins = Store(), DepartureMargins()
    assert await margins.margin_s(store, "s", ["CP-A"], T0, SmartChargingConfig()) is None
    assert store.reads == 0
    assert await margins.margin_s(store, "s", ["CP-A"], T0, SmartChargingConfig(shave_below_limit=True)) == 0.0
    assert store.reads == 1
    margins.forget()
    assert await margins.margin_s(store, "s", ["CP-A"], T0, SmartChargingConfig(departure_margin_learned=True)) == 0.0
    assert store.reads == 2
