"""The snapshot builder: database + control state -> the planner's SchedulingInput and what it is about.

Public: the bookings' what-if plans from the same snapshot the live plan uses. One database transaction
reads the site's stations, its active sessions and what their EVs and drivers stated; everything else is
in memory (control state, learned dwell cache). `plan_input.build_input` (pure) does the accounting.

What a session is planned with, first source that knows:
- departure: the latest stated one (2.0.1 NotifyEVChargingNeeds, or the driver through the API), the end of
  the driver's booking, a dwell learned from the driver's history (see dwell.py); else unknown (None);
- energy: the latest stated amount, the booking's energy; else the site default (see plan_input);
- phases: measured per-phase current or 2.0.1 numberOfPhasesUsed (on the transaction), the 2.0.1 needs'
  requested energy transfer; else the EVSE's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from csms.config import SiteConfig, SmartChargingConfig
from csms.domain.clock import Clock
from csms.domain.model import NEEDS_BEFORE_START, ChargingNeeds, Station, Transaction
from csms.scheduling import FixedDraw, SchedulingInput

from ..charging import StorePort
from ..plan_input import (
    BOOKED_PRIORITY, ActiveSession, EvseState, booked_deadline, build_input, charger_evses, evse_key, slot_floor,
)
from .control import ControlState
from .arrivals import ArrivalHistory
from .dwell import DwellHistory
from .margin import DepartureMargins
from .idle_share import IdleEvse, reserves
from .live import Live
from .ports import BookingPort, PricePort


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as the plan saw it (the plan view's per-session fields)."""

    session_key: str
    station_id: str
    evse_id: int
    transaction_id: str
    group: str | None
    energy_delivered_wh: float
    requested_energy_wh: float | None
    departure: datetime | None
    departure_source: str | None  # ev | driver | booking | learned; None: unknown
    ev_phases: int | None
    booked: bool = False  # the driver's booking is open: planned at BOOKED_PRIORITY

    @property
    def evse_key(self) -> str:
        return evse_key(self.station_id, self.evse_id)


@dataclass(frozen=True)
class Snapshot:
    site_id: str
    input: SchedulingInput
    sessions: Mapping[str, SessionInfo]  # every active session of the site, planned or not, by session key
    idle: tuple[IdleEvse, ...] = ()  # idle EVSEs whose TxDefault we set (after the plan, see idle_share)
    #: EVSEs the plan cannot command, and why: offline | refusing | unknown profile (counted as fixed draws).
    not_controlled: Mapping[str, str] = field(default_factory=dict)

    @functools.cached_property
    def idle_keys_of(self) -> dict[str, list[str]]:
        """Station -> its idle EVSEs' keys (each TxDefault sent looks its station up here)."""
        out: dict[str, list[str]] = {}
        for e in self.idle:
            out.setdefault(e.station_id, []).append(e.evse_key)
        return out

    @property
    def tx_ids(self) -> dict[str, str]:
        return {k: s.transaction_id for k, s in self.sessions.items()}

    def without_idle_draws(self) -> SchedulingInput:
        """The input minus the controlled idle EVSEs' own draws (what their shares are computed over)."""
        keys = {e.evse_key for e in self.idle if e.controlled}
        return _replace_fixed(self.input, tuple(f for f in self.input.fixed_draws if f.evse_key not in keys))


@dataclass(frozen=True, slots=True)
class StatedNeeds:
    energy_wh: float | None = None
    departure: datetime | None = None
    departure_source: str | None = None
    ev_max_current_a: float | None = None
    ev_phases: int | None = None


def merge_needs(needs: Sequence[ChargingNeeds]) -> StatedNeeds:
    """Field by field, the latest record that states it (oldest first in): a driver who only sets a
    departure keeps the energy and current limits the EV stated."""
    out = StatedNeeds()
    for n in needs:
        out = StatedNeeds(
            energy_wh=n.energy_amount_wh if n.energy_amount_wh is not None else out.energy_wh,
            departure=n.departure_time or out.departure,
            departure_source=n.source if n.departure_time is not None else out.departure_source,
            ev_max_current_a=n.ev_max_current_a if n.ev_max_current_a is not None else out.ev_max_current_a,
            ev_phases=n.ev_phases or out.ev_phases,
        )
    return out


