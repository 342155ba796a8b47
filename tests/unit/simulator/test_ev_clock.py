from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.clock import SimClock
from simulator.ev import EV, EVModel, amps_from_watts, watts_from_amps

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_clock_scales_monotonic_time() -> None:
    t = [100.0]
    clock = SimClock(T0, speedup=60, monotonic=lambda: t[0])
    assert clock.now() == T0
    t[0] += 2.0
    assert clock.now() == T0 + timedelta(minutes=2)
    assert clock.real_seconds(120) == pytest.approx(2.0)
    assert clock.sim_seconds(1.0) == 60


def test_clock_rejects_naive_start_and_bad_speedup() -> None:
    with pytest.raises(ValueError):
        SimClock(datetime(2024, 1, 1), 1)
    with pytest.raises(ValueError):
        SimClock(T0, 0)


async def test_clock_sleep_is_scaled() -> None:
    clock = SimClock(T0, speedup=3600)
    before = clock.now()
    await clock.sleep(36)  # 10 ms real
    assert (clock.now() - before).total_seconds() >= 36


def test_paused_clock_stands_still_and_resumes_where_it_stopped() -> None:
    t = [100.0]
    clock = SimClock(T0, speedup=60, monotonic=lambda: t[0])
    t[0] += 1.0
    clock.pause()
    clock.pause()                                   # idempotent
    t[0] += 5.0
    assert clock.paused and clock.now() == T0 + timedelta(minutes=1)
    clock.resume()
    clock.resume()
    t[0] += 1.0
    assert not clock.paused and clock.now() == T0 + timedelta(minutes=2)
    assert clock.pauses == 1 and clock.paused_real_s == pytest.approx(5.0)


async def test_clock_sleep_waits_simulated_time_across_a_pause() -> None:
    import asyncio

    clock = SimClock(T0, speedup=3600)
    before = clock.now()
    sleeper = asyncio.create_task(clock.sleep(72))   # 20 ms real while running
    await asyncio.sleep(0.005)
    clock.pause()
    await asyncio.sleep(0.05)                        # longer than the whole sleep: it must not return
    assert not sleeper.done()
    clock.resume()
    await asyncio.wait_for(sleeper, 1.0)
    assert (clock.now() - before).total_seconds() >= 72


def test_unit_conversions() -> None:
    assert watts_from_amps(16, 230, 3) == pytest.approx(11040)
    assert amps_from_watts(11040, 230, 3) == pytest.approx(16)
    assert amps_from_watts(1000, 230, 0) == 0


@pytest.mark.parametrize(
    "soc, limit_w, expected_w",
    [
        (0.2, 50_000, 11_000),      # EV max
        (0.2, 4_000, 4_000),        # external limit
        (0.2, 0, 0),                # suspended by the station
        (0.8, 50_000, 11_000),      # taper starts above 80 %
        (0.9, 50_000, 5_750),       # halfway down the taper: 11000 - (11000-500)*0.5
        (0.9, 3_000, 3_000),        # limit below the taper
    ],
)
def test_power_is_min_of_limit_max_and_taper(soc: float, limit_w: float, expected_w: float) -> None:
    ev = EV(EVModel(max_power_w=11_000, taper_end_power_w=500), soc=soc)
    assert ev.power_for_limit(limit_w) == pytest.approx(expected_w)


def test_step_integrates_energy_and_stops_at_need() -> None:
    ev = EV(EVModel(capacity_wh=50_000, max_power_w=10_000), soc=0.2, energy_need_wh=5_000)
    assert ev.step(10_000, 900) == pytest.approx(2_500)       # 15 min at 10 kW
    assert ev.soc == pytest.approx(0.25)
    assert ev.step(10_000, 3600) == pytest.approx(2_500)      # only the remaining need
    assert ev.satisfied and ev.power_for_limit(10_000) == 0
    assert ev.step(10_000, 60) == 0


def test_step_follows_taper_to_full() -> None:
    ev = EV(EVModel(capacity_wh=10_000, max_power_w=10_000, taper_start_soc=0.8, taper_end_power_w=1_000),
            soc=0.79)
    for _ in range(200):
        ev.step(22_000, 60)
    assert ev.soc == pytest.approx(1.0)
    assert ev.satisfied


def test_min_current_blocks_low_limits() -> None:
    ev = EV(EVModel(phases=3, voltage_v=230, min_current_a=6), soc=0.5)
    assert ev.power_for_limit(watts_from_amps(5.9, 230, 3)) == 0
    assert ev.power_for_limit(watts_from_amps(6, 230, 3)) == pytest.approx(4140)


def test_target_soc_limits_need() -> None:
    ev = EV(EVModel(capacity_wh=40_000), soc=0.5, target_soc=0.6, energy_need_wh=10_000)
    assert ev.remaining_need_wh == pytest.approx(4_000)


@given(soc=st.floats(0, 1), limit=st.floats(0, 50_000), dt=st.floats(0, 7200))
def test_power_never_exceeds_limit_or_max(soc: float, limit: float, dt: float) -> None:
    ev = EV(EVModel(max_power_w=11_000), soc=soc)
    e = ev.step(limit, dt)
    assert e >= 0
    assert e <= min(limit, 11_000) * dt / 3600 + 1e-6
    assert ev.last_power_w <= min(limit, 11_000) + 1e-6
    assert 0 <= ev.soc <= 1
