"""Load ACN-Data sessions (/work/shared/data/acn) into slot-aligned records for the quality benchmark.

Assumptions (also in docs/scheduling.md):
- 15-minute slots. A car can charge from the first slot boundary at/after its arrival and only in whole slots
  before its (actual) departure; sessions shorter than one whole slot are dropped.
- The scheduler is told only arrival, requested energy and *estimated* departure; the simulation ends charging
  at the *actual* departure. The requested energy is also the car's true demand (claimed=False rows carry the
  delivered energy there already).
- Every Caltech EVSE: 32 A max, 6 A min, 208 V, single-phase; the site is a single power limit.
"""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

DATA = Path("/work/shared/data/acn")
SLOT = timedelta(minutes=15)


@dataclass(frozen=True)
class AcnSession:
    key: str
    station: str
    arrival_slot: int           # first slot it can charge in
    departure_slot: int         # actual, exclusive
    est_departure_slot: int     # what the driver said, exclusive (may be <= arrival)
    requested_kwh: float


def load(site: str = "caltech", start: datetime | None = None, days: int = 7) -> tuple[datetime, list[AcnSession]]:
    """Sessions arriving in ``[start, start + days)``; slot 0 starts at ``start`` (default: 2019-05-06 local 00:00)."""
    path = next(DATA.glob(f"{site}_*.csv.gz"))
    start = start or datetime(2019, 5, 6, 7, 0, tzinfo=timezone.utc)   # Monday 00:00 PDT
    end = start + timedelta(days=days)
    out = []
    with gzip.open(path, "rt") as fh:
        for row in csv.DictReader(fh):
            arr = datetime.fromisoformat(row["arrival"]).astimezone(timezone.utc)
            if not start <= arr < end:
                continue
            dep = datetime.fromisoformat(row["departure"]).astimezone(timezone.utc)
            est = datetime.fromisoformat(row["estimated_departure"]).astimezone(timezone.utc)
            a, d = math.ceil((arr - start) / SLOT), math.floor((dep - start) / SLOT)
            if d <= a:
                continue
            out.append(AcnSession(row["session_id"], row["station_id"], a, d, math.floor((est - start) / SLOT),
                                  float(row["requested_energy (kWh)"])))
    out.sort(key=lambda s: (s.arrival_slot, s.key))
    return start, _one_car_per_station(out)


def _one_car_per_station(sessions: list[AcnSession]) -> list[AcnSession]:
    """Rounding to slots can make back-to-back sessions on a station overlap by a slot: trim the earlier one."""
    last: dict[str, AcnSession] = {}
    out = []
    for s in sessions:
        prev = last.get(s.station)
        if prev is not None and prev.departure_slot > s.arrival_slot:
            out.remove(prev)
            prev = AcnSession(prev.key, prev.station, prev.arrival_slot, s.arrival_slot, prev.est_departure_slot,
                              prev.requested_kwh)
            if prev.departure_slot > prev.arrival_slot:
                out.append(prev)
        out.append(s)
        last[s.station] = s
    return sorted(out, key=lambda s: (s.arrival_slot, s.key))
