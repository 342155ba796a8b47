"""Simulation clock: real time scaled by a speed-up factor.

Only the async shells (charger, fleet) read this clock. Pure modules (``ev``, ``profiles``, ``station``,
``arrivals``) take ``now: datetime`` as a parameter instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClock:
    """``sim_now = start + (monotonic elapsed - paused) * speedup``, always a tz-aware UTC ``datetime``.

    ``speedup=60`` runs one simulated hour per real minute; ``speedup=1440`` a simulated day per real minute.
    ``start`` defaults to the real current time (UTC), truncated to whole seconds.

    The clock can be paused (:meth:`pause` / :meth:`resume`): simulated time stands still meanwhile. The scenario
    runner pauses the clock it shares with an in-process CSMS while the CSMS is behind with the chargers'
    messages (see ``simulator.run.Governor``), so a slow or busy machine stretches the run instead of letting
    the simulated world run ahead of what the CSMS knows. :meth:`sleep` and :meth:`sleep_until` wait in
    simulated time, pauses included.
    """

    def __init__(
        self,
        start: datetime | None = None,
        speedup: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speedup <= 0:
            raise ValueError("speedup must be > 0")
        if start is None:
            start = datetime.now(UTC).replace(microsecond=0)
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        self.start = start.astimezone(UTC)
        self.speedup = float(speedup)
        self._monotonic = monotonic
        self._t0 = monotonic()
        self._paused_at: float | None = None
        self.paused_real_s = 0.0      # real seconds spent paused (finished pauses)
        self.pauses = 0

    def now(self) -> datetime:
        """Current simulated time (UTC)."""
        return self.start + timedelta(seconds=self.elapsed_s())

    def elapsed_s(self) -> float:
        """Simulated seconds since ``start``."""
        t = self._monotonic() if self._paused_at is None else self._paused_at
        return (t - self._t0 - self.paused_real_s) * self.speedup

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self) -> None:
        """Stop simulated time (idempotent)."""
        if self._paused_at is None:
            self._paused_at = self._monotonic()
            self.pauses += 1

    def resume(self) -> None:
        """Let simulated time run again from where it stopped (idempotent)."""
        if self._paused_at is not None:
            self.paused_real_s += self._monotonic() - self._paused_at
            self._paused_at = None

    def real_seconds(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take (while not paused)."""
        return max(0.0, sim_seconds) / self.speedup

    def sim_seconds(self, real_seconds: float) -> float:
        """Simulated seconds that elapse during ``real_seconds`` of real time (while not paused)."""
        return real_seconds * self.speedup

    async def sleep(self, sim_seconds: float) -> None:
        """Sleep ``sim_seconds`` of simulated time (``sim_seconds / speedup`` real seconds, plus pauses)."""
        if sim_seconds <= 0:
            await asyncio.sleep(0)
            return
        await self.sleep_until(self.now() + timedelta(seconds=sim_seconds))

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until the simulated time reaches ``when`` (returns at once if it already has)."""
        while True:
            left = (when - self.now()).total_seconds()
            if left <= 0:
                await asyncio.sleep(0)
                return
            # while paused, re-check at least every 50 ms of real time
            await asyncio.sleep(min(self.real_seconds(left), 0.05) if self.paused else self.real_seconds(left))
