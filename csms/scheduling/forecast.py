"""Expected site power of cars that have not arrived yet, from the site's own history (pure, no I/O).

Why: an online plan that only knows the cars plugged in spreads them over their stays, and every car arriving
later then stacks on top: the site's peak ends up set by whoever arrives at noon. Told what the coming hours
usually bring, the plan charges the morning's cars sooner and leaves room for the cars still to come
(acnportal, a week uncapped with departures known: Caltech 64.5 -> 59.2 kW, JPL 196.6 -> 179.0 kW, where
the offline minimum is 50.0 and 152.9 kW; docs/scheduling.md).

The forecast for a slot is the mean, over recent days of the same kind (weekday or weekend), of the power those
days' sessions would have drawn charging evenly over their stays (energy / stay: the lowest flat rate that
serves each), counting only sessions that arrived later than "now" on that day's clock (the next day's too,
for a horizon past midnight). It feeds only the peak term of the plan (``SchedulingInput.
expected_arrivals_kw``), never a limit: a forecast can make the plan charge sooner, never deny a car that is
here, and a wrong one costs no energy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

import numpy as np

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class PastSession:
    """One finished session of the site: when it started, when it ended, and the energy it took."""

    arrival: datetime            # tz-aware
    departure: datetime          # tz-aware
    energy_wh: float


def expected_arrivals_kw(history: Sequence[PastSession], edges: Sequence[datetime], site_tz: tzinfo,
                         lookback_days: int = 14, min_days: int = 3) -> tuple[float, ...]:
    """Per plan slot (``edges``: its n + 1 boundaries, ``edges[0]`` = now), the mean power (kW) that sessions
    arriving after now drew on the last ``lookback_days`` days of today's kind, on today's clock. Empty when
    fewer than ``min_days`` such days have any session (no history: no forecast)."""
    if len(edges) < 2:
        return ()
    now = edges[0].astimezone(site_tz)
    today = now.date()
    weekend = today.weekday() >= 5
    days = {today - timedelta(days=k) for k in range(1, lookback_days + 1)}
    days = {d for d in days if (d.weekday() >= 5) == weekend}
    rows: list[tuple[float, float, float]] = []      # (seconds after now on today's clock, stay s, kW)
    seen: set[date] = set()
    for s in history:
        a = s.arrival.astimezone(site_tz)
        stay_s = (s.departure - s.arrival).total_seconds()
        if a.date() not in days or stay_s <= 0 or s.energy_wh <= 0:
            continue
        seen.add(a.date())
        offset_s = (a.replace(year=today.year, month=today.month, day=today.day) - now).total_seconds()
        rows.append((offset_s, stay_s, s.energy_wh / 1000.0 / (stay_s / 3600.0)))
    if len(seen) < min_days:
        return ()
    t = np.array([(e - edges[0]).total_seconds() for e in edges])
    t0, t1 = t[:-1][None, :], t[1:][None, :]
    offset, stay, kw = (np.array(c)[:, None] for c in zip(*rows))
    total = np.zeros(len(edges) - 1)
    for start in (offset, offset + DAY_S):           # today's clock, and tomorrow's within the horizon
        overlap = np.clip(np.minimum(t1, start + stay) - np.maximum(t0, start), 0.0, None)
        total += ((start > 0) * kw * overlap / (t1 - t0)).sum(axis=0)
    return tuple(float(v) for v in total / len(seen))
