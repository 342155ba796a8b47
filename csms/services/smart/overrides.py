"""The external cap on each site (REST `PUT /sites/{id}/limit`, MQTT `limit/set`), in kW.

Smart charging sets it and plans with it; billing measures utilisation against it
(`services.site_limits.ExternalLimits`). Its own object, so both can be built from it in either order.
"""

from __future__ import annotations


class SiteOverrides:
    def __init__(self) -> None:
        self._kw: dict[str, float] = {}

    def external_limit_kw(self, site_id: str) -> float | None:
        return self._kw.get(site_id)

    def set(self, site_id: str, limit_kw: float | None) -> None:
        if limit_kw is None:
            self._kw.pop(site_id, None)
        else:
            self._kw[site_id] = limit_kw
