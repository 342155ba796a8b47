"""The clock is injected: pure code takes `now` as a parameter, services hold a Clock."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, always tz-aware UTC."""
        ...

    def speedup(self) -> float:
        """How many simulated seconds pass per real second (1 for a real clock)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def speedup(self) -> float:
        return 1.0


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


@dataclass
class FakeClock:
    """A clock for tests: moves only when told to."""

    t: datetime

    def now(self) -> datetime:
        return self.t

    def speedup(self) -> float:
        return 1.0

    def advance(self, **delta: float) -> None:
        self.t += timedelta(**delta)


def utc(dt: datetime) -> datetime:
    """Normalise to tz-aware UTC; naive datetimes are taken as UTC (several chargers send them)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
