"""SmartChargingService: the facade that runs one site plan along the flow

    triggers -> snapshot (DB + control state) -> planning (worker process) -> idle shares -> delivery

and answers the API, MQTT and bookings (plan view, site limit override, public snapshot).

With `smart_charging.enabled: false` nothing is planned and no charging profile is ever sent; switching it
off by a config reload takes back the profiles already installed, switching it on takes control of the
connected chargers as if they had just connected.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from csms.config import Config
from csms.domain.clock import Clock
from csms.domain.errors import InvalidRequest
from csms.domain.ports import ChargerGateway
from csms.scheduling import Schedule, SchedulingInput, SolverOptions

from ..bus import EventBus
from ..charging import StorePort
from ..plan_input import charger_evses
from ..planner_process import PlannerProcesses
from ..solver_thread import ThreadPlanners
from .control import ControlState, evse_id_of, station_of
from .delivery import DEFAULT_TOLERANCE_A, Delivery
from .dwell import DwellHistory
from .idle_share import busy_station_bounds, on_ladder, shares, station_defaults
from .live import Live
from .overrides import SiteOverrides
from .planning import Planners, Planning, SiteState
from .ports import BookingPort, PlanListener, PricePort
from .snapshot import Snapshot, SnapshotBuilder
from .triggers import Triggers
from .views import plan_view

log = logging.getLogger("csms.smart")
#: Sites whose plans are snapshotted and solved at the same time, at least (one more than planner processes).
PLANS_AT_ONCE = 2


def make_planners(processes: int, warm_evses: int = 0, dormant_evses: int = 0) -> Planners:
    """`smart_charging.planner_processes`: that many worker processes, or 0 for the solver thread; each keeps
    at most `warm_evses` EVSEs' models hot and `dormant_evses` dormant (`smart_charging.planner_warm_evses`,
    `planner_dormant_evses`; 0: all)."""
    if processes > 0:
        return PlannerProcesses(processes, warm_evses, dormant_evses)
    return ThreadPlanners(warm_evses=warm_evses, dormant_evses=dormant_evses)


class SmartChargingService:
    def __init__(self, cfg: Config, store: StorePort, bus: EventBus, gateway: ChargerGateway, clock: Clock,
                 *, prices: PricePort | None = None, bookings: BookingPort | None = None,
                 listeners: Sequence[PlanListener] = (), overrides: SiteOverrides | None = None,
                 solver_options: SolverOptions | None = None, planners: Planners | None = None) -> None:
        self.live = Live(cfg)
        self.store = store
        self.gateway = gateway
        self.clock = clock
        self.listeners = list(listeners)
        options = solver_options or SolverOptions(time_limit_s=cfg.smart_charging.solver_time_limit_s)
        self.state = ControlState(self.live)
        dwell = DwellHistory()
        self.overrides = overrides or SiteOverrides()
        # Planners passed in belong to the caller (the app stops them after everything that plans); made here
        # from the config, they belong to this service and stop with it.
        self._own_planners = planners is None
        sc = cfg.smart_charging
        self.planning = Planning(options, planners or make_planners(sc.planner_processes, sc.planner_warm_evses,
                                                                  sc.planner_dormant_evses),
                                 self.overrides)
        self.snapshots = SnapshotBuilder(self.live, store, clock, self.state, prices=prices, bookings=bookings,
                                         dwell=dwell)
        #: Sites snapshotted and solved at once, at most (see replan).
        self._planning_slots = asyncio.Semaphore(max(PLANS_AT_ONCE, sc.planner_processes + 1))
        self.triggers = Triggers(self.live, store, clock, self.state, dwell, replan=self.replan,
                                 ready=self.station_ready)
        self.delivery = Delivery(self.live, gateway, clock, self.state,
                                 request=lambda site_id, debounce: self.triggers.request(site_id, debounce, "delivery"),
                                 retry_later=self.triggers.retry_later, request_after=self.triggers.request_after)
        self._unsubscribe = bus.subscribe(self.triggers.on_event)

    # --- what callers read ---------------------------------------------------------------------
    @property
    def cfg(self) -> Config:
        return self.live.cfg

    @property
    def sites(self) -> dict[str, SiteState]:
        return self.planning.sites

    @property
    def planners(self) -> Planners:
        return self.planning.planners

    async def what_if(self, site_id: str, inp: SchedulingInput) -> Schedule:
        """A one-shot plan of `inp` (bookings' admission), where the site's plans run."""
        return await self.planning.planners.what_if(site_id, inp)

    @property
    def solve_times_s(self) -> collections.deque[float]:
        return self.planning.solve_times_s

    def external_limit_kw(self, site_id: str) -> float | None:
        """The operator's or grid signal's cap on the site (services.site_limits.ExternalLimits)."""
        return self.overrides.external_limit_kw(site_id)

    def plan_view(self, site_id: str) -> dict[str, Any]:
        return plan_view(site_id, self.planning.sites.get(site_id))

    async def snapshot(self, site_id: str) -> Snapshot:
        """What the plan of `site_id` would start from now (the bookings' what-if plans from it)."""
        site = self.cfg.site(site_id)
        if site is None:
            raise InvalidRequest(f"unknown site {site_id!r}")
        return await self.snapshots.build(site, self.external_limit_kw(site_id))

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Starts planning once the planners run: the first plans (chargers that connect at once) must not
        wait for a worker to import the solver, nor time out on it."""
        if self.live.enabled:
            await self.planning.planners.ready_all()
        self.triggers.start()

    async def stop(self) -> None:
        self._unsubscribe()
        await self.triggers.stop()
        if self._own_planners:
            await self.planning.planners.shutdown()

    def reconfigure(self, cfg: Config) -> None:
        was = self.live.enabled
        self.live.cfg = cfg
        self.snapshots.dwell.forget()  # the quantile may have changed
        self.snapshots.arrivals.forget()  # and the forecast's look-back
        self.snapshots.margins.forget()  # and the learned departure margin's quantile
        if was and not cfg.smart_charging.enabled:
            self.triggers.spawn(self._switched_off(), "smart-charging-off")
        elif cfg.smart_charging.enabled and not was:
            self.triggers.spawn(self._switched_on(), "smart-charging-on")
        for site in cfg.sites:
            self.triggers.request(site.id, debounce=False, reason="reconfigure")

    def request(self, site_id: str, debounce: bool = True, reason: str = "external") -> None:
        self.triggers.request(site_id, debounce, reason)

    # --- commands ------------------------------------------------------------------------------
    async def set_site_limit(self, site_id: str, limit_kw: float | None) -> Schedule | None:
        """External grid signal (REST, MQTT): cap the site at `limit_kw` (None clears); re-plans now."""
        if not self.live.enabled:
            raise InvalidRequest("smart charging is disabled: a site limit cannot be enforced")
        self.overrides.set(site_id, limit_kw)
        self.state.retry_site(site_id, self.clock.now())
        log.info("site limit override site=%s limit_kw=%s", site_id, limit_kw)
        return await self.replan(site_id)

    async def station_ready(self, station_id: str) -> None:
        """A station connected (booted, or came back): it may hold any profile, so everything on it counts
        at its maximum until it accepts ours. The re-plan at once sends it a 0 A TxDefault (and probes its
        sessions), the next one its share of the site (see idle_share)."""
        if not self.live.enabled:
            return
        c = self.cfg.charger(station_id)
        evse_ids = [n for n, _ in charger_evses(c)] if c else [1]
        held = self.state.held(station_id, evse_ids)
        self.state.station_ready(station_id, evse_ids)
        site = self.state.station_site.get(station_id) or (c.site if c else None)
        secured = False
        if site is not None:
            self.delivery.note_ready(site)
            if self.gateway.is_connected(station_id):
                # Back to what it held (or 0 A) before its site plans: see Delivery.secure. Which EVSEs are in a
                # session: what we held tells, if we knew every EVSE's limit (a storm of reconnects then reads
                # nothing); otherwise the database (a new station, or after a restart, may run sessions under
                # profiles we never saw).
                if held.default_a is not None and held.complete:
                    busy = {evse_id_of(k): tx_id for k, (_, tx_id) in held.profiles.items()}
                else:
                    async with self.store.session() as s:
                        busy = {t.evse.evse_id: t.charger_tx_id for t in await s.active_transactions(station_id)}
                secured = await self.delivery.secure(station_id, evse_ids, held, busy)
        # Secured with what it held, it is where the plans before left it: the next plan can wait for the
        # debounce, which gathers a storm's reconnects into few plans; so can a new one (at 0 A) while its
        # site boots (its share waits for the boots to end anyway). A charger that connects alone gets its
        # share at once; one not secured counts at its maximum: plan now.
        booting = site is not None and self.delivery.booting_for_s(site) > 0
        self.triggers.request_station(station_id, debounce=secured and (held.default_a is not None or booting),
                                      look_up=True, reason="ready")

    async def replan(self, site_id: str) -> Schedule | None:
        site = self.cfg.site(site_id)
        if site is None or not self.live.enabled:
            return None
        st = self.planning.site(site_id)
        async with st.lock:
            await self.planning.wait_overrun(st)
            # Bounded across sites: in a boot storm every reconnect asks its site for a plan at once, and all
            # sites snapshotting together (database reads, Python on the loop) took the core from the
            # boots themselves. A site waiting here counts as planning, so its requests meanwhile join its
            # next plan: fewer, fuller plans. Delivery (chargers' answers) is outside the bound.
            async with self._planning_slots:
                snap = await self.snapshots.build(site, st.external_limit_kw)
                schedule = await self.planning.solve(st, snap.input, site.planning.solver_time_limit_s)
            if not self.live.enabled:
                return None  # switched off while it solved: send nothing
            planned = {p.evse_key: p.current_a for p in schedule.sessions}
            idle = shares(snap.without_idle_draws(), snap.idle, planned,
                          self.cfg.smart_charging.default_profile_current_a)
            st.last_schedule, st.last_snapshot = schedule, snap
            defaults = on_ladder(station_defaults(snap.idle, idle), snap.idle, self.state.tx_default_a)
            defaults.update(self._busy_default_decreases(snap, schedule))
            await self.delivery.deliver(snap, schedule, defaults)
            st.tx_defaults = {s: a for s in defaults if (a := self.state.tx_default_a.get(s)) is not None}
            if await self.delivery.probe(snap):
                self.triggers.request(site_id, debounce=False, reason="probed")  # now controllable: plan it properly
            self._publish(site_id)
            return schedule

    def _busy_default_decreases(self, snap: Snapshot, schedule: Schedule) -> dict[str, float]:
        """TxDefaults of fully busy stations that exceed what their sessions are planned (see
        `busy_station_bounds`): only decreases; an idle station gets its share back from the next plan."""
        busy: dict[str, list[tuple[float, ...]]] = {}
        for plan in schedule.sessions:
            info = snap.sessions.get(plan.session_key)
            if info is not None:
                busy.setdefault(info.station_id, []).append(plan.current_a)
        bounds = busy_station_bounds(busy, (e.station_id for e in snap.idle))
        return {s: b for s, b in bounds.items()
                if (old := self.state.tx_default_a.get(s)) is not None and b < old - DEFAULT_TOLERANCE_A}

    def _publish(self, site_id: str) -> None:
        listeners = [listener for listener in self.listeners if listener.wants_plans]
        if not listeners:
            return  # building the view for nobody was ~4 % of a boot ramp's CPU with smart charging on
        view = self.plan_view(site_id)
        now = self.clock.now()
        for listener in listeners:
            try:
                listener.site_plan(site_id, view, now)
            except Exception:  # noqa: BLE001 - a listener must never break planning
                log.exception("plan listener failed site=%s", site_id)

    async def _switched_off(self) -> None:
        async with contextlib.AsyncExitStack() as held:
            for site_id in sorted(self.planning.sites):  # a plan being delivered finishes first
                await held.enter_async_context(self.planning.sites[site_id].lock)
            stations = {*self.state.tx_default_a, *(station_of(k) for k in self.state.evses)}
            await self.delivery.release(sorted(stations))
        log.info("smart charging switched off: profiles taken back")

    async def _switched_on(self) -> None:
        async with self.store.session() as s:
            stations = await s.stations()
        for stn in stations:
            if self.gateway.is_connected(stn.id):
                await self.station_ready(stn.id)
