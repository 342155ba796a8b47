"""Load ACN-Data sessions (/work/shared/data/acn, see its README.md) as records on acnportal's period grid.

Pure standard library (no acnportal import): ``bench/acn_quality.py`` turns the records into acnportal
``EV``/``Battery``/``PluginEvent`` objects, ``tests/unit/bench`` uses them directly.

Conventions (those of acnportal's own ACN-Data loader, ``acnsim.events.acndata_events._convert_to_ev``):

- Times become integer periods since ``start`` by truncation (``floor``): with 5-minute periods a car
  arriving at 08:03 charges from period 08:00..08:05; leaving at 17:58 it charges up to 17:55. A session
  whose arrival and departure fall in the same period is dropped (acnportal refuses ``departure <= arrival``).
- ``requested_kwh`` is the driver's request (``requested_energy``; for ``claimed=False`` rows the dataset
  puts the delivered energy there) and is also the car's true demand: the simulated battery holds that much.
- ``est_departure`` is the driver's estimate in periods, possibly <= arrival (the schedulers then treat the
  car as overdue, see ``acn_quality.known_departure``); ``departure`` is what really happened.
- Sessions of one station that overlap after rounding (a swap inside one period) get the earlier one's
  departure moved to the later arrival, so one station never holds two cars.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

DATA = Path("/work/shared/data/acn")
SITE_TZ = ZoneInfo("America/Los_Angeles")       # both ACN sites; CSV timestamps carry their UTC offset
DEFAULT_START = date(2019, 5, 6)                  # a Monday


@dataclass(frozen=True)
class AcnSession:
    session_id: str
    station_id: str
    arrival: int                # period index (since the window start), first period it charges in
    departure: int              # actual, exclusive: it charges in periods [arrival, departure)
    est_departure: int          # what the driver said (exclusive); may be <= arrival
    requested_kwh: float


def window_start(day: date = DEFAULT_START) -> datetime:
    """Local midnight of ``day`` at the ACN sites, as an aware UTC datetime."""
    return datetime.combine(day, time(0), tzinfo=SITE_TZ).astimezone(timezone.utc)


def load(site: str = "caltech", start: date = DEFAULT_START, days: int = 7, period_min: float = 5.0,
         data_dir: Path = DATA) -> tuple[datetime, list[AcnSession], dict[str, int]]:
    """Sessions of ``site`` arriving in ``[start, start + days)`` (local days).

    Returns the window start (aware UTC; period 0 begins there), the sessions sorted by arrival, and counts of
    the rows dropped and trimmed.
    """
    path = next(data_dir.glob(f"{site}_*.csv.gz"), None)
    if path is None:
        raise FileNotFoundError(f"no {site}_*.csv.gz in {data_dir}")
    t0 = window_start(start)
    t1 = window_start(start + timedelta(days=days))
    period = timedelta(minutes=period_min)
    stats = {"rows": 0, "dropped_short": 0, "dropped_no_request": 0, "trimmed_overlap": 0,
             "dropped_overlap": 0}
    out = []
    with gzip.open(path, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            arr = datetime.fromisoformat(row["arrival"]).astimezone(timezone.utc)
            if not t0 <= arr < t1:
                continue
            stats["rows"] += 1
            dep = datetime.fromisoformat(row["departure"]).astimezone(timezone.utc)
            est = datetime.fromisoformat(row["estimated_departure"]).astimezone(timezone.utc)
            kwh = float(row["requested_energy (kWh)"])
            a, d, e = ((x - t0) // period for x in (arr, dep, est))
            if d <= a:
                stats["dropped_short"] += 1
                continue
            if kwh <= 0:
                stats["dropped_no_request"] += 1
                continue
            out.append(AcnSession(row["session_id"], row["station_id"], a, d, e, kwh))
    out.sort(key=lambda s: (s.arrival, s.session_id))
    return t0, _one_car_per_station(out, stats), stats


def _one_car_per_station(sessions: list[AcnSession], stats: dict[str, int]) -> list[AcnSession]:
    last: dict[str, int] = {}          # station -> index in out of its latest session
    out: list[AcnSession | None] = []
    for s in sessions:
        i = last.get(s.station_id)
        prev = out[i] if i is not None else None
        if prev is not None and prev.departure > s.arrival:
            if s.arrival > prev.arrival:
                out[i] = replace(prev, departure=s.arrival)
                stats["trimmed_overlap"] += 1
            else:
                out[i] = None
                stats["dropped_overlap"] += 1
        last[s.station_id] = len(out)
        out.append(s)
    return [s for s in out if s is not None]


def stations(sessions: list[AcnSession]) -> list[str]:
    """One EVSE per station id seen in the window, sorted."""
    return sorted({s.station_id for s in sessions})
