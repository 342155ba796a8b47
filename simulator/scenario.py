"""Scenario files (``scenarios/*.yaml``): strict schema and the PURE, seeded expansion into a run plan.

A scenario names a site (grid limit, circuits, base load, billing), a fleet of simulated chargers, how EVs
arrive (Poisson by hour of day, a fixed depot routine, or a replay of real ACN sessions), the EV models,
driver behaviour (departure noise, overstays, bookings and no-shows), faults, the time acceleration and
pass/fail thresholds. Every key is validated strictly (unknown keys are errors naming the key).

:func:`expand` turns a scenario and a seed into a :class:`RunPlan` (charger configs, sessions per charger,
bookings, faults). It draws from one ``random.Random(seed)`` only, so the plan is identical for a seed;
:meth:`RunPlan.digest` fingerprints it. No I/O except reading the replay CSV (see :mod:`simulator.replay`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.arrivals import SessionPlan
from simulator.charger import ChargerConfig
from simulator.ev import EV, EVModel
from simulator.fleet import FaultSpec


class ScenarioError(Exception):
    """A scenario that cannot be used. The message names the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


IDENT = r"^[^:/\s]{1,40}$"


# ---------------------------------------------------------------------------------------------- schema
class Window(_Strict):
    """A daily window in the site's local time (``end <= start`` wraps past midnight)."""

    start: time
    end: time
    limit_kw: float = Field(ge=0)


class BaseLoad(_Strict):
    constant_kw: float = Field(0.0, ge=0)
    windows: list[Window] = []          # limit_kw = the load inside the window


class Circuit(_Strict):
    name: str = Field(min_length=1)
    parent: str | None = None
    max_current_a: float | None = Field(None, gt=0)
    max_power_kw: float | None = Field(None, gt=0)
    #: Chargers by 1-based index (3), range ("1-25") or charger id ("OFF-0003").
    chargers: list[int | str] = []


class Site(_Strict):
    id: Annotated[str, Field(pattern=IDENT)] = "site"
    grid_limit_kw: float = Field(gt=0)
    voltage_v: float = Field(230.0, gt=0)
    timezone: str = "UTC"
    limit_schedule: list[Window] = []
    base_load: BaseLoad = BaseLoad()
    circuits: list[Circuit] = []
    #: Passed unchanged to the CSMS config's ``billing`` section with --with-csms (tariffs, TOU, overstay).
    billing: dict[str, Any] = {}

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class Fleet(_Strict):
    count: int = Field(ge=1, le=1000)
    id_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,20}$")] = "SIM"
    #: Share of each protocol, e.g. {"1.6": 0.5, "2.0.1": 0.5}; assigned interleaved, not drawn.
    protocols: dict[Literal["1.6", "2.0.1"], float] = {"1.6": 1.0}
    max_current_a: float = Field(32.0, gt=0)
    phases: Literal[1, 2, 3] = 3
    voltage_v: float = Field(230.0, gt=0)
    evse_count: Literal[1] = 1
    meter_interval_s: int = Field(300, ge=10)
    password: str | None = None

    @field_validator("protocols")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or any(s < 0 for s in v.values()) or sum(v.values()) <= 0:
            raise ValueError("give at least one protocol with a positive share")
        return v


class EvModelSpec(_Strict):
    name: str = Field(min_length=1)
    battery_kwh: float = Field(gt=0)
    max_kw: float = Field(gt=0)
    phases: Literal[1, 2, 3] = 3
    taper_start_soc: float = Field(0.8, gt=0, le=1)
    taper_end_kw: float = Field(0.5, ge=0)
    min_current_a: float = Field(0.0, ge=0)
    weight: float = Field(1.0, gt=0)

    def model(self, voltage_v: float) -> EVModel:
        return EVModel(self.name, capacity_wh=self.battery_kwh * 1000, max_power_w=self.max_kw * 1000,
                       phases=self.phases, voltage_v=voltage_v, taper_start_soc=self.taper_start_soc,
                       taper_end_power_w=self.taper_end_kw * 1000, min_current_a=self.min_current_a)


