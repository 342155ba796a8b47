"""The clock is injected: pure code takes `now` as a parameter, services hold a Clock.

Services wait on the clock too (`await clock.sleep(seconds)`, in clock seconds), never on
`asyncio.sleep`: a real clock sleeps, an accelerated one sleeps `seconds / factor`, and the fake clock of
the tests returns when the test moves time past the wake-up, so timers are tested without waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, always tz-aware UTC."""
        ...

    def speedup(self) -> float:
        """How many clock seconds pass per real second (1 for a real clock)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of clock time (returns at once for 0 or less, after yielding to the loop)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def speedup(self) -> float:
        return 1.0

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass
class AcceleratedClock:
    """Simulated time running `factor` times faster than real time from `start`.

    Used when the CSMS runs against an accelerated simulator fleet: both sides anchor the same
    simulated start, so timestamps and plans agree.
    """

    start: datetime
    factor: float = 1.0
    _t0: float = field(default_factory=time.monotonic)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.factor)

    def speedup(self) -> float:
        return self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)


@dataclass
class FakeClock:
    """A clock for tests: moves only when told to.

    `advance()` moves time and wakes every `sleep()` whose wake-up it passed (the woken tasks run when the
    test next yields to the loop). `await run_for(...)` moves time in steps, stopping at each wake-up on
    the way and letting the woken tasks run, so a timer that sleeps again inside the interval fires again.
    """

    t: datetime
    _sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = field(default_factory=list, repr=False)
    _seq: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def now(self) -> datetime:
        return self.t

    def speedup(self) -> float:
        return 1.0

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + timedelta(seconds=seconds), next(self._seq), fut))
        await fut

    def advance(self, **delta: float) -> None:
        self.t += timedelta(**delta)
        self._wake()

    async def run_for(self, **delta: float) -> None:
        """Advance by `delta`, stopping at every wake-up inside it and letting woken tasks run."""
        end = self.t + timedelta(**delta)
        await settle()
        while (wake := self.next_wake()) is not None and wake <= end:
            self.t = max(self.t, wake)
            self._wake()
            await settle()
        self.t = end
        self._wake()
        await settle()

    def next_wake(self) -> datetime | None:
        """When the earliest pending `sleep()` returns (None: nobody sleeps)."""
        while self._sleepers and self._sleepers[0][2].done():  # cancelled sleepers
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def _wake(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self.t:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)


async def settle(rounds: int = 20) -> None:
    """Yield to the event loop `rounds` times: tasks woken by a fake clock run until they wait again."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def utc(dt: datetime) -> datetime:
    """Normalise to tz-aware UTC; naive datetimes are taken as UTC (several chargers send them)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
