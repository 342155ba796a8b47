"""Cars that have not arrived yet, forecast from the site's own history (pure, no I/O).

Why: an online plan that only knows the cars plugged in spreads them over their stays, and every car arriving
later then stacks on top: the site's peak ends up set by whoever arrives at noon. Told what the coming hours
usually bring, the plan charges the morning's cars sooner and leaves room for the cars still to come.

The forecast is *flexible demand*, not a load curve: the sessions of recent days of the same kind (weekday or
weekend) that arrived later than "now" on that day's clock (the next day's too, for a horizon past midnight)
are grouped by when they arrived (one group per ``bin_s``), and each group becomes one ``ExpectedArrival``:
the mean arrival of its sessions, their stay (the energy-weighted mean), and per day on average their energy and
their number of cars. The planner schedules those groups like sessions of a tiny priority (``csms.scheduling.expected``), so
their energy is placed where it fits best instead of being assumed flat over each stay: a flat forecast
overstates the competition at midday (acnportal, Caltech week uncapped, departures known: flat forecast
59.2 kW, flexible 57.3 kW, offline minimum 50.0 kW; docs/scheduling.md). A forecast never feeds a limit and
never takes energy from a car that is here (its priority is 1 % of a driver's): a wrong one costs no energy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from csms.scheduling.problem import ExpectedArrival

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class PastSession:
    """One finished session of the site: when it started, when it ended, and the energy it took."""

    arrival: datetime            # tz-aware
    departure: datetime          # tz-aware
    energy_wh: float


def expected_arrivals(history: Sequence[PastSession], now: datetime, horizon_end: datetime, site_tz: tzinfo,
                      lookback_days: int = 14, min_days: int = 3, bin_s: float = 3600.0,
                      max_groups: int = 24, car_power_w: float = math.inf,
                      quiet_day_fraction: float = 0.0) -> tuple[ExpectedArrival, ...]:
    """The cars expected to arrive after ``now`` and before ``horizon_end``, as at most ``max_groups`` groups
    (the earliest ones), from the last ``lookback_days`` days of today's kind. Empty when fewer than
    ``min_days`` such days have any session (no history: no forecast).

    A day of today's kind with fewer sessions than ``quiet_day_fraction`` × the median day's is left out (a
    public holiday, a site's day off): it is not the kind of day being forecast, and averaged in it lowers
    every group (0: every day counts).

    A stay that runs past the horizon's end counts only the energy it could not take after it at
    ``car_power_w`` (a car's power at the site; inf: such a stay counts nothing)."""
    horizon_s = (horizon_end - now).total_seconds()
    if horizon_s <= 0:
        return ()
    local_now = now.astimezone(site_tz)
    today = local_now.date()
    weekend = today.weekday() >= 5
    days = {today - timedelta(days=k) for k in range(1, lookback_days + 1)}
    days = {d for d in days if (d.weekday() >= 5) == weekend}
    bins: dict[int, list[tuple[float, float, float, date]]] = {}   # bin -> [(s after now, stay s, Wh, day)]
    cars_on: dict[date, int] = {}                                  # sessions per day of today's kind
    for s in history:
        a = s.arrival.astimezone(site_tz)
        stay_s = (s.departure - s.arrival).total_seconds()
        if a.date() not in days or stay_s <= 0 or s.energy_wh <= 0:
            continue
        cars_on[a.date()] = cars_on.get(a.date(), 0) + 1
        offset_s = (a.replace(year=today.year, month=today.month, day=today.day) - local_now).total_seconds()
        for start_s in (offset_s, offset_s + DAY_S):           # today's clock, and tomorrow's within the horizon
            if 0 < start_s < horizon_s:
                # A stay past the horizon's end counts only what it must take inside the horizon: what it
                # could not take after the end at the car's power. Its whole energy squeezed into the part
                # inside was a spike at the horizon's end (91.5 kW where the forecast otherwise gave 55 kW);
                # its part at its mean rate still forced energy before the end that the car can take later,
                # so tomorrow looked busier than it is and today's load rose to meet it, as a peak "paid for"
                # anyway (acnportal, Caltech week, departures known, perfect forecast: 55.0 -> 52.3 kW).
                inside_s = min(stay_s, horizon_s - start_s)
                after_s = stay_s - inside_s
                energy_wh = s.energy_wh if after_s <= 0 else max(0.0, s.energy_wh - car_power_w * after_s / 3600.0)
                if energy_wh > 0:
                    row = (start_s, inside_s, energy_wh, a.date())
                    bins.setdefault(int(start_s // bin_s), []).append(row)
    # Quiet days out: Independence Day and the Friday after it in a 14-day window were 2 of 10 weekdays with
    # 6-11 cars where the others had 28-43 (Caltech), and JPL's every other Friday off has a third of a
    # weekday's cars, so the mean under-forecast every normal day by 10-20 % (docs/acn_benchmark.md, "Quiet
    # days and a longer history"). Measured with 28 days of history: lower peak on 14 of 20 site-weeks
    # uncapped; with estimated departures the week after 4 July lost 0.48 point of energy at JPL for 12.5 kW
    # less peak.
    counts = sorted(cars_on.values())
    median = counts[len(counts) // 2] if counts else 0
    quiet = {d for d, n in cars_on.items() if n < quiet_day_fraction * median}
    n_days = len(cars_on) - len(quiet)
    if n_days < min_days:
        return ()
    if quiet:
        bins = {b: kept for b, rows in bins.items() if (kept := [r for r in rows if r[3] not in quiet])}
    out: list[ExpectedArrival] = []
    for b in sorted(bins)[:max_groups]:
        rows = bins[b]
        arrive_s = sum(r[0] for r in rows) / len(rows)
        # The energy-weighted mean stay: the cars that take the most energy set how flexible the group is.
        # The median stay squeezed the whole group's energy into a typical (shorter) car's stay, so the
        # forecast looked less flexible than the cars it stands for, and the plan raised the peak for it
        # (Caltech 2019-06-18: 56.1 kW from 09:30 where 39.4 kW served every car; 51.7 kW for the week with
        # this rule; docs/acn_benchmark.md "The forecast's stay").
        stay_s = sum(r[1] * r[2] for r in rows) / sum(r[2] for r in rows)
        stay_s = min(stay_s, horizon_s - arrive_s)
        out.append(ExpectedArrival(
            arrival=now + timedelta(seconds=arrive_s), departure=now + timedelta(seconds=arrive_s + stay_s),
            energy_wh=sum(r[2] for r in rows) / n_days, cars=len(rows) / n_days))
    return tuple(out)
