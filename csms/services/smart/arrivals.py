"""The site's recent sessions, which the plan's arrival forecast is computed from (csms.scheduling.forecast).

Read once an hour per site: the forecast looks at whole past days, so a session that ended minutes ago changes
nothing until tomorrow's plans, and a large site would otherwise read two weeks of sessions at every re-plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from csms.config import SmartChargingConfig
from csms.scheduling.forecast import PastSession

REFRESH = timedelta(hours=1)


class ArrivalHistory:
    """Per site: its sessions of the last `arrival_forecast_days` days (+1, for time zones), cached an hour."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[datetime, tuple[PastSession, ...]]] = {}

    def forget(self) -> None:
        self._cache.clear()

    async def sessions(self, s: Any, site_id: str, station_ids: Iterable[str], now: datetime,
                       cfg: SmartChargingConfig) -> tuple[PastSession, ...]:
        """The site's past sessions, reading them through store session `s` when the cache is stale."""
        if cfg.arrival_forecast_days <= 0 or not cfg.shave_below_limit:
            return ()   # every site has a limit, and without shaving below it the plan ignores the forecast
        read_at, cached = self._cache.get(site_id, (None, ()))
        if read_at is None or not read_at <= now < read_at + REFRESH:
            since = now - timedelta(days=cfg.arrival_forecast_days + 1)
            rows = await s.ended_sessions_since(list(station_ids), since)
            cached = tuple(PastSession(start, end, energy_wh) for start, end, energy_wh in rows
                           if end > start and energy_wh > 0)
            self._cache[site_id] = (now, cached)
        return cached
