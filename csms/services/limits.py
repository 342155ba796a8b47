"""Pure: piecewise-constant current limits over absolute time, and the safe order to change them.

Why two phases: if every old profile and every new profile keep the site within its limits, a mix of
old and new (while the commands are in flight) may not. Sending min(old, new) first, then new, keeps
every intermediate mix within limits: during phase 1 each charger is at old or min(old, new) <= old;
during phase 2 at min(old, new) or new <= new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

TOLERANCE_A = 0.05


@dataclass(frozen=True, slots=True)
class Piecewise:
    """Limit `values[i]` (A per phase) from `breaks[i]` until `breaks[i+1]` (the last until `end`).

    Before `breaks[0]` and from `end` on, `after` applies (the TxDefault limit once a TxProfile expires).
    """

    breaks: tuple[datetime, ...]
    values: tuple[float, ...]
    end: datetime
    after: float = 0.0

    @staticmethod
    def constant(value: float, start: datetime, end: datetime, after: float = 0.0) -> "Piecewise":
        return Piecewise((start,), (value,), end, after)

    @staticmethod
    def from_slots(start: datetime, slot_s: int, values: tuple[float, ...] | list[float],
                   after: float = 0.0) -> "Piecewise":
        breaks: list[datetime] = []
        vals: list[float] = []
        for t, v in enumerate(values):
            if not vals or abs(vals[-1] - v) > 1e-9:
                breaks.append(start + timedelta(seconds=t * slot_s))
                vals.append(v)
        if not vals:
            return Piecewise((start,), (after,), start, after)
        return Piecewise(tuple(breaks), tuple(vals), start + timedelta(seconds=len(values) * slot_s), after)

    @staticmethod
    def from_breaks(starts: tuple[datetime, ...] | list[datetime], values: tuple[float, ...] | list[float],
                    after: float = 0.0) -> "Piecewise":
        """`values[i]` from `starts[i]` until `starts[i+1]`; `starts` has one more element (the end), e.g. a
        plan's real slot starts (`Schedule.slot_starts()`: slot 0 from now, later slots on the grid)."""
        if len(starts) != len(values) + 1:
            raise ValueError("starts must have one element more than values")
        breaks: list[datetime] = []
        vals: list[float] = []
        for t0, v in zip(starts, values):
            if not vals or abs(vals[-1] - v) > 1e-9:
                breaks.append(t0)
                vals.append(v)
        if not vals:
            return Piecewise((starts[0],), (after,), starts[0], after)
        return Piecewise(tuple(breaks), tuple(vals), starts[-1], after)

    def since(self, start: datetime) -> "Piecewise":
        """The same limits from `start` on (what a profile sent now must say; the past is not resent)."""
        if start <= self.breaks[0] or start >= self.end:
            return self
        keep = [(b, v) for b, v in zip(self.breaks, self.values) if b > start]
        return Piecewise((start, *(b for b, _ in keep)), (self.at(start), *(v for _, v in keep)), self.end,
                         self.after)

    def at(self, when: datetime) -> float:
        if when < self.breaks[0] or when >= self.end:
            return self.after
        v = self.values[0]
        for b, x in zip(self.breaks, self.values):
            if b <= when:
                v = x
            else:
                break
        return v

    def max_between(self, t0: datetime, t1: datetime) -> float:
        """Highest limit in force at any instant of [t0, t1)."""
        best = self.at(t0)
        for b, x in zip(self.breaks, self.values):
            if t0 < b < t1:
                best = max(best, x)
        if t0 < self.end < t1:
            best = max(best, self.after)
        return best

    def points(self) -> list[datetime]:
        return [*self.breaks, self.end]


def pointwise(a: Piecewise, b: Piecewise, fn: "type[min] | type[max]" = min) -> Piecewise:  # type: ignore[valid-type]
    start = min(a.breaks[0], b.breaks[0])
    end = max(a.end, b.end)
    points = sorted({start, *a.points(), *b.points()})
    breaks: list[datetime] = []
    vals: list[float] = []
    for p in points:
        if p >= end:
            break
        v = fn(a.at(p), b.at(p))
        if not vals or abs(vals[-1] - v) > 1e-9:
            breaks.append(p)
            vals.append(v)
    return Piecewise(tuple(breaks), tuple(vals), end, fn(a.after, b.after))


def _points(a: Piecewise, b: Piecewise, now: datetime, until: datetime | None) -> list[datetime]:
    return sorted({now, *[p for p in a.points() + b.points() if p > now and (until is None or p < until)]})


def same_from(a: Piecewise, b: Piecewise, now: datetime, until: datetime | None = None) -> bool:
    """Equal (within tolerance) at every instant of [now, until) (until None: forever)."""
    return all(abs(a.at(p) - b.at(p)) <= TOLERANCE_A for p in _points(a, b, now, until))


def never_above(a: Piecewise, b: Piecewise, now: datetime, until: datetime | None = None,
                tolerance_a: float = TOLERANCE_A) -> bool:
    """a <= b (within `tolerance_a`) at every instant of [now, until)."""
    return all(a.at(p) <= b.at(p) + tolerance_a for p in _points(a, b, now, until))


def per_slot_max(p: Piecewise, start: datetime, slot_s: int, n: int) -> tuple[float, ...]:
    """The most `p` allows within each slot: what a charger under `p` may draw, slot by slot."""
    out = []
    for t in range(n):
        t0 = start + timedelta(seconds=t * slot_s)
        out.append(p.max_between(t0, t0 + timedelta(seconds=slot_s)))
    return tuple(out)


def floor_to(value: float, step: float = 0.1) -> float:
    """Round a limit down to the charger's resolution (1.6's schema has multipleOf 0.1): never up."""
    return math.floor(value / step + 1e-9) * step
