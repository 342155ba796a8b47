"""Live site status: measured load against the limit and headroom, per site and circuit."""

from __future__ import annotations

from typing import Any

from csms.config import Config
from csms.domain.errors import InvalidRequest

from .charging import StorePort


async def current_load(cfg: Config, store: StorePort, smart: Any, site_id: str) -> dict[str, Any]:
    """Measured load (sum of the latest power of active sessions) against the limit, per site and circuit."""
    site = cfg.site(site_id)
    if site is None:
        raise InvalidRequest(f"unknown site {site_id!r}")
    async with store.session() as s:
        stations = {st.id: st for st in await s.stations() if st.site_id == site_id}
        txs = [t for t in await s.active_transactions() if t.station_id in stations]
    load_by_station: dict[str, float] = {}
    for t in txs:
        load_by_station[t.station_id] = load_by_station.get(t.station_id, 0.0) + (t.power_w or 0.0)
    load_w = sum(load_by_station.values())
    override = smart.sites[site_id].external_limit_kw if smart and site_id in smart.sites else None
    limits = [v for v in (site.grid_limit_kw, override) if v is not None]
    limit_w = min(limits) * 1000 if limits else None
    circuits = []
    for c in site.circuits:
        c_load = sum(load_by_station.get(ch, 0.0) for ch in c.chargers)
        c_limit = c.max_power_kw * 1000 if c.max_power_kw else None
        circuits.append({"name": c.name, "parent": c.parent or site_id, "load_w": round(c_load, 1),
                         "limit_w": c_limit, "max_current_a": c.max_current_a,
                         "headroom_w": round(c_limit - c_load, 1) if c_limit else None})
    return {
        "site_id": site_id, "load_w": round(load_w, 1), "limit_w": limit_w,
        "headroom_w": round(limit_w - load_w, 1) if limit_w is not None else None,
        "grid_limit_kw": site.grid_limit_kw, "grid_limit_a": site.grid_limit_a, "external_limit_kw": override,
        "stations": len(stations), "online": sum(1 for st in stations.values() if st.online),
        "active_sessions": len(txs), "circuits": circuits,
    }