DEFAULT_EV_MODELS = [
    EvModelSpec(name="compact-1ph-7kW", battery_kwh=40, max_kw=7.4, phases=1, weight=0.3),
    EvModelSpec(name="mid-3ph-11kW", battery_kwh=60, max_kw=11, phases=3, weight=0.5),
    EvModelSpec(name="large-3ph-22kW", battery_kwh=90, max_kw=22, phases=3, weight=0.2),
]


class Dist(_Strict):
    """A clipped distribution: normal (``sd`` > 0), or lognormal with ``lognormal: true``; ``sd: 0`` = fixed."""

    mean: float = Field(gt=0)
    sd: float = Field(0.0, ge=0)
    min: float = Field(0.0, ge=0)
    max: float | None = Field(None, gt=0)
    lognormal: bool = False

    def draw(self, rng: random.Random) -> float:
        if self.sd <= 0:
            x = self.mean
        elif self.lognormal:
            s2 = math.log(1 + (self.sd / self.mean) ** 2)
            x = rng.lognormvariate(math.log(self.mean) - s2 / 2, math.sqrt(s2))
        else:
            x = rng.gauss(self.mean, self.sd)
        x = max(self.min, x)
        return min(self.max, x) if self.max is not None else x


class Noise(_Strict):
    """Normal noise in minutes (may be negative: leaving early)."""

    mean: float = 0.0
    sd: float = Field(0.0, ge=0)


class PoissonArrivals(_Strict):
    """Site-wide arrivals: a Poisson process with ``rate_per_hour[h]`` EVs per hour in local hour ``h``.

    An EV takes a random free charger; with none free it drives away (counted as ``turned_away``).
    """

    rate_per_hour: list[float] = Field(min_length=24, max_length=24)
    dwell_h: Dist
    energy_kwh: Dist
    soc: tuple[float, float] = (0.1, 0.6)
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = [1, 2, 3, 4, 5, 6, 7]   # ISO weekdays with arrivals

    @field_validator("rate_per_hour")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        if any(r < 0 for r in v):
            raise ValueError("rates must be >= 0")
        return v


class FixedArrivals(_Strict):
    """Depot routine: every charger gets one vehicle a day, arriving around ``arrive`` (local time) and
    stating ``depart`` (next morning if earlier than ``arrive``)."""

    arrive: time
    arrive_sd_min: float = Field(0.0, ge=0)
    depart: time
    energy_kwh: Dist
    soc: tuple[float, float] = (0.1, 0.6)
    share: float = Field(1.0, gt=0, le=1)     # fraction of chargers whose vehicle comes on a given day


class Replay(_Strict):
    """Replay real sessions from an ACN-Data CSV (``arrival, departure, requested_energy (kWh), ...``)."""

    csv: str                                  # relative to --data-dir (default ../shared/data/acn) or absolute
    station_map: Literal["auto"] | dict[str, int | str] = "auto"
    start: date                               # first local day replayed
    days: int = Field(7, ge=1, le=120)
    timezone: str = "America/Los_Angeles"     # local time of the CSV and of `start`
    energy: Literal["requested", "delivered"] = "requested"
    soc: tuple[float, float] = (0.1, 0.5)


class Arrivals(_Strict):
    poisson: PoissonArrivals | None = None
    fixed: FixedArrivals | None = None
    replay: Replay | None = None

    @model_validator(mode="after")
    def _one(self) -> "Arrivals":
        given = [k for k in ("poisson", "fixed", "replay") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of poisson, fixed, replay (got {given or 'none'})")
        return self


class Overstay(_Strict):
    probability: float = Field(0.0, ge=0, le=1)
    minutes: Dist = Dist(mean=30, sd=15, min=1)


class Bookings(_Strict):
    """A share of sessions is booked through POST /api/v1/bookings ``lead_min`` before the arrival."""

    probability: float = Field(0.0, ge=0, le=1)
    no_show_probability: float = Field(0.0, ge=0, le=1)
    lead_min: float = Field(60.0, ge=0)


class Drivers(_Strict):
    tokens: int = Field(0, ge=0)              # size of the driver token pool (0 = 2 x chargers)
    token_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,20}$")] = "DRV"
    group: str | None = None                  # CSMS group of the tokens (with --with-csms)
    state_departure: bool = True              # the EV tells the CSMS the stated departure (2.0.1)
    #: actual departure = stated + noise (minutes); overstays add on top.
    departure_noise_min: Noise | None = None
    overstay: Overstay = Overstay()
    bookings: Bookings = Bookings()


