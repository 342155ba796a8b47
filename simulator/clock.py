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
    """``sim_now = start + (monotonic elapsed) * speedup``, always a tz-aware UTC ``datetime``.

    ``speedup=60`` runs one simulated hour per real minute; ``speedup=1440`` a simulated day per real minute.
    ``start`` defaults to the real current time (UTC), truncated to whole seconds.
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

    def now(self) -> datetime:
        """Current simulated time (UTC)."""
        return self.start + timedelta(seconds=self.elapsed_s())

    def elapsed_s(self) -> float:
        """Simulated seconds since ``start``."""
        return (self._monotonic() - self._t0) * self.speedup

    def real_seconds(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take."""
        return max(0.0, sim_seconds) / self.speedup

    def sim_seconds(self, real_seconds: float) -> float:
        """Simulated seconds that elapse during ``real_seconds`` of real time."""
        return real_seconds * self.speedup

    async def sleep(self, sim_seconds: float) -> None:
        """Sleep ``sim_seconds`` of simulated time (``sim_seconds / speedup`` real seconds)."""
        await asyncio.sleep(self.real_seconds(sim_seconds))

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until the simulated time reaches ``when`` (returns at once if it already has)."""
        await self.sleep((when - self.now()).total_seconds())
