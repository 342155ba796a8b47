"""PURE arrival sampler: when EVs arrive at which charger, how long they stay and how much energy they want.

Every draw comes from an explicit ``random.Random`` built from the seed, so the same seed and config
give the same sessions. A later scenario loader can build :class:`ArrivalConfig` from YAML or replace
:func:`plan_sessions` with a CSV replay that yields the same :class:`SessionPlan` objects.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from simulator.ev import EVModel

DEFAULT_EV_MODELS: tuple[tuple[EVModel, float], ...] = (
    (EVModel("compact-1ph-7kW", capacity_wh=40_000, max_power_w=7_400, phases=1), 0.3),
    (EVModel("mid-3ph-11kW", capacity_wh=60_000, max_power_w=11_000, phases=3), 0.5),
    (EVModel("large-3ph-22kW", capacity_wh=90_000, max_power_w=22_000, phases=3), 0.2),
)


@dataclass(frozen=True, slots=True)
class ArrivalConfig:
    """Parameters of the session process, per charger. Times in simulated seconds, energy in Wh.

    Arrivals per charger are a Poisson process with ``mean_gap_s`` between one departure and the next
    arrival, thinned by ``hourly_weights`` (24 relative weights, hour of day UTC; ``None`` = flat).
    Dwell ~ lognormal with the given mean/sd, clipped to ``[min_dwell_s, max_dwell_s]``. The energy
    need ~ normal, clipped to ``[min_energy_wh, capacity * (1 - initial SoC)]``.
    """

    mean_gap_s: float = 3 * 3600
    first_arrival_max_s: float = 1800
    mean_dwell_s: float = 4 * 3600
    sd_dwell_s: float = 2 * 3600
    min_dwell_s: float = 15 * 60
    max_dwell_s: float = 14 * 3600
    mean_energy_wh: float = 20_000
    sd_energy_wh: float = 8_000
    min_energy_wh: float = 2_000
    soc_range: tuple[float, float] = (0.1, 0.6)
    ev_models: tuple[tuple[EVModel, float], ...] = DEFAULT_EV_MODELS
    hourly_weights: tuple[float, ...] | None = None
    id_tokens: tuple[str, ...] = ()        # empty: one token per charger/session ("TAG-<n>")
    state_departure: bool = True           # the driver tells the EV/station the departure time


@dataclass(frozen=True, slots=True)
class SessionPlan:
    charger_index: int
    arrival: datetime
    departure: datetime
    energy_wh: float
    initial_soc: float
    ev_model: EVModel
    id_token: str
    stated_departure: datetime | None = None
    meta: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def dwell_s(self) -> float:
        return (self.departure - self.arrival).total_seconds()


def _lognormal(rng: random.Random, mean: float, sd: float) -> float:
    if sd <= 0:
        return mean
    sigma2 = math.log(1 + (sd / mean) ** 2)
    return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))


def _pick_model(rng: random.Random, models: Sequence[tuple[EVModel, float]]) -> EVModel:
    total = sum(w for _, w in models)
    x = rng.random() * total
    for m, w in models:
        x -= w
        if x <= 0:
            return m
    return models[-1][0]


def _next_arrival(rng: random.Random, cfg: ArrivalConfig, after: datetime) -> datetime:
    t = after
    for _ in range(10_000):  # thinning: accept an arrival with probability weight/max_weight
        t = t + timedelta(seconds=rng.expovariate(1.0 / cfg.mean_gap_s))
        if not cfg.hourly_weights:
            return t
        w = cfg.hourly_weights[t.hour % len(cfg.hourly_weights)]
        if rng.random() * max(cfg.hourly_weights) <= w:
            return t
    return t


def sample_session(rng: random.Random, cfg: ArrivalConfig, charger_index: int, arrival: datetime,
                   serial: int) -> SessionPlan:
    """Draw one session that arrives at ``arrival``."""
    model = _pick_model(rng, cfg.ev_models)
    soc = round(rng.uniform(*cfg.soc_range), 3)
    dwell = min(cfg.max_dwell_s, max(cfg.min_dwell_s, _lognormal(rng, cfg.mean_dwell_s, cfg.sd_dwell_s)))
    room = model.capacity_wh * (1.0 - soc)
    energy = min(room, max(cfg.min_energy_wh, rng.gauss(cfg.mean_energy_wh, cfg.sd_energy_wh)))
    departure = arrival + timedelta(seconds=round(dwell))
    token = cfg.id_tokens[serial % len(cfg.id_tokens)] if cfg.id_tokens else f"TAG-{charger_index + 1:04d}"
    return SessionPlan(charger_index, arrival, departure, math.floor(energy * 10) / 10, soc, model, token,
                       departure if cfg.state_departure else None)


def plan_sessions(cfg: ArrivalConfig, seed: int, start: datetime, horizon_s: float, n_chargers: int
                  ) -> list[list[SessionPlan]]:
    """Sessions for each charger (index 0..n-1) arriving within ``[start, start+horizon_s)``.

    Deterministic for a given seed: chargers draw in index order from one ``random.Random(seed)``.
    Sessions on one charger never overlap (the next arrival comes after the previous departure).
    """
    rng = random.Random(seed)
    end = start + timedelta(seconds=horizon_s)
    plans: list[list[SessionPlan]] = []
    serial = 0
    for i in range(n_chargers):
        sessions: list[SessionPlan] = []
        t = start + timedelta(seconds=rng.uniform(0, cfg.first_arrival_max_s))
        while t < end:
            s = sample_session(rng, cfg, i, t, serial)
            serial += 1
            sessions.append(s)
            t = _next_arrival(rng, cfg, s.departure)
        plans.append(sessions)
    return plans