class SnapshotBuilder:
    def __init__(self, live: Live, store: StorePort, clock: Clock, state: ControlState, *,
                 prices: PricePort | None = None, bookings: BookingPort | None = None,
                 dwell: DwellHistory | None = None, arrivals: ArrivalHistory | None = None,
                 margins: DepartureMargins | None = None) -> None:
        self.live = live
        self.store = store
        self.clock = clock
        self.state = state
        self.prices = prices
        self.bookings = bookings
        self.dwell = dwell or DwellHistory()
        self.arrivals = arrivals or ArrivalHistory()
        self.margins = margins or DepartureMargins()
        #: Per site: (demand period, highest measured EV load in it, kW). Kept in memory: after a restart the
        #: floor starts again from what is measured, which only makes the plan shave more, never overload.
        self._peak_kw: dict[str, tuple[str, float]] = {}

    def period_peak_kw(self, site: SiteConfig, now: datetime, load_kw: float) -> float:
        """The highest EV load measured at ``site`` this calendar month (site time), including ``load_kw``
        now: the plan's peak term costs nothing below it (demand charges are per month)."""
        period = now.astimezone(ZoneInfo(site.timezone)).strftime("%Y-%m")
        seen_period, seen_kw = self._peak_kw.get(site.id, (period, 0.0))
        peak = max(load_kw, seen_kw if seen_period == period else 0.0)
        self._peak_kw[site.id] = (period, peak)
        return peak

    async def build(self, site: SiteConfig, external_limit_kw: float | None) -> Snapshot:
        now = self.clock.now()
        sc = self.live.sc.for_site(site)
        # The site's own rows only, and the needs of all its sessions in one read: per plan the cost follows
        # the site, not the fleet (issue 10: 10,000 chargers, a site of 1,000 EVSEs).
        async with self.store.session() as s:
            stations = await s.site_stations(site.id)
            groups = await s.groups()
            ids = {x.id for x in stations}
            txs = await s.site_active_transactions(site.id)
            stated = await self._stated(s, site.id, txs)
            learned = {t.key: await self.dwell.dwell_s(s, t.id_token, sc) for t in txs}
            history = await self.arrivals.sessions(s, site.id, ids, now, sc)
            margin_s = await self.margins.margin_s(s, site.id, ids, now, sc)
        evses = self._evses(site, stations, now)
        infos: dict[str, SessionInfo] = {}
        sessions: list[ActiveSession] = []
        for t in txs:
            info, active = self._session(t, stated[t.key], learned[t.key], groups, now, sc)
            infos[t.key] = info
            sessions.append(active)
        circuit_of = {ch: c.name for c in site.circuits for ch in c.chargers}
        slot_s = sc.slot_min * 60
        n_slots = max(1, round(sc.horizon_h * 3600 / slot_s))
        # Prices per slot from the grid boundary before now: slot t >= 1 starts exactly at one.
        prices = self.prices.prices_per_slot(site.id, slot_floor(now, slot_s), slot_s, n_slots) \
            if self.prices is not None else ()
        busy = {a.evse_key for a in sessions}
        idle = tuple(IdleEvse(e.evse_key, e.station_id, e.min_current_a, _max_a(e), e.accepted_limit_a is not None)
                     for e in evses if e.online and not e.uncontrolled and e.evse_key not in busy)

        floor_kw = self.period_peak_kw(site, now, sum(t.power_w or 0.0 for t in txs) / 1000.0)

        def plan_input(reserve: Mapping[str, float]) -> SchedulingInput:
            return build_input(site, evses, sessions, now, sc, circuit_of=circuit_of,
                               external_limit_kw=external_limit_kw, price_per_kwh=prices, idle_reserve_a=reserve,
                               peak_floor_kw=floor_kw, history=history, learned_margin_s=margin_s)

        inp = plan_input({})
        if sc.idle_reserve and any(e.controlled for e in idle):
            bare = Snapshot(site.id, inp, infos, idle).without_idle_draws()
            inp = plan_input(reserves(bare, idle, sc.default_profile_current_a))
        return Snapshot(site.id, inp, infos, idle, _not_controlled(evses, busy))

    @staticmethod
    async def _stated(s: Any, site_id: str, txs: list[Transaction]) -> dict[str, StatedNeeds]:
        """What was stated for each session: the needs of its EVSE since shortly before it started."""
        if not txs:
            return {}
        since = {t.key: t.started_at - NEEDS_BEFORE_START for t in txs}
        needs: dict[tuple[str, int], list[ChargingNeeds]] = {}
        for n in await s.site_charging_needs_since(site_id, min(since.values())):
            needs.setdefault((n.station_id, n.evse.evse_id), []).append(n)
        return {t.key: merge_needs([n for n in needs.get((t.station_id, t.evse.evse_id), ())
                                    if n.received_at >= since[t.key]]) for t in txs}

    def _evses(self, site: SiteConfig, stations: list[Station], now: datetime) -> list[EvseState]:
        evses: list[EvseState] = []
        for stn in stations:
            self.state.station_site[stn.id] = site.id
            c = self.live.charger(stn.id)
            for n, phases in charger_evses(c) if c else [(1, (1, 2, 3)[: stn.phases])]:
                k = evse_key(stn.id, n)
                ctl = self.state.evses.get(k)
                accepted = ctl.accepted if ctl else None
                evses.append(EvseState(
                    evse_key=k, station_id=stn.id, evse_id=n,
                    max_current_a=c.max_current_a if c else stn.max_current_a,
                    min_current_a=c.min_current_a if c else 6.0, phases=phases,
                    voltage_v=c.voltage_v if c else stn.voltage_v, online=stn.online,
                    accepted_limit_a=accepted.max_between(now, now + timedelta(days=1)) if accepted else None,
                    uncontrolled=self.state.uncontrolled(k, now),
                    external_limit_a=self.state.station_limit_a.get(k), ever_connected=stn.last_seen is not None,
                ))
        return evses

    def _session(self, t: Transaction, n: StatedNeeds, learned_s: float | None, groups: dict[str, float],
                 now: datetime, sc: SmartChargingConfig) -> tuple[SessionInfo, ActiveSession]:
        energy = n.energy_wh
        candidates = [(n.departure, n.departure_source)]
        booked = False
        if self.bookings is not None:
            b_energy, b_end = self.bookings.booking_for(t.station_id, t.id_token or "")
            energy = energy if energy is not None else b_energy
            candidates.append((b_end, "booking"))
            booked = b_end is not None
        if learned_s is not None:
            candidates.append((t.started_at + timedelta(seconds=learned_s), "learned"))
        # The first source that knows; one that has passed with the car still here knows nothing any more.
        departure, source = next(((d, src) for d, src in candidates if d is not None and d > now), (None, None))
        # A booking's end is a promise: its energy is planned in a margin before it (shown as the end itself).
        planned = booked_deadline(departure, now, sc.slot_min * 60, sc.booking_margin_min * 60) \
            if source == "booking" and departure is not None else departure
        k = evse_key(t.station_id, t.evse.evse_id)
        phases = t.ev_phases or n.ev_phases
        if phases:
            self.state.ev_phases[k] = phases
        self.state.caps_used[k] = self.state.ev_limit_a(k, None, now)
        active = ActiveSession(
            session_key=t.key, evse_key=k, started_at=t.started_at, energy_delivered_wh=t.energy_wh,
            requested_energy_wh=energy, departure=planned,
            ev_max_current_a=self.state.ev_limit_a(k, n.ev_max_current_a, now),
            priority=max(groups.get(t.group or "", 1.0) if t.group else 1.0, BOOKED_PRIORITY if booked else 0.0),
            ev_full=self.state.ev_full.get(k, False), ev_phases=phases,
        )
        info = SessionInfo(t.key, t.station_id, t.evse.evse_id, t.charger_tx_id, t.group, t.energy_wh, energy,
                           departure, source, phases, booked)
        return info, active


def _not_controlled(evses: list[EvseState], busy: set[str]) -> dict[str, str]:
    """Why an EVSE enters the plan as a fixed draw (the same cases as plan_input.build_input)."""
    out: dict[str, str] = {}
    for e in evses:
        if not e.online:
            out[e.evse_key] = "offline" if e.ever_connected else "never connected"
        elif e.uncontrolled:
            out[e.evse_key] = "refused or did not answer a profile"
        elif e.evse_key in busy and e.accepted_limit_a is None:
            out[e.evse_key] = "has not accepted a profile from us yet"
    return out


def _max_a(e: EvseState) -> float:
    return e.max_current_a if e.external_limit_a is None else min(e.max_current_a, e.external_limit_a)


def _replace_fixed(inp: SchedulingInput, fixed: tuple[FixedDraw, ...]) -> SchedulingInput:
    return replace(inp, fixed_draws=fixed)
