"""A departure learned from the driver's history, for sessions whose EV, driver and booking state none.

The plan may shift a session's energy to cheaper or off-peak slots only before its departure, so a learned
departure must be one the driver rarely leaves before: a low quantile of the token's past session durations
(20 % of them were shorter with the default). Without enough history the departure stays unknown and the
plan charges the car as early as it can.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from csms.config import SmartChargingConfig

HISTORY = 50  # the latest sessions of a token that count
MIN_SESSION_S = 120.0  # shorter sessions are failed starts, not stays


def dwell_quantile_s(durations_s: Sequence[float], quantile: float, min_sessions: int) -> float | None:
    """The lower empirical `quantile` of the durations (seconds), None with fewer than `min_sessions`."""
    stays = sorted(d for d in durations_s if d >= MIN_SESSION_S)
    if len(stays) < min_sessions:
        return None
    return stays[math.floor(quantile * (len(stays) - 1))]


class DwellHistory:
    """Learned dwell per id token, cached until one of the token's sessions ends (or the config changes)."""

    def __init__(self) -> None:
        self._cache: dict[str, float | None] = {}

    def forget(self, id_token: str | None = None) -> None:
        if id_token is None:
            self._cache.clear()
        else:
            self._cache.pop(id_token, None)

    async def dwell_s(self, s: Any, id_token: str | None, cfg: SmartChargingConfig) -> float | None:
        """Learned dwell in seconds for `id_token`, reading its history through store session `s` once."""
        if not cfg.learned_dwell or not id_token:
            return None
        if id_token not in self._cache:
            durations = await s.session_durations_s(id_token, HISTORY)
            self._cache[id_token] = dwell_quantile_s(durations, cfg.learned_dwell_quantile,
                                                     cfg.learned_dwell_min_sessions)
        return self._cache[id_token]