class Fault(_Strict):
    """``at_h`` (hours after the start) for given chargers, or ``probability`` per charger at a random time."""

    kind: Literal["disconnect", "reboot", "reject_profiles"]
    at_h: float | None = Field(None, ge=0)
    probability: float | None = Field(None, ge=0, le=1)
    chargers: Literal["all"] | list[int | str] = "all"
    duration_min: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _when(self) -> "Fault":
        if (self.at_h is None) == (self.probability is None):
            raise ValueError("give exactly one of at_h, probability")
        if self.kind == "disconnect" and self.duration_min <= 0:
            raise ValueError("duration_min: a disconnect needs a duration > 0")
        return self


class Scenario(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,60}$")]
    description: str = ""
    seed: int = 1
    #: Simulated start (UTC). Default for a replay: midnight of replay.start in the replay's time zone.
    start: datetime | None = None
    duration_h: float | None = Field(None, gt=0, le=24 * 120)   # default: replay days x 24, else required
    speedup: float = Field(60.0, gt=0)
    site: Site
    fleet: Fleet
    ev_models: list[EvModelSpec] = DEFAULT_EV_MODELS
    arrivals: Arrivals
    drivers: Drivers = Drivers()
    faults: list[Fault] = []
    thresholds: list[str] = []
    #: Extra CSMS config sections merged into the generated config with --with-csms (e.g. smart_charging).
    csms: dict[str, Any] = {}
    #: A measured excess of at most this much over the limit is rounding, not a violation.
    violation_tolerance_kw: float = Field(0.05, ge=0)

    @model_validator(mode="after")
    def _check(self) -> "Scenario":
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start: needs a UTC offset, e.g. 2024-05-06T00:00:00Z")
        if self.arrivals.replay is None:
            if self.start is None:
                raise ValueError("start: required (a fixed start keeps runs reproducible)")
            if self.duration_h is None:
                raise ValueError("duration_h: required")
        n = self.fleet.count
        for ci, c in enumerate(self.site.circuits):
            for ref in c.chargers:
                _charger_refs(ref, n, self.fleet.id_prefix, f"site.circuits[{ci}].chargers")
        for fi, f in enumerate(self.faults):
            if f.chargers != "all":
                for ref in f.chargers:
                    _charger_refs(ref, n, self.fleet.id_prefix, f"faults[{fi}].chargers")
        from simulator.report import parse_threshold   # local: report imports this module
        for ti, t in enumerate(self.thresholds):
            try:
                parse_threshold(t)
            except ValueError as e:
                raise ValueError(f"thresholds[{ti}]: {e}") from None
        return self

    # derived
    def sim_start(self) -> datetime:
        if self.start is not None:
            return self.start.astimezone(UTC)
        rp = self.arrivals.replay
        assert rp is not None
        return datetime.combine(rp.start, time(0), ZoneInfo(rp.timezone)).astimezone(UTC)

    def duration_s(self) -> float:
        if self.duration_h is not None:
            return self.duration_h * 3600
        rp = self.arrivals.replay
        assert rp is not None
        return rp.days * 86400.0

    def charger_id(self, index: int) -> str:
        return f"{self.fleet.id_prefix}-{index + 1:04d}"


def _charger_refs(ref: int | str, n: int, prefix: str, key: str) -> list[int]:
    """0-based indexes of a charger reference: 1-based int, "a-b" range, or a charger id."""
    if isinstance(ref, int):
        idx = [ref - 1]
    elif m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", ref):
        a, b = int(m.group(1)), int(m.group(2))
        if a > b:
            raise ValueError(f"{key}: empty range {ref!r}")
        idx = list(range(a - 1, b))
    elif ref.startswith(prefix + "-") and ref[len(prefix) + 1:].isdigit():
        idx = [int(ref[len(prefix) + 1:]) - 1]
    else:
        raise ValueError(f"{key}: {ref!r} is not a charger index, range (1-25) or id ({prefix}-0001)")
    for i in idx:
        if not 0 <= i < n:
            raise ValueError(f"{key}: charger {i + 1} outside 1..{n}")
    return idx


