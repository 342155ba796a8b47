"""Live site status: measured load against the limit and headroom, per site and circuit.

The limits are the planner's (services.site_limits): the limit schedule, the external override and the
per-phase current limit (as power: site voltage, three phases) all count, so the headroom shown by the API
and MQTT is what the plan works with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.config import Config
from csms.domain.clock import SystemClock
from csms.domain.errors import InvalidRequest
from csms.domain.store_ports import StorePort

from .site_limits import SiteLimits, external_limits_of


async def current_load(cfg: Config, store: StorePort, smart: Any, site_id: str, *,
                       now: datetime | None = None) -> dict[str, Any]:
    """Measured load (sum of the latest power of active sessions) against the limit in force at `now`
    (default: the smart-charging service's clock), per site and circuit."""
    site = cfg.site(site_id)
    if site is None:
        raise InvalidRequest(f"unknown site {site_id!r}")
    if now is None:
        now = (smart.clock if smart is not None else SystemClock()).now()
    async with store.session() as s:
        stations = {st.id: st for st in await s.stations() if st.site_id == site_id}
        txs = [t for t in await s.active_transactions() if t.station_id in stations]
    load_by_station: dict[str, float] = {}
    for t in txs:
        load_by_station[t.station_id] = load_by_station.get(t.station_id, 0.0) + (t.power_w or 0.0)
    load_w = sum(load_by_station.values())
    limits = SiteLimits.of(site, external_limits_of(smart))
    limit_kw = limits.limit_kw_at(now)
    limit_w = _w(limit_kw)
    circuits = []
    for c in limits.circuits:
        c_load = sum(load_by_station.get(ch, 0.0) for ch in c.stations)
        c_limit = _w(c.effective_limit_kw)
        circuits.append({"name": c.name, "parent": c.parent, "load_w": round(c_load, 1), "limit_w": c_limit,
                         "limit_a": c.limit_a, "max_current_a": c.limit_a,
                         "headroom_w": round(c_limit - c_load, 1) if c_limit is not None else None,
                         # the chargers under it (sub-circuits' too): a client can sum the plan per circuit
                         "stations": sorted(c.stations)})
    return {
        "site_id": site_id, "load_w": round(load_w, 1), "limit_w": limit_w,
        "headroom_w": round(limit_w - load_w, 1) if limit_w is not None else None,
        "limit_a": limits.limit_a, "binding_limit": limits.binding_at(now),
        "grid_limit_kw": site.grid_limit_kw, "grid_limit_a": site.grid_limit_a,
        "external_limit_kw": limits.external_limit_kw,
        "stations": len(stations), "online": sum(1 for st in stations.values() if st.online),
        "active_sessions": len(txs), "circuits": circuits,
    }


def _w(kw: float | None) -> float | None:
    return None if kw is None else round(kw * 1000.0, 1)
