"""Site load balancing, live: snapshot -> optimizer (worker thread) -> charging profiles, safely ordered.

Re-plans a site when an EV arrives or leaves, charging needs change, a station connects, drops or
reports a limit, the operator or an external signal changes the site limit, and every slot. Bursts are
debounced into one plan. The solver runs in a worker thread so OCPP traffic is never blocked; if it
errs or overruns, the deterministic fallback plan (same hard limits) is delivered instead.

What each charger may draw is tracked from what it *accepted* (see plan_input: fixed draws), and
profile changes go out in two phases (see limits.py), so the site stays within every limit while
commands are in flight, and when chargers reject profiles or go offline.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from csms.config import Config, SiteConfig
from csms.domain.clock import Clock
from csms.domain.enums import ChargingState, ProfilePurpose, RateUnit
from csms.domain.events import (
    ChargingNeedsChanged,
    DomainEvent,
    ExternalLimitChanged,
    StationOnline,
    StationReady,
    StatusChanged,
    TransactionChanged,
)
from csms.domain.model import ChargingProfile, SchedulePeriod
from csms.domain.ports import ChargerGateway
from csms.scheduling import Schedule, SchedulingInput, SitePlanner, SolverOptions, equal_share

from .bus import EventBus
from .charging import StorePort
from .solver_thread import SolverThread
from .limits import Piecewise, floor_to, never_above, pointwise, same_from
from .plan_input import ActiveSession, EvseState, build_input, charger_evses, evse_key

log = logging.getLogger("csms.smart")

TX_DEFAULT_PROFILE_ID = 1
TX_PROFILE_ID_BASE = 1000  # + evse id: one TxProfile per EVSE, replaced on each change
FEEDBACK_MARGIN_A = 2.0  # drawing this much below the limit counts as "cannot take more"
RETRY_S = 60.0  # a charger that refused a profile is retried after this long (clock seconds)


@dataclass
class EvseControl:
    """What we know a charger EVSE accepted, and what is in flight."""

    accepted: Piecewise | None = None  # None: never accepted anything from us -> may draw its max
    uncontrolled: bool = False  # last command rejected / unanswered ...
    retry_at: datetime | None = None  # ... until then (clock time); then we try to control it again
    default_accepted: bool = False  # it accepted our TxDefaultProfile on this connection
    accepted_at: datetime | None = None  # when `accepted` took effect
    tx_id: str | None = None  # the transaction the accepted TxProfile belongs to


@dataclass
class SiteState:
    planner: SitePlanner
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: asyncio.Task[Any] | None = None
    solving: asyncio.Future[Any] | None = None  # a worker thread that overran its timeout
    external_limit_kw: float | None = None
    last_schedule: Schedule | None = None
    last_input: SchedulingInput | None = None
    session_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    plans: int = 0
    fallbacks: int = 0


class SmartChargingService:
    def __init__(self, cfg: Config, store: StorePort, bus: EventBus, gateway: ChargerGateway, clock: Clock,
                 *, solver_options: SolverOptions | None = None,
                 planner_factory: Callable[[SolverOptions], SitePlanner] = SitePlanner,
                 solver: SolverThread | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.gateway = gateway
        self.clock = clock
        sc = cfg.smart_charging
        self.options = solver_options or SolverOptions(time_limit_s=sc.solver_time_limit_s)
        self._planner_factory = planner_factory
        self.solver = solver or SolverThread()
        self.sites: dict[str, SiteState] = {}
        self.control: dict[str, EvseControl] = {}
        self.station_limit_a: dict[str, float] = {}  # from 2.0.1 NotifyChargingLimit, per EVSE key
        self.solve_times_s: collections.deque[float] = collections.deque(maxlen=10_000)  # for /metrics
        self.price_fn: Callable[[str, datetime, int, int], tuple[float, ...]] | None = None
        self.booking_fn: Callable[[str, str], tuple[float | None, datetime | None]] | None = None
        self.on_plan: list[Callable[[str, dict[str, Any]], None]] = []
        self._unsubscribe = bus.subscribe(self._on_event)
        self._timer: asyncio.Task[Any] | None = None
        self._stopped = False
        self._station_site: dict[str, str] = {}
        #: EVSEs whose EV stopped drawing while offered power (SuspendedEV): it wants nothing more until it
        #: draws again (Charging). SuspendedEVSE - paused by our own 0 A - does not change it, otherwise a
        #: full car would flip between "full" and "paused" and be re-planned on every message.
        self._ev_full: dict[str, bool] = {}
        #: Latest measured power per EVSE, with the time it was measured (rate feedback, see _ev_limit_a).
        self._measured: dict[str, tuple[datetime, float]] = {}
        self._caps_used: dict[str, float | None] = {}  # feedback cap per EVSE in the last snapshot
        # Recently ended sessions: a TxProfile for one of them that crossed its end is rightly refused.
        self._ended: collections.deque[str] = collections.deque(maxlen=1000)

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._timer = asyncio.create_task(self._tick_loop(), name="smart-charging-timer")

    async def stop(self) -> None:
        self._stopped = True
        self._unsubscribe()
        tasks = [t for t in [self._timer, *(s.pending for s in self.sites.values())] if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def reconfigure(self, cfg: Config) -> None:
        self.cfg = cfg
        for site_id in list(self.sites):
            self.request(site_id, debounce=False)

    def _site(self, site_id: str) -> SiteState:
        st = self.sites.get(site_id)
        if st is None:
            st = self.sites[site_id] = SiteState(self._planner_factory(self.options))
        return st

    async def _tick_loop(self) -> None:
        slot_real_s = self.cfg.smart_charging.slot_min * 60 / self.clock.speedup()
        while True:
            await asyncio.sleep(slot_real_s)
            for s in self.cfg.sites:
                self.request(s.id, debounce=False)

    # --- triggers -------------------------------------------------------------------------------
    def _on_event(self, ev: DomainEvent) -> None:
        match ev:
            case TransactionChanged(transaction=tx, started=started, ended=ended):
                key = evse_key(tx.station_id, tx.evse.evse_id)
                if ended:
                    ctl = self.control.get(key)
                    if ctl is not None and ctl.default_accepted:
                        # Whatever TxProfile it held died with the transaction, and a refusal of one that
                        # crossed the end means nothing: the TxDefault we know it holds applies again.
                        ctl.accepted, ctl.tx_id, ctl.uncontrolled = self._idle_profile(), None, False
                    self._ended.append(tx.key)
                if tx.power_w is not None and not ended:
                    self._measured[key] = (ev.at, tx.power_w)
                    if self._cap_moved(key):
                        self._request_station(tx.station_id)
                if started or ended:
                    self._ev_full.pop(key, None)
                    self._measured.pop(key, None)
                    self._caps_used.pop(key, None)
                    self._request_station(tx.station_id)
                elif self._note_charging_state(key, tx.charging_state):
                    self._request_station(tx.station_id)
            case StatusChanged(station_id=sid, evse=evse, charging_state=state) if evse is not None:
                if self._note_charging_state(evse_key(sid, evse.evse_id), state):
                    self._request_station(sid)
            case ChargingNeedsChanged(needs=n):
                self._request_station(n.station_id)
            case StationReady(station_id=sid):
                asyncio.ensure_future(self._on_ready(sid))
            case StationOnline(station_id=sid):
                self._request_station(sid)
            case ExternalLimitChanged(station_id=sid, evse=evse, limit=limit, unit=unit):
                self._station_limit(sid, evse.evse_id if evse else None, limit, unit)
                if sid in self._station_site:
                    self._retry_site(self._station_site[sid])
                self._request_station(sid)

    def _ev_limit_a(self, key: str, stated_a: float | None, now: datetime) -> float | None:
        """Rate feedback: an EV that drew well below what it was allowed, measured after that limit took
        effect, is planned at what it draws plus 1 A to ramp. Otherwise capacity given to a car that cannot
        take it (an 11 kW car on a 22 kW EVSE, a battery tapering near full) sits unused while others wait.
        The cap lifts as soon as the car draws near its limit again."""
        ctl = self.control.get(key)
        measured = self._measured.get(key)
        if ctl is None or ctl.accepted is None or ctl.accepted_at is None or measured is None:
            return stated_a
        at, power_w = measured
        allowed_a = ctl.accepted.at(now)
        wpa = self._watts_per_amp(key)
        if at <= ctl.accepted_at or allowed_a <= 0 or wpa <= 0:
            return stated_a
        drawn_a = power_w / wpa
        if drawn_a >= allowed_a - FEEDBACK_MARGIN_A:
            return stated_a
        c = self.cfg.charger(key.rsplit("#", 1)[0])
        cap = max(drawn_a + 1.0, c.min_current_a if c else 6.0)  # never below the minimum: that would stop it
        return cap if stated_a is None else min(stated_a, cap)

    def _cap_moved(self, key: str) -> bool:
        """Whether the rate-feedback cap of `key` moved by 1 A or more since the last plan used it."""
        cap = self._ev_limit_a(key, None, self.clock.now())
        used = self._caps_used.get(key)
        if cap is None and used is None:
            return False
        return cap is None or used is None or abs(cap - used) >= 1.0

    def _watts_per_amp(self, key: str) -> float:
        station_id = key.rsplit("#", 1)[0]
        c = self.cfg.charger(station_id)
        return (c.voltage_v * c.phases) if c else 230.0 * 3

    def _note_charging_state(self, key: str, state: ChargingState | None) -> bool:
        """Track whether the EV on `key` is full; True if that changed (worth a re-plan)."""
        if state is ChargingState.SUSPENDED_EV:
            full = True
        elif state is ChargingState.CHARGING:
            full = False
        else:
            return False
        changed = self._ev_full.get(key, False) != full
        self._ev_full[key] = full
        return changed

    def _request_station(self, station_id: str) -> None:
        site = self._station_site.get(station_id)
        if site is None:
            c = self.cfg.charger(station_id)
            site = c.site if c else None
        if site is None:
            asyncio.ensure_future(self._request_station_from_db(station_id))
            return
        self.request(site)

    async def _request_station_from_db(self, station_id: str) -> None:
        async with self.store.session() as s:
            st = await s.station(station_id)
        if st is not None:
            self._station_site[station_id] = st.site_id
            self.request(st.site_id)

    def request(self, site_id: str, debounce: bool = True) -> None:
        """Ask for a re-plan of `site_id`; events within the debounce window share one plan."""
        if self._stopped or self.cfg.site(site_id) is None or not self.cfg.smart_charging.enabled:
            return
        st = self._site(site_id)
        if st.pending is not None and not st.pending.done():
            return
        # At least 50 ms of real time even on an accelerated clock: a 1.6 charger learns its transactionId
        # from the StartTransaction answer, and our TxProfile must not overtake that answer.
        delay = max(self.cfg.smart_charging.debounce_s / self.clock.speedup(), 0.05) if debounce else 0.0
        st.pending = asyncio.create_task(self._debounced(site_id, delay), name=f"replan-{site_id}")

    async def _debounced(self, site_id: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        self._site(site_id).pending = None
        try:
            await self.replan(site_id)
        except Exception:  # noqa: BLE001 - a failed plan is retried on the next trigger or slot
            log.exception("re-plan failed site=%s", site_id)

    async def set_site_limit(self, site_id: str, limit_kw: float | None) -> Schedule | None:
        """External grid signal (REST, MQTT): cap the site at `limit_kw` (None clears); re-plans now."""
        self._site(site_id).external_limit_kw = limit_kw
        self._retry_site(site_id)
        log.info("site limit override site=%s limit_kw=%s", site_id, limit_kw)
        return await self.replan(site_id)

    def _retry_site(self, site_id: str) -> None:
        """A limit changed: try again at once to control EVSEs whose last command was refused or timed out.
        The plan's first phase only sends decreases, which are safe whatever they did with that command;
        waiting out the retry delay would leave them above the new limit."""
        for key, ctl in self.control.items():
            if ctl.uncontrolled and self._station_site.get(key.rsplit("#", 1)[0]) == site_id:
                ctl.retry_at = self.clock.now()

    def _station_limit(self, station_id: str, evse_id: int | None, limit: float | None,
                       unit: RateUnit | None) -> None:
        c = self.cfg.charger(station_id)
        wpa = (c.voltage_v * c.phases) if c else 230.0 * 3
        keys = [evse_key(station_id, evse_id)] if evse_id else [
            evse_key(station_id, n) for n in range(1, (c.evse_count if c else 1) + 1)]
        for k in keys:
            if limit is None:
                self.station_limit_a.pop(k, None)
            else:
                self.station_limit_a[k] = limit / wpa if unit is RateUnit.WATTS else limit

    def _idle_profile(self) -> Piecewise:
        now = self.clock.now()
        a = self.cfg.smart_charging.default_profile_current_a
        return Piecewise.constant(a, now - timedelta(days=1), now + timedelta(days=3650), a)

    async def _on_ready(self, station_id: str) -> None:
        """Send the conservative TxDefaultProfile, then re-plan the station's site."""
        limit_a = self.cfg.smart_charging.default_profile_current_a
        profile = ChargingProfile(
            profile_id=TX_DEFAULT_PROFILE_ID, purpose=ProfilePurpose.TX_DEFAULT, stack_level=0,
            unit=RateUnit.AMPS, periods=(SchedulePeriod(0, limit_a),),
        )
        res = await self.gateway.set_charging_profile(station_id, 0, profile)
        async with self.store.session() as s:
            busy = {t.evse.evse_id for t in await s.active_transactions(station_id)}
        c = self.cfg.charger(station_id)
        for n, _ in charger_evses(c) if c else [(1, ())]:
            ctl = self.control.setdefault(evse_key(station_id, n), EvseControl())
            if not res.accepted:
                ctl.uncontrolled, ctl.default_accepted = True, False
                ctl.retry_at = self.clock.now() + timedelta(seconds=RETRY_S)
            elif n in busy:
                ctl.default_accepted = True
                # A transaction runs (e.g. we restarted): the charger may hold a TxProfile we do not
                # know. It counts at its maximum until it accepts one of ours (see _probe).
                ctl.accepted, ctl.tx_id, ctl.uncontrolled = None, None, False
            else:
                ctl.accepted, ctl.tx_id, ctl.uncontrolled = self._idle_profile(), None, False
                ctl.default_accepted = True
        log.info("tx default profile station=%s limit_a=%s status=%s", station_id, limit_a, res.status)
        self._request_station(station_id)

    # --- planning -------------------------------------------------------------------------------
    async def replan(self, site_id: str) -> Schedule | None:
        site = self.cfg.site(site_id)
        if site is None:
            return None
        st = self._site(site_id)
        async with st.lock:
            if st.solving is not None and not st.solving.done():
                await asyncio.wait({st.solving})  # the planner is not thread-safe: let the overrun finish
            inp, meta, tx_ids = await self._snapshot(site)
            schedule = await self._solve(st, inp)
            st.last_schedule, st.last_input, st.session_meta = schedule, inp, meta
            st.plans += 1
            await self._deliver(site, inp, schedule, tx_ids)
            if await self._probe(inp, meta):
                self.request(site_id, debounce=False)  # now controllable: plan it properly
            view = self.plan_view(site_id)
            for fn in self.on_plan:
                fn(site_id, view)
            return schedule

    async def _solve(self, st: SiteState, inp: SchedulingInput) -> Schedule:
        timeout = self.options.time_limit_s + 2.0
        fut = self.solver.submit(st.planner.plan, inp)
        t0 = time.perf_counter()
        try:
            schedule = await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            st.solving = fut
            schedule = equal_share(inp, reason="timeout")
        except Exception as e:  # noqa: BLE001 - plan() only raises for invalid input; never leave a site unplanned
            log.exception("planner error")
            schedule = equal_share(inp, reason=f"{type(e).__name__}: {e}")
        self.solve_times_s.append(time.perf_counter() - t0)
        if schedule.status != "optimal":
            st.fallbacks += 1
            log.warning("fallback plan reason=%s", schedule.reason)
        return schedule

    async def _snapshot(self, site: SiteConfig) -> tuple[SchedulingInput, dict[str, dict[str, Any]], dict[str, str]]:
        now = self.clock.now()
        async with self.store.session() as s:
            stations = [x for x in await s.stations() if x.site_id == site.id]
            groups = await s.groups()
            txs = [t for t in await s.active_transactions() if any(t.station_id == x.id for x in stations)]
            needs = {t.key: await s.latest_charging_needs(t.station_id, t.evse.evse_id, t.started_at) for t in txs}
        circuit_of: dict[str, str | None] = {}
        for c in site.circuits:
            for ch in c.chargers:
                circuit_of[ch] = c.name
        evses: list[EvseState] = []
        for stn in stations:
            self._station_site[stn.id] = site.id
            c = self.cfg.charger(stn.id)
            layout = charger_evses(c) if c else [(1, (1, 2, 3)[: stn.phases])]
            for n, phases in layout:
                k = evse_key(stn.id, n)
                ctl = self.control.get(k, EvseControl())
                accepted = ctl.accepted
                evses.append(EvseState(
                    evse_key=k, station_id=stn.id, evse_id=n,
                    max_current_a=c.max_current_a if c else stn.max_current_a,
                    min_current_a=c.min_current_a if c else 6.0, phases=phases,
                    voltage_v=c.voltage_v if c else stn.voltage_v, online=stn.online,
                    accepted_limit_a=accepted.max_between(now, now + timedelta(days=1)) if accepted else None,
                    uncontrolled=ctl.uncontrolled and (ctl.retry_at is None or now < ctl.retry_at),
                    external_limit_a=self.station_limit_a.get(k), ever_connected=stn.last_seen is not None,
                ))
        sessions: list[ActiveSession] = []
        meta: dict[str, dict[str, Any]] = {}
        tx_ids: dict[str, str] = {}
        for t in txs:
            n = needs.get(t.key)
            energy = n.energy_amount_wh if n else None
            departure = n.departure_time if n else None
            if self.booking_fn is not None:
                b_energy, b_end = self.booking_fn(t.station_id, t.id_token or "")
                energy = energy if energy is not None else b_energy
                departure = departure or b_end
            k = evse_key(t.station_id, t.evse.evse_id)
            self._caps_used[k] = self._ev_limit_a(k, None, now)
            sessions.append(ActiveSession(
                session_key=t.key, evse_key=k, started_at=t.started_at, energy_delivered_wh=t.energy_wh,
                requested_energy_wh=energy, departure=departure,
                ev_max_current_a=self._ev_limit_a(k, n.ev_max_current_a if n else None, now),
                priority=groups.get(t.group or "", 1.0) if t.group else 1.0,
                ev_full=self._ev_full.get(k, False),
            ))
            tx_ids[t.key] = t.charger_tx_id
            meta[t.key] = {"station_id": t.station_id, "evse_id": t.evse.evse_id, "transaction_id": t.charger_tx_id,
                           "group": t.group, "energy_delivered_wh": t.energy_wh, "departure": departure,
                           "requested_energy_wh": energy}
        slot_s = self.cfg.smart_charging.slot_min * 60
        n_slots = max(1, round(self.cfg.smart_charging.horizon_h * 3600 / slot_s))
        prices = self.price_fn(site.id, now, slot_s, n_slots) if self.price_fn else ()
        inp = build_input(site, evses, sessions, now, self.cfg.smart_charging, circuit_of=circuit_of,
                          external_limit_kw=self._site(site.id).external_limit_kw, price_per_kwh=prices,
                          idle_default_a=self.cfg.smart_charging.default_profile_current_a)
        return inp, meta, tx_ids

    # --- delivery -------------------------------------------------------------------------------
    async def _deliver(self, site: SiteConfig, inp: SchedulingInput, schedule: Schedule,
                       tx_ids: dict[str, str]) -> None:
        now = inp.start
        # Compare profiles only up to two slots before the horizon ends: differences beyond it are the
        # horizon rolling forward, and the plan is re-sent well before they matter.
        until = now + timedelta(seconds=max(1, inp.horizon_slots - 2) * inp.slot_s)
        idle_a = self.cfg.smart_charging.default_profile_current_a
        targets: dict[str, tuple[str, int, str, Piecewise]] = {}
        for plan in schedule.sessions:
            station_id, evse_id = plan.evse_key.rsplit("#", 1)
            values = [floor_to(v) for v in plan.current_a]
            targets[plan.evse_key] = (station_id, int(evse_id), tx_ids[plan.session_key],
                                      Piecewise.from_slots(now, inp.slot_s, values, after=idle_a))
        phase1: list[tuple[str, Piecewise]] = []
        phase2: list[tuple[str, Piecewise]] = []
        for key, (_, _, tx_id, new) in targets.items():
            ctl = self.control.setdefault(key, EvseControl())
            old = ctl.accepted if ctl.tx_id in (None, tx_id) else None
            if old is not None and same_from(old, new, now, until) and ctl.tx_id == tx_id:
                continue  # unchanged profiles are not resent
            if old is None:
                phase2.append((key, new))  # never accepted: its draw is already counted as its max
                continue
            low = pointwise(old, new, min)
            if not same_from(low, old, now, until):
                phase1.append((key, low))
            if not never_above(new, low, now, until):
                phase2.append((key, new))
            elif (key, low) not in phase1:
                phase1.append((key, new))
        ok1 = await self._send_all(targets, phase1)
        if not ok1:
            # A decrease did not land: increases planned on top of it would overload. Re-plan with that
            # charger counted at what it may still draw.
            self.request(site.id, debounce=False)
            return
        ok2 = await self._send_all(targets, phase2)
        if not ok2:
            self.request(site.id, debounce=True)

    async def _probe(self, inp: SchedulingInput, meta: dict[str, dict[str, Any]]) -> bool:
        """Gain control of EVSEs in a session that never accepted a profile from us, by sending a 0 A
        TxProfile. Only a decrease is safe whatever they hold now (we counted them at their maximum, but
        a command that timed out may have left them lower); the next plan raises them in its second
        phase. Returns True if any took it."""
        fixed = {f.evse_key for f in inp.fixed_draws}
        gained = False
        for m in meta.values():
            key = evse_key(m["station_id"], m["evse_id"])
            ctl = self.control.get(key, EvseControl())
            if key not in fixed or ctl.accepted is not None or ctl.uncontrolled:
                continue
            if not self.gateway.is_connected(m["station_id"]):
                continue
            p = Piecewise.from_slots(inp.start, inp.slot_s, [0.0] * inp.horizon_slots,
                                     after=self.cfg.smart_charging.default_profile_current_a)
            gained |= await self._send((m["station_id"], m["evse_id"], m["transaction_id"], p), p)
        return gained

    async def _send_all(self, targets: dict[str, tuple[str, int, str, Piecewise]],
                        items: list[tuple[str, Piecewise]]) -> bool:
        if not items:
            return True
        results = await asyncio.gather(*(self._send(targets[k], p) for k, p in items))
        return all(results)

    async def _send(self, target: tuple[str, int, str, Piecewise], p: Piecewise) -> bool:
        station_id, evse_id, tx_id, _ = target
        key = evse_key(station_id, evse_id)
        ctl = self.control.setdefault(key, EvseControl())
        profile = tx_profile(evse_id, tx_id, p, self.cfg.charger(station_id))
        res = await self.gateway.set_charging_profile(station_id, evse_id, profile)
        if res.accepted:
            ctl.accepted, ctl.uncontrolled, ctl.tx_id = p, False, tx_id
            ctl.accepted_at = self.clock.now()
            return True
        if f"{station_id}/{tx_id}" in self._ended:
            log.debug("profile for an ended session refused station=%s evse=%s", station_id, evse_id)
            return True  # nothing to control any more; the end event already reset this EVSE
        log.warning("profile not applied station=%s evse=%s status=%s detail=%s", station_id, evse_id,
                    res.status, res.detail)
        if str(res.status) in ("Timeout", "Error", "Offline") and ctl.accepted is not None:
            # It may have applied it: assume the higher of the two until we know.
            ctl.accepted = pointwise(ctl.accepted, p, max)
        ctl.uncontrolled = True
        ctl.retry_at = self.clock.now() + timedelta(seconds=RETRY_S)
        asyncio.get_running_loop().call_later(RETRY_S / self.clock.speedup() + 0.01, self._request_station,
                                              station_id)
        return False

    # --- views ----------------------------------------------------------------------------------
    def plan_view(self, site_id: str) -> dict[str, Any]:
        st = self.sites.get(site_id)
        if st is None or st.last_schedule is None or st.last_input is None:
            return {"site_id": site_id, "planned": False}
        sch, inp = st.last_schedule, st.last_input
        return {
            "site_id": site_id, "planned": True, "status": sch.status, "reason": sch.reason,
            "start": sch.start, "slot_s": sch.slot_s, "solve_time_ms": round(sch.solve_time_s * 1000, 2),
            "external_limit_kw": st.external_limit_kw,
            "forecast": [{"start": inp.slot_start(t), "load_w": round(sch.site_power_w[t], 1),
                          "limit_w": round(sch.site_limit_w[t], 1), "binding_limit": sch.binding_limit[t]}
                         for t in range(sch.horizon_slots)],
            "overloaded_limits": list(sch.overloaded_limits),
            "sessions": [{"session_key": p.session_key, **st.session_meta.get(p.session_key, {}),
                          "planned_energy_wh": round(p.energy_wh, 1), "energy_needed_wh": round(p.energy_needed_wh, 1),
                          "current_a": [round(x, 1) for x in p.current_a], "power_w": [round(x) for x in p.power_w]}
                         for p in sch.sessions],
        }


CLOCK_SKEW_S = 60  # the first period starts this much early: a charger whose clock lags must not see a gap


def tx_profile(evse_id: int, tx_id: str, p: Piecewise, charger: Any) -> ChargingProfile:
    """An absolute TxProfile over the horizon, so a charger that loses its connection keeps following it."""
    start = p.breaks[0] - timedelta(seconds=CLOCK_SKEW_S)
    phases = charger.phases if charger else None
    periods = tuple(SchedulePeriod(0 if i == 0 else int((b - start).total_seconds()), round(v, 1), phases)
                    for i, (b, v) in enumerate(zip(p.breaks, p.values)))
    return ChargingProfile(
        profile_id=TX_PROFILE_ID_BASE + evse_id, purpose=ProfilePurpose.TX, stack_level=1, unit=RateUnit.AMPS,
        periods=periods, start=start, duration_s=int((p.end - start).total_seconds()), charger_tx_id=tx_id,
    )

