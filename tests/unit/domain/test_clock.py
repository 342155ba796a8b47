"""Clock.sleep waits clock seconds: the fake clock wakes sleepers when the test moves time past them."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from csms.domain.clock import AcceleratedClock, FakeClock, SystemClock

T0 = datetime(2026, 11, 27, 8, tzinfo=UTC)


async def test_fake_clock_sleep_returns_once_time_passes_the_wake_up() -> None:
    clock = FakeClock(T0)
    woke: list[datetime] = []

    async def sleeper(s: float) -> None:
        await clock.sleep(s)
        woke.append(clock.now())

    tasks = [asyncio.create_task(sleeper(s)) for s in (60, 30)]
    await asyncio.sleep(0)
    assert clock.next_wake() == T0 + timedelta(seconds=30)
    clock.advance(seconds=29)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(seconds=31)  # past both: both wake, at the time the clock shows
    await asyncio.gather(*tasks)
    assert woke == [T0 + timedelta(seconds=60)] * 2
    await clock.sleep(0)  # returns at once


async def test_run_for_stops_at_every_wake_up_so_a_timer_fires_each_time() -> None:
    clock = FakeClock(T0)
    fired: list[datetime] = []

    async def every_15_min() -> None:
        while True:
            await clock.sleep(900)
            fired.append(clock.now())

    task = asyncio.create_task(every_15_min())
    await clock.run_for(hours=1, minutes=1)
    task.cancel()
    assert fired == [T0 + timedelta(minutes=m) for m in (15, 30, 45, 60)]
    assert clock.now() == T0 + timedelta(hours=1, minutes=1)
    assert clock.next_wake() is None  # the cancelled sleeper is forgotten


async def test_accelerated_clock_sleeps_real_seconds_divided_by_its_factor() -> None:
    clock = AcceleratedClock(T0, factor=1000.0)
    t0 = time.monotonic()
    await clock.sleep(100)  # 100 clock seconds = 0.1 real seconds
    elapsed = time.monotonic() - t0
    assert 0.09 <= elapsed < 1.0
    assert clock.now() >= T0 + timedelta(seconds=99)


async def test_system_clock_sleeps_real_seconds() -> None:
    t0 = time.monotonic()
    await SystemClock().sleep(0.02)
    assert time.monotonic() - t0 >= 0.019
