"""The plan of a site as the API, MQTT and the tests read it (JSON-able)."""

from __future__ import annotations

from typing import Any

from csms.scheduling import PerSlot

from .planning import SiteState
from .snapshot import SessionInfo


def plan_view(site_id: str, st: SiteState | None) -> dict[str, Any]:
    """Forecast, binding limits and every active session: the planned ones with their schedule, and those
    the plan cannot command (offline, refusing profiles, never accepted one) with the draw they are
    counted at (`controlled: false`, `counted_a` per phase, `counted_w`, and why in `not_controlled`)."""
    if st is None or st.last_schedule is None or st.last_snapshot is None:
        return {"site_id": site_id, "planned": False}
    sch, snap = st.last_schedule, st.last_snapshot
    inp = snap.input
    planned = {p.session_key for p in sch.sessions}
    fixed = {f.evse_key: f.current_a for f in inp.fixed_draws}
    wpa = {e.evse_key: e.watts_per_amp for e in inp.evses}
    sessions: list[dict[str, Any]] = [
        {**_info(snap.sessions.get(p.session_key), p.session_key), "controlled": True,
         "planned_energy_wh": round(p.energy_wh, 1), "energy_needed_wh": round(p.energy_needed_wh, 1),
         "current_a": [round(x, 1) for x in p.current_a], "power_w": [round(x) for x in p.power_w]}
        for p in sch.sessions
    ]
    for key, info in snap.sessions.items():
        if key in planned:
            continue
        amps = _first(fixed.get(info.evse_key, 0.0))
        sessions.append({**_info(info, key), "controlled": False,
                         "not_controlled": snap.not_controlled.get(info.evse_key, "not under our control"),
                         "counted_a": round(amps, 1), "counted_w": round(amps * wpa.get(info.evse_key, 0.0))})
    return {
        "site_id": site_id, "planned": True, "status": sch.status, "reason": sch.reason,
        "start": sch.start, "slot_s": sch.slot_s, "first_slot_s": round(sch.first_s, 3),
        "solve_time_ms": round(sch.solve_time_s * 1000, 2), "external_limit_kw": st.external_limit_kw,
        "forecast": [{"start": sch.slot_start(t), "load_w": round(sch.site_power_w[t], 1),
                      "limit_w": round(sch.site_limit_w[t], 1), "binding_limit": sch.binding_limit[t]}
                     for t in range(sch.horizon_slots)],
        "overloaded_limits": list(sch.overloaded_limits),
        "tx_defaults_a": dict(sorted(st.tx_defaults.items())),
        "sessions": sessions,
    }


def _info(info: SessionInfo | None, key: str) -> dict[str, Any]:
    if info is None:
        return {"session_key": key}
    return {"session_key": key, "station_id": info.station_id, "evse_id": info.evse_id,
            "transaction_id": info.transaction_id, "group": info.group,
            "energy_delivered_wh": info.energy_delivered_wh, "departure": info.departure,
            "departure_source": info.departure_source, "requested_energy_wh": info.requested_energy_wh,
            "ev_phases": info.ev_phases}


def _first(v: PerSlot) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    return float(v[0]) if v else 0.0
