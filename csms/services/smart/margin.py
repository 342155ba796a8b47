"""The departure margin learned from how early the site's drivers really left (pure rule + an hourly cache).

A stated departure is planned a margin earlier (``plan_input.planning_departure``): energy planned in the
last minutes would leave with a driver who goes early. But the margin costs every other driver flexibility:
the plan must finish each car sooner than it has to, so on an uncapped site it raises the peak (acnportal,
Caltech Monday with departures known: 52.5 kW with the configured margin, 49.6 kW without; offline minimum
45.0 kW). So the configured margin is an upper bound, and the site's own history decides how much of it is
needed: the ``departure_margin_quantile`` of how much earlier than stated past drivers left (0 for those who
stayed). Where drivers keep their word the margin shrinks to 0; where a tail of them leaves an hour early
(ACN: 10 % of Caltech's drivers left more than 65 minutes before their estimate, 10 % of JPL's more than
105) it stays at the configured cap. Too little history: the configured margin. With
``departure_margin_learned: auto`` the plan uses it only where it has a forecast of the cars to come
(``plan_input.margin_to_use``): under a binding limit the configured margin's early finish serves more
drivers in full, and on a site without history it keeps the peak down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from csms.config import SmartChargingConfig

REFRESH = timedelta(hours=1)


def learned_margin_s(stated_and_left: Sequence[tuple[datetime, datetime]], quantile: float,
                     min_sessions: int) -> float | None:
    """The ``quantile`` of how many seconds before their stated departure past drivers left (0 for those who
    stayed until it or later). None with fewer than ``min_sessions`` sessions that stated a departure."""
    early_s = sorted(max(0.0, (stated - left).total_seconds()) for stated, left in stated_and_left)
    if len(early_s) < min_sessions:
        return None
    return early_s[min(len(early_s) - 1, math.ceil(quantile * len(early_s)) - 1)] if quantile > 0 else 0.0


class DepartureMargins:
    """Per site: the learned margin (``learned_margin_s``) over its last ``departure_margin_days`` days, read
    through the store at most once an hour (a day of sessions barely moves a quantile of hundreds)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[datetime, float | None]] = {}

    def forget(self) -> None:
        self._cache.clear()

    async def margin_s(self, s: Any, site_id: str, station_ids: Iterable[str], now: datetime,
                       cfg: SmartChargingConfig) -> float | None:
        """The site's learned margin in seconds; None: not learned (off, or too little history)."""
        if not cfg.departure_margin_learned:
            return None
        if cfg.departure_margin_learned == "auto" and not cfg.shave_below_limit:
            # auto: only a plan with a forecast uses it (plan_input.margin_to_use), and the forecast is read only
            # where the site shaves below its limit (ArrivalHistory): not read for the rest.
            return None
        read_at, cached = self._cache.get(site_id, (None, None))
        if read_at is None or not read_at <= now < read_at + REFRESH:
            rows = await s.stated_departures_since(list(station_ids), now - timedelta(days=cfg.departure_margin_days))
            cached = learned_margin_s(rows, cfg.departure_margin_quantile, cfg.departure_margin_min_sessions)
            self._cache[site_id] = (now, cached)
        return cached