def charger_indexes(refs: list[int | str], scn: Scenario) -> list[int]:
    out: list[int] = []
    for r in refs:
        out += [i for i in _charger_refs(r, scn.fleet.count, scn.fleet.id_prefix, "chargers") if i not in out]
    return out


def format_validation_error(err: ValidationError) -> str:
    """'fleet.count: Input should be greater than or equal to 1' - one line per problem."""
    lines = []
    for e in err.errors():
        loc = ""
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        # pydantic adds the union member tried ("int", "str", "function-after[...]") to the location
        loc = re.sub(r"\.(int|str|float|function-[a-z]+\[[^\]]*\]|literal\[[^\]]*\]|dict\[[^\]]*\])", "", loc)
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(dict.fromkeys(lines))


def parse_scenario(text: str, source: str = "scenario") -> Scenario:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScenarioError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: the top level must be a mapping")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as e:
        raise ScenarioError(f"{source}: {format_validation_error(e)}") from None


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ScenarioError(f"{p}: cannot read: {e.strerror}") from None
    return parse_scenario(text, source=str(p))


# ---------------------------------------------------------------------------------------------- plan
@dataclass(frozen=True, slots=True)
class BookingPlan:
    """A booking made through the CSMS REST API at ``create_at``; ``no_show``: nobody comes."""

    charger_index: int
    id_token: str
    start: datetime
    end: datetime
    energy_wh: float
    create_at: datetime
    no_show: bool


