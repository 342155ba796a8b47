"""Pure: turn a site's live state (config, EVSEs, sessions) into the optimizer's SchedulingInput.

Safety accounting lives here. At every instant each EVSE could draw the most its accepted profiles
allow, so an EVSE the optimizer does not control right now enters the plan as a *fixed draw*:
- offline, or its last profile was rejected: what it last accepted, or its maximum if it never did;
- online without a session: what the plan keeps free for it (a car may plug in at any moment), its
  maximum while its TxDefaultProfile is unknown; the TxDefault sent after the plan is its share of what
  the plan leaves, at least that reserve (smart/idle_share.py);
The optimizer subtracts fixed draws from every limit on their path, so the sum of what every charger
could draw stays within every limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from csms.config import ChargerConfig, SiteConfig, SmartChargingConfig
from csms.scheduling import (
    EvseSpec,
    FixedDraw,
    ObjectiveWeights,
    SchedulingInput,
    SessionSpec,
)

from csms.scheduling.forecast import PastSession, expected_arrivals
from .site_limits import SiteLimits, slot_edges


@dataclass(frozen=True, slots=True)
class EvseState:
    evse_key: str  # "<station>#<evse id>"
    station_id: str
    evse_id: int
    max_current_a: float
    min_current_a: float
    phases: tuple[int, ...]  # grid phases it is wired to (phase rotation applied)
    voltage_v: float
    online: bool
    #: The highest current (A per phase) the charger may draw under what it last accepted, None if it never
    #: accepted a profile from us.
    accepted_limit_a: float | None
    #: The last profile we sent was rejected or is unanswered: it is not under our control.
    uncontrolled: bool = False
    #: External cap from the station (2.0.1 NotifyChargingLimit), A per phase.
    external_limit_a: float | None = None
    #: Ever connected to this CSMS. A configured charger that never did (not installed yet, or retired)
    #: cannot be drawing anything; one that connected before and went offline may be charging offline.
    ever_connected: bool = True


@dataclass(frozen=True, slots=True)
class ActiveSession:
    session_key: str
    evse_key: str
    started_at: datetime
    energy_delivered_wh: float
    requested_energy_wh: float | None
    departure: datetime | None
    ev_max_current_a: float | None
    priority: float
    ev_full: bool = False  # the EV stopped drawing (SuspendedEV): it wants nothing more
    #: Phases the car draws on (measured per-phase current, 2.0.1 charging needs); None: unknown, the EVSE's.
    ev_phases: int | None = None


#: Priority of a booked car's session (the driver's booking is open): above every driver group below it, so a
#: booking's energy is never shared with walk-ins, whose needs are defaults or best effort. The bookings'
#: admission what-if ranks the same way (services.bookings), so what it guarantees is what the live plan gives.
BOOKED_PRIORITY = 100.0


def evse_key(station_id: str, evse_id: int) -> str:
    return f"{station_id}#{evse_id}"


def charger_evses(c: ChargerConfig) -> list[tuple[int, tuple[int, ...]]]:
    """(evse id, grid phases) for each EVSE of a configured charger."""
    phases = tuple(c.phase_rotation[: c.phases])
    return [(n, phases) for n in range(1, c.evse_count + 1)]


def slot_floor(t: datetime, slot_s: int) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=t.tzinfo)
    return t - timedelta(seconds=(t - epoch).total_seconds() % slot_s)


def weights_of(cfg: SmartChargingConfig) -> ObjectiveWeights:
    return ObjectiveWeights(
        delivered_per_kwh=cfg.delivered_per_kwh, early_per_kwh=cfg.early_per_kwh, cost_weight=cfg.cost_weight,
        peak_per_kw=cfg.peak_per_kw, shave_below_limit=cfg.shave_below_limit, unknown_slack_h=cfg.unknown_slack_h,
        fairness_per_kwh=cfg.fairness_per_kwh, fairness_min_fraction=cfg.fairness_min_fraction,
        share_slots=cfg.share_slots, share_premium=cfg.share_premium,
    )


def build_input(
    site: SiteConfig,
    evses: list[EvseState],
    sessions: list[ActiveSession],
    now: datetime,
    cfg: SmartChargingConfig,
    *,
    circuit_of: dict[str, str | None],
    external_limit_kw: float | None = None,
    price_per_kwh: tuple[float, ...] = (),
    idle_reserve_a: Mapping[str, float] | None = None,
    peak_floor_kw: float = 0.0,
    history: Sequence[PastSession] = (),
    learned_margin_s: float | None = None,
) -> SchedulingInput:
    """`circuit_of` maps a station id to the circuit it hangs from (None: directly under the site).
    `idle_reserve_a`: what the plan keeps free for each idle EVSE under our control (EVSE key -> A per
    phase; absent: nothing), see smart.idle_share. `peak_floor_kw`: the highest site load this demand period,
    under which the plan's peak term costs nothing. `history`: the site's recent sessions, from which the cars
    expected later are forecast (`smart_charging.arrival_forecast_days`; peak term only). `learned_margin_s`:
    the site's learned departure margin (smart.margin), None: the configured one.

    The plan starts `now`. Slots sit on a fixed grid (multiples of `slot_min` since the epoch, see
    `slot_floor`): slot 0 runs from now to the next boundary (`first_slot_s`), later slots are whole, so
    re-plans within a slot produce the same profile breakpoints and unchanged plans are recognised.
    """
    slot_s = cfg.slot_min * 60
    n = max(1, round(cfg.horizon_h * 3600 / slot_s))
    first_slot_s = (slot_floor(now, slot_s) + timedelta(seconds=slot_s) - now).total_seconds()
    # Limits, circuits and base load per slot: from the one owner of a site's limits (services.site_limits).
    limits = SiteLimits(site, external_limit_kw)
    edges = slot_edges(now, slot_s, n, first_slot_s)
    circuits = limits.circuit_specs([(e.evse_key, e.station_id) for e in evses], edges, circuit_of)
    base = limits.base_loads(edges)

    # The arrival forecast only shapes peak shaving above the site's own limit, so the planner ignores it on a
    # site with a limit unless it shaves below it (scheduling.expected.applies): not computed there.
    shaves = cfg.shave_below_limit or all(v is None for v in limits.limit_kw_by_slot(edges))
    by_evse = {s.evse_key: s for s in sessions}
    specs: list[EvseSpec] = []
    fixed: list[FixedDraw] = []
    charging: list[tuple[ActiveSession, EvseState, float]] = []    # (session, its EVSE, Wh still to deliver)
    for e in evses:
        max_a = e.max_current_a if e.external_limit_a is None else min(e.max_current_a, e.external_limit_a)
        specs.append(EvseSpec(e.evse_key, max_a, e.min_current_a, e.phases, e.voltage_v))
        s = by_evse.get(e.evse_key)
        if not e.online and not e.ever_connected:
            continue
        if not e.online or e.uncontrolled or (s is not None and e.accepted_limit_a is None):
            # Not under our control (offline, rejecting, or a session on an EVSE that never accepted a
            # profile from us - e.g. after a CSMS restart it may still hold an old TxProfile).
            fixed.append(FixedDraw(e.evse_key, e.accepted_limit_a if e.accepted_limit_a is not None
                                   else e.max_current_a))
            continue
        if s is None:
            # Idle: a car may plug in at any moment and draw what the TxDefaultProfile allows, or the
            # EVSE's maximum if it never accepted one. The plan keeps the reserve free for it; the TxDefault
            # sent after the plan is at least that (smart.idle_share), and lowered before anything rises.
            idle_a = (idle_reserve_a or {}).get(e.evse_key, 0.0) if e.accepted_limit_a is not None \
                else e.max_current_a
            if idle_a > 0:
                fixed.append(FixedDraw(e.evse_key, idle_a))
            continue
        need = 0.0 if s.ev_full else _remaining_need_wh(s, site, max_a * e.voltage_v * len(e.phases))
        charging.append((s, e, need))
    expected = expected_arrivals(history, now, edges[-1], ZoneInfo(site.timezone), cfg.arrival_forecast_days,
                                 cfg.arrival_forecast_min_days, car_power_w=_mean_evse_power_w(specs),
                                 quiet_day_fraction=cfg.arrival_forecast_quiet_fraction) if shaves and history else ()
    margin_s = margin_to_use(cfg, learned_margin_s, forecast=bool(expected))
    planned = [SessionSpec(
        session_key=s.session_key, evse_key=e.evse_key, energy_needed_wh=need,
        departure=_known_departure(s, now, cfg, margin_s), max_current_a=s.ev_max_current_a, priority=s.priority,
        ev_phases=min(s.ev_phases, len(e.phases)) if s.ev_phases else None,
    ) for s, e, need in charging]
    return SchedulingInput(
        start=now, circuits=tuple(circuits), evses=tuple(specs), sessions=tuple(planned), fixed_draws=tuple(fixed),
        base_loads=base, price_per_kwh=price_per_kwh, slot_s=slot_s, horizon_slots=n, weights=weights_of(cfg),
        first_slot_s=first_slot_s, replan_s=cfg.replan_interval_s, peak_floor_kw=peak_floor_kw,
        expected_arrivals=expected,
        # The reserve for cars nobody foresees: the planner uses it only without a forecast and where the site
        # shaves its peak (scheduling.network._reserve_kw).
        peak_reserve_frac=cfg.peak_reserve_without_forecast_pct / 100.0,
        peak_reserve_idle_frac=cfg.peak_reserve_idle_evse_pct / 100.0,
    )


def _mean_evse_power_w(specs: Sequence[EvseSpec]) -> float:
    """A car's power at the site for the arrival forecast: the mean EVSE's (the planner sizes the expected
    cars the same way, scheduling.expected)."""
    if not specs:
        return math.inf
    return sum(e.max_current_a * e.watts_per_amp for e in specs) / len(specs)


def margin_to_use(cfg: SmartChargingConfig, learned_margin_s: float | None, forecast: bool) -> float | None:
    """The learned departure margin the plan uses (None: the configured one). With
    ``departure_margin_learned: auto``, only where the plan has a forecast of the cars still to come (so only
    where the site shaves its peak). The configured margin's early finish is a hedge against cars nobody
    foresaw: under a binding limit it serves more drivers in full, and on a site without history it keeps the
    peak down; where the forecast leaves room for the cars to come, a margin the drivers do not need only
    raises the peak. Measured with departures kept (acnportal, Caltech and JPL; docs/acn_benchmark.md "The
    official weeks' Monday"), learned where a forecast exists: uncapped, 18 of 22 weeks lower (median
    1.100 -> 1.075 x the offline minimum) and 28-day months with history at 1.037-1.050 x (1.060-1.147 x
    before); learned under a cap too, 0.3-2.2 points fewer drivers served in full (7 of 137 cars 0.1-1.2 kWh
    short at 25 kW)."""
    if cfg.departure_margin_learned is False or (cfg.departure_margin_learned == "auto" and not forecast):
        return None
    return learned_margin_s


def _known_departure(s: ActiveSession, now: datetime, cfg: SmartChargingConfig,
                     learned_margin_s: float | None = None) -> datetime | None:
    """The departure the plan may rely on (``planning_departure``). None: unknown, planned risk-averse (as early
    as limits and fairness allow). A stated departure that has passed with the car still plugged in is no
    longer known either."""
    if s.departure is None or s.departure <= now:
        return None
    return planning_departure(s.departure, now, cfg.departure_margin_pct, cfg.departure_margin_max_min,
                              learned_margin_s)


def booked_deadline(booking_end: datetime, now: datetime, slot_s: int, margin_s: float) -> datetime | None:
    """When a booked car's guaranteed energy is planned to be in: the last slot-grid boundary at least
    ``margin_s`` before the booking's end. The plan is energy-optimal and so tight: planned to the end itself,
    the booked car took its energy in the window's last minutes (after walk-ins that leave earlier), and any
    delay there (a profile in flight, the next re-plan) left it short of what the booking guaranteed. Not
    planning into the last partial slot also keeps the departure slot's share (``departure_share``) away
    from it. None once that time has passed: the car is then planned as early as possible (still ranked as
    booked), which delivers what is left soonest."""
    deadline = slot_floor(booking_end - timedelta(seconds=margin_s), slot_s)
    return deadline if deadline > now else None


def planning_departure(stated: datetime, now: datetime, margin_pct: float, margin_max_min: float,
                       learned_margin_s: float | None = None) -> datetime:
    """A stated departure less a margin: ``margin_pct`` of the time left, at most ``margin_max_min``, and at
    most ``learned_margin_s`` when the site's history gave one (smart.margin). Drivers leave early (10 % of
    the ACN drivers left more than an hour before the departure they had entered), and energy planned in
    the margin would leave with them; but a margin the drivers do not need only costs flexibility."""
    left_s = max(0.0, (stated - now).total_seconds())
    margin_s = min(left_s * margin_pct / 100.0, margin_max_min * 60.0)
    if learned_margin_s is not None:
        margin_s = min(margin_s, max(0.0, learned_margin_s))
    return stated - timedelta(seconds=margin_s)


def _remaining_need_wh(s: ActiveSession, site: SiteConfig, evse_max_w: float) -> float:
    """What is still to deliver. A stated need (EV, driver, booking) is a cap. An unstated one is not: the
    site default is what the plan aims for, but the session keeps at least an hour at the EVSE's rate on
    top, so a car that wants more is not stopped while there is room; the EV stops itself when full."""
    if s.requested_energy_wh is not None:
        return max(0.0, s.requested_energy_wh - s.energy_delivered_wh)
    return max(site.default_energy_kwh * 1000.0 - s.energy_delivered_wh, evse_max_w * 1.0)
