"""A daily window of local wall-clock time: the one type behind TOU prices, limit schedules and base load.

The rules, the same for every user:
- The window covers ``[start, end)`` of the zone's wall-clock time. ``end < start`` runs past midnight into
  the next day (22:00-06:00 covers the next morning too).
- ``start == end`` is a whole day from ``start``: 00:00-00:00 is every instant (with every weekday), and a
  tariff's 07:00-07:00 on Mondays runs from Monday 07:00 to Tuesday 07:00.
- ``days`` are ISO weekdays (1 = Monday ... 7 = Sunday) on which the window *starts*.
- DST is decided on the wall clock: on a spring-forward day the skipped hour simply does not happen (a window
  02:00-03:00 is empty that day, one 02:30-05:00 opens at the jump); on a fall-back day the repeated hour is
  inside the window both times.

Pure: times come in as arguments, nothing reads the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ALL_DAYS: frozenset[int] = frozenset(range(1, 8))


def time_of_day(value: object) -> object:
    """Config input for a time of day. YAML 1.1 reads an unquoted 17:00 as the sexagesimal integer 1020
    (17 x 60): take it back as 17:00. Anything else passes through for the schema to parse."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 24 * 60:
            raise ValueError("give a time of day as 'HH:MM'")
        return time(value // 60, value % 60)
    return value


@dataclass(frozen=True, slots=True)
class DailyWindow:
    start: time
    end: time
    days: frozenset[int] = ALL_DAYS

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", frozenset(self.days))
        if not self.days or not self.days <= ALL_DAYS:
            raise ValueError(f"days must be ISO weekdays 1..7, got {sorted(self.days)}")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("window times are local wall-clock times; give them without tzinfo")

    @property
    def all_day(self) -> bool:
        """Covers every instant (00:00-00:00, or any start == end, on every weekday)."""
        return self.start == self.end and self.days == ALL_DAYS

    def contains(self, local: datetime) -> bool:
        """Is the wall-clock time `local` (in the window's zone; only its date and time are read) inside?"""
        t, weekday = local.time(), local.isoweekday()
        if self.start < self.end:
            return weekday in self.days and self.start <= t < self.end
        previous_day = 7 if weekday == 1 else weekday - 1  # runs past midnight: it may have started yesterday
        return (weekday in self.days and t >= self.start) or (previous_day in self.days and t < self.end)

    def covers(self, at: datetime, zone: ZoneInfo) -> bool:
        """Is the instant `at` (tz-aware) inside the window, read on `zone`'s wall clock?"""
        return self.contains(_aware(at).astimezone(zone))

    def changes(self, start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
        """Instants strictly inside (start, end) at which the window opens or closes, in UTC, sorted.

        Exact, DST included: the candidates are each day's start and end on the wall clock (both folds of a
        repeated hour) and the zone's offset changes (where a skipped or repeated hour moves across an edge);
        only those at which `covers` really changes are returned."""
        start, end = _aware(start).astimezone(UTC), _aware(end).astimezone(UTC)
        if end <= start or self.all_day:
            return []
        candidates = {c for c in _wall_instants((self.start, self.end), start, end, zone) if start < c < end}
        candidates |= set(offset_changes(start, end, zone))
        out: list[datetime] = []
        inside = self.covers(start, zone)
        for c in sorted(candidates):
            now_inside = self.covers(c, zone)
            if now_inside != inside:
                out.append(c)
                inside = now_inside
        return out


def offset_changes(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    """Instants strictly inside (start, end) at which `zone`'s UTC offset changes (DST), in UTC."""
    out: list[datetime] = []
    a = math.floor(_aware(start).timestamp())
    stop = math.ceil(_aware(end).timestamp())
    step = 12 * 3600  # offsets change at most once in a few weeks: one change per step at most
    while a < stop:
        b = min(stop, a + step)
        if _offset(a, zone) != _offset(b, zone):
            lo, hi = a, b  # offset(lo) differs from offset(hi): find the first second with the new offset
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(mid, zone) == _offset(lo, zone):
                    lo = mid
                else:
                    hi = mid
            at = datetime.fromtimestamp(hi, UTC)
            if _aware(start) < at < _aware(end):
                out.append(at)
        a = b
    return out


def _wall_instants(walls: tuple[time, ...], start: datetime, end: datetime, zone: ZoneInfo) -> set[datetime]:
    """Every instant (UTC) at which the wall clock of `zone` shows one of `walls`, on the local days around
    [start, end], both folds (a repeated hour shows it twice; a skipped one maps next to the jump)."""
    first: date = start.astimezone(zone).date() - timedelta(days=1)
    last: date = end.astimezone(zone).date() + timedelta(days=1)
    out: set[datetime] = set()
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        for wall in walls:
            for fold in (0, 1):
                out.add(datetime.combine(day, wall, tzinfo=zone).replace(fold=fold).astimezone(UTC))
    return out


def _offset(ts: int, zone: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(ts, UTC).astimezone(zone).utcoffset()


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a tz-aware instant is needed, got naive {at!r}")
    return at