@dataclass(slots=True)
class RunPlan:
    scenario: Scenario
    start: datetime
    duration_s: float
    charger_configs: list[ChargerConfig]
    sessions: list[list[SessionPlan]]
    faults: list[FaultSpec]
    bookings: list[BookingPlan]
    id_tokens: list[str]
    stats: dict[str, int] = field(default_factory=dict)   # turned_away, replay_skipped, ...

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(), "duration_s": self.duration_s,
            "chargers": [[c.charger_id, c.protocol, c.max_current_a, c.phases] for c in self.charger_configs],
            "sessions": [[s.charger_index, s.arrival.isoformat(), s.departure.isoformat(),
                          s.stated_departure.isoformat() if s.stated_departure else None, s.energy_wh,
                          s.initial_soc, s.ev_model.name, s.id_token] for ss in self.sessions for s in ss],
            "faults": [[f.at_s, f.kind, list(f.chargers), f.duration_s] for f in self.faults],
            "bookings": [[b.charger_index, b.id_token, b.start.isoformat(), b.end.isoformat(), b.energy_wh,
                          b.create_at.isoformat(), b.no_show] for b in self.bookings],
            "stats": self.stats,
        }

    def digest(self) -> str:
        """Fingerprint of everything the seed decides (same seed and scenario => same digest)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def assign_protocols(shares: dict[str, float], n: int) -> list[str]:
    """Interleave protocols in proportion to their shares (largest deficit first, ties in given order)."""
    total = sum(shares.values())
    counts = dict.fromkeys(shares, 0)
    out = []
    for i in range(n):
        p = max(shares, key=lambda k: shares[k] / total * (i + 1) - counts[k])
        counts[p] += 1
        out.append(p)
    return out


def _pick(rng: random.Random, items: list[Any], weights: list[float]) -> Any:
    x = rng.random() * sum(weights)
    for it, w in zip(items, weights, strict=True):
        x -= w
        if x <= 0:
            return it
    return items[-1]


def deliverable_wh(plan: SessionPlan, charger_max_w: float, until: datetime | None = None) -> float:
    """Energy the EV could take from plug-in to its actual departure (or ``until``) with no site limit:
    ``min(requested, battery room, EV/charger max power with taper x dwell)``. Used to define satisfaction."""
    end = min(plan.departure, until) if until else plan.departure
    dwell = max(0.0, (end - plan.arrival).total_seconds())
    ev = EV(plan.ev_model, soc=plan.initial_soc, energy_need_wh=plan.energy_wh)
    phases_w = charger_max_w
    return ev.step(phases_w, dwell, max_substep_s=60.0)


def expand(scn: Scenario, *, url: str = "ws://127.0.0.1:9000/ocpp", data_dir: str | Path | None = None,
           seed: int | None = None) -> RunPlan:
    """The seeded run plan of a scenario (pure apart from reading a replay CSV)."""
    seed = scn.seed if seed is None else seed
    rng = random.Random(seed)
    start, duration = scn.sim_start(), scn.duration_s()
    end = start + timedelta(seconds=duration)
    fl = scn.fleet
    protos = assign_protocols(dict(fl.protocols), fl.count)
    configs = [ChargerConfig(scn.charger_id(i), url=url, protocol=protos[i], password=fl.password,
                             max_current_a=fl.max_current_a, phases=fl.phases, voltage_v=fl.voltage_v,
                             evse_count=fl.evse_count, meter_interval_s=fl.meter_interval_s)
               for i in range(fl.count)]
    models = [m.model(fl.voltage_v) for m in scn.ev_models]
    weights = [m.weight for m in scn.ev_models]
    drv = scn.drivers
    n_tokens = drv.tokens or 2 * fl.count
    tokens = [f"{drv.token_prefix}-{i + 1:04d}" for i in range(n_tokens)]
    tz = ZoneInfo(scn.site.timezone)
    stats: dict[str, int] = {"turned_away": 0}

    # raw sessions: (charger index or None, arrival, stated departure, energy_wh, soc, model, token)
    raw: list[tuple[int | None, datetime, datetime, float, float, EVModel, str, datetime | None]] = []
    arr = scn.arrivals
    if arr.poisson is not None:
        p = arr.poisson
        lam_max = max(p.rate_per_hour)
        t = start
        while lam_max > 0:
            t = t + timedelta(seconds=rng.expovariate(lam_max / 3600.0))
            if t >= end:
                break
            local = t.astimezone(tz)
            if rng.random() * lam_max > p.rate_per_hour[local.hour] or local.isoweekday() not in p.weekdays:
                continue
            model = _pick(rng, models, weights)
            soc = round(rng.uniform(*p.soc), 3)
            energy = min(model.capacity_wh * (1 - soc), p.energy_kwh.draw(rng) * 1000)
            dwell = p.dwell_h.draw(rng) * 3600
            t = t.replace(microsecond=0)
            raw.append((None, t, t + timedelta(seconds=round(max(300.0, dwell))), energy, soc, model,
                        rng.choice(tokens), None))
    elif arr.fixed is not None:
        f = arr.fixed
        day = start.astimezone(tz).date() - timedelta(days=1)
        while True:
            base = datetime.combine(day, f.arrive, tz)
            if base.astimezone(UTC) >= end:
                break
            dep_day = day + timedelta(days=1) if f.depart <= f.arrive else day
            stated = datetime.combine(dep_day, f.depart, tz).astimezone(UTC)
            for i in range(fl.count):
                come = rng.random() < f.share
                jitter = rng.gauss(0, f.arrive_sd_min * 60) if f.arrive_sd_min else 0.0
                model = _pick(rng, models, weights)
                soc = round(rng.uniform(*f.soc), 3)
                energy = min(model.capacity_wh * (1 - soc), f.energy_kwh.draw(rng) * 1000)
                a = (base + timedelta(seconds=round(jitter))).astimezone(UTC)
                a = min(a, stated - timedelta(minutes=30))
                if come and start <= a < end:
                    raw.append((i, a, stated, energy, soc, model, tokens[i % len(tokens)], None))
            day += timedelta(days=1)
    else:
        from simulator.replay import replay_sessions
        assert arr.replay is not None
        rows, rstats = replay_sessions(arr.replay, scn, data_dir)
        stats.update(rstats)
        rp = arr.replay
        offset = start - datetime.combine(rp.start, time(0), ZoneInfo(rp.timezone)).astimezone(UTC)
        for r in rows:
            model = _pick(rng, models, weights)
            soc = round(rng.uniform(*arr.replay.soc), 3)
            energy = r.energy_wh
            if energy > model.capacity_wh * 0.95:    # a bigger battery of that model line
                model = EVModel(model.name + "-xl", capacity_wh=math.ceil(energy / 0.6 / 1000) * 1000,
                                max_power_w=model.max_power_w, phases=model.phases, voltage_v=model.voltage_v,
                                taper_start_soc=model.taper_start_soc, taper_end_power_w=model.taper_end_power_w,
                                min_current_a=model.min_current_a)
            soc = round(min(soc, max(0.0, 1 - energy / model.capacity_wh - 0.02)), 3)
            token = tokens[r.token_index % len(tokens)]
            # the actual departure of a replay is the real one
            raw.append((r.charger_index, r.arrival + offset, r.stated_departure + offset, energy, soc, model,
                        token, r.departure + offset))

    raw.sort(key=lambda x: (x[1], -1 if x[0] is None else x[0]))
    busy_until = [start - timedelta(days=1)] * fl.count
    sessions: list[list[SessionPlan]] = [[] for _ in range(fl.count)]
    bookings: list[BookingPlan] = []
    noise, ov, bk = drv.departure_noise_min, drv.overstay, drv.bookings
    for ci, a, stated, energy, soc, model, token, actual in raw:
        # driver behaviour (drawn for every arrival in the same order, so a seed fixes all of it)
        if actual is not None:
            depart = actual
        else:
            extra = (rng.gauss(noise.mean, noise.sd) if noise.sd else noise.mean) * 60 if noise else 0.0
            if ov.probability and rng.random() < ov.probability:
                extra += ov.minutes.draw(rng) * 60
            depart = stated + timedelta(seconds=round(extra))
        depart = max(depart, a + timedelta(minutes=5))
        booked = bk.probability > 0 and rng.random() < bk.probability
        no_show = booked and rng.random() < bk.no_show_probability
        if ci is None:
            free = [i for i in range(fl.count) if busy_until[i] <= a]
            if not free:
                stats["turned_away"] += 1
                continue
            ci = rng.choice(free)
        elif busy_until[ci] > a:
            stats["overlap_skipped"] = stats.get("overlap_skipped", 0) + 1
            continue
        if booked:
            create = max(start, a - timedelta(minutes=bk.lead_min))
            bookings.append(BookingPlan(ci, token, a, stated, round(energy, 1), create, no_show))
            if no_show:
                continue          # the bay stays free for the CSMS to release after its no-show grace
        busy_until[ci] = depart + timedelta(minutes=2)
        sessions[ci].append(SessionPlan(ci, a, depart, math.floor(energy * 10) / 10, soc, model, token,
                                        stated if drv.state_departure else None,
                                        {"stated_departure": stated.isoformat(), "booked": str(booked)}))
    faults = _faults(scn, rng, duration)
    used = sorted({s.id_token for ss in sessions for s in ss} | {b.id_token for b in bookings})
    stats["seed"] = seed
    stats["sessions"] = sum(len(s) for s in sessions)
    stats["bookings"] = len(bookings)
    stats["no_shows"] = sum(b.no_show for b in bookings)
    return RunPlan(scn, start, duration, configs, sessions, faults, bookings, used, stats)


def _faults(scn: Scenario, rng: random.Random, duration_s: float) -> list[FaultSpec]:
    out: list[FaultSpec] = []
    for f in scn.faults:
        targets = list(range(scn.fleet.count)) if f.chargers == "all" else charger_indexes(f.chargers, scn)
        dur = f.duration_min * 60
        if f.at_h is not None:
            out.append(FaultSpec(f.at_h * 3600, f.kind, tuple(targets), dur))
        else:
            for i in targets:
                if rng.random() < (f.probability or 0):
                    out.append(FaultSpec(round(rng.uniform(0, max(0.0, duration_s - dur)), 1), f.kind, (i,), dur))
    out.sort(key=lambda f: (f.at_s, f.kind, f.chargers))
    return out
