"""Triggers: domain events and time -> re-plan requests per site.

A site is re-planned when an EV arrives or leaves, its charging state or measured rate moves, a station
connects, drops or reports a limit, the site limit changes, and at every boundary of the slot grid.
Bursts (meter values, arrivals) are debounced into one plan; charging needs stated by the EV or the
driver, limit changes and the slot timer re-plan at once. Every wait is on the clock (`Clock.sleep`).

Coalescing: a site has at most one plan running and one request queued behind it. Every request that
arrives meanwhile - debounced or immediate - joins the queued one, which plans from a fresh snapshot once
the running plan (and its delivery) is done. A boot storm of a hundred chargers in a second thus costs a
handful of plans per site (about one per plan-and-deliver time), not one per charger.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from csms.domain.clock import Clock
from csms.domain.errors import StoreUnavailable
from csms.domain.events import (
    ChargingNeedsChanged,
    DomainEvent,
    ExternalLimitChanged,
    StationOnline,
    StationReady,
    StatusChanged,
    TransactionChanged,
)

from ..charging import StorePort
from ..plan_input import evse_key, slot_floor
from .control import ControlState
from .dwell import DwellHistory
from .live import Live

log = logging.getLogger("csms.smart")

#: A debounced re-plan waits at least this long in real time, even on an accelerated clock: a 1.6 charger
#: learns its transactionId from the StartTransaction answer, and our TxProfile must not overtake it.
MIN_REAL_DELAY_S = 0.05
#: The timer re-plans this many sites at once; more are spread over TIMER_SPREAD_S clock seconds (at most a tenth
#: of the slot or of replan_interval_s), one after another (see Triggers._staggered).
TIMER_TOGETHER_SITES = 10
TIMER_SPREAD_S = 30.0


class Triggers:
    def __init__(self, live: Live, store: StorePort, clock: Clock, state: ControlState, dwell: DwellHistory, *,
                 replan: Callable[[str], Awaitable[Any]], ready: Callable[[str], Awaitable[None]]) -> None:
        self.live = live
        self.store = store
        self.clock = clock
        self.state = state
        self.dwell = dwell
        self._replan = replan
        self._ready = ready
        self._pending: dict[str, asyncio.Task[Any]] = {}  # per site: a request not yet planning
        self._waiting: set[str] = set()  # sites whose pending request still waits out its debounce
        self._running: dict[str, asyncio.Task[Any]] = {}  # per site: the request planning now
        self._tasks: set[asyncio.Task[Any]] = set()  # every task: requests (also once planning), timer, retries
        self._retries: dict[str, asyncio.Task[Any]] = {}
        self._stopped = False
        #: Re-plan requests by what asked (event kind, timer, delivery, ...): which triggers cost plans
        #: (`/metrics` csms_replan_requests). Counted whether the request starts a plan or joins one.
        self.reasons: collections.Counter[str] = collections.Counter()

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.spawn(self._slot_timer(), "smart-charging-timer")

    async def stop(self) -> None:
        self._stopped = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def pending(self) -> list[asyncio.Task[Any]]:
        """Requests not yet planning (tests drain them)."""
        return [t for t in self._pending.values() if not t.done()]

    # --- requests --------------------------------------------------------------------------------
    def request(self, site_id: str, debounce: bool = True, reason: str = "other") -> None:
        """Ask for a re-plan of `site_id`; requests within the debounce window share one plan, and so do all
        requests made while the site's plan runs (see the module doc). An immediate request overtakes one
        still waiting out its debounce."""
        if self._stopped or self.live.cfg.site(site_id) is None or not self.live.enabled:
            return
        self.reasons[reason] += 1
        task = self._pending.get(site_id)
        if task is not None and not task.done():
            if debounce or site_id not in self._waiting:
                return
            task.cancel()
        self._pending[site_id] = self.spawn(self._debounced(site_id, debounce), f"replan-{site_id}")

    def request_station(self, station_id: str, debounce: bool = True, *, look_up: bool = False,
                        reason: str = "other") -> None:
        """Re-plan the station's site. `look_up`: its site as committed (the store's station directory; it may have moved, e.g. a
        charger registered Pending and then accepted into a site through the API)."""
        site = None if look_up else self.state.station_site.get(station_id)
        if site is None and not look_up:
            c = self.live.charger(station_id)
            site = c.site if c else None
        if site is None:
            self.spawn(self._request_station_looked_up(station_id, debounce, reason), f"site-of-{station_id}")
            return
        self.request(site, debounce, reason)

    def request_after(self, site_id: str, real_s: float) -> None:
        """An immediate re-plan of `site_id` after `real_s` real seconds (once per site at a time): held
        TxDefault rises, see Delivery._defaults. Real time: it waits for chargers, not for the plan's clock."""
        key = f"site:{site_id}"
        if key not in self._retries or self._retries[key].done():
            self._retries[key] = self.spawn(self._request_after(site_id, real_s), f"after-boots-{site_id}")

    async def _request_after(self, site_id: str, real_s: float) -> None:
        await asyncio.sleep(real_s)
        self.request(site_id, debounce=False, reason="defaults-held")

    def retry_later(self, station_id: str, seconds: float) -> None:
        """Re-plan the station's site once `seconds` of clock time have passed (a refused command)."""
        if station_id not in self._retries or self._retries[station_id].done():
            self._retries[station_id] = self.spawn(self._retry(station_id, seconds), f"retry-{station_id}")

    async def _debounced(self, site_id: str, debounce: bool) -> None:
        if debounce:
            self._waiting.add(site_id)
            try:
                await asyncio.gather(self.clock.sleep(self.live.sc.debounce_s), asyncio.sleep(MIN_REAL_DELAY_S))
            finally:
                self._waiting.discard(site_id)
        me = asyncio.current_task()
        # Queued behind the site's running plan: requests made until it ends join this one.
        while (running := self._running.get(site_id)) is not None and running is not me and not running.done():
            await asyncio.wait({running})
        self._pending.pop(site_id, None)
        assert me is not None
        self._running[site_id] = me
        try:
            await self._replan(site_id)
        except StoreUnavailable:  # the store logged the outage once; the next trigger or slot re-plans
            log.warning("re-plan skipped site=%s: database unavailable", site_id)
        except Exception:  # noqa: BLE001 - a failed plan is retried on the next trigger or slot
            log.exception("re-plan failed site=%s", site_id)
        finally:
            if self._running.get(site_id) is me:
                del self._running[site_id]

    async def _retry(self, station_id: str, seconds: float) -> None:
        await self.clock.sleep(seconds)
        self.request_station(station_id, debounce=False, reason="retry")

    async def _request_station_looked_up(self, station_id: str, debounce: bool, reason: str) -> None:
        # As committed, from memory where the store keeps its stations' access records (every connect asks)
        st = await self.store.station_access(station_id)
        if st is not None:
            self.state.station_site[station_id] = st.site_id
            self.request(st.site_id, debounce, reason)

    async def _slot_timer(self) -> None:
        """Re-plan every site at each boundary of the slot grid (slot 0 ends there, and the horizon moves) and
        at least every ``replan_interval_s`` in between (the plan's slot 0 is planned only that far)."""
        last: datetime | None = None
        while True:
            slot_s = self.live.slot_s
            now = self.clock.now() if last is None else max(self.clock.now(), last)
            boundary = slot_floor(now, slot_s) + timedelta(seconds=slot_s)
            boundary = min(boundary, now + timedelta(seconds=self.live.sc.replan_interval_s))
            await self.clock.sleep((boundary - self.clock.now()).total_seconds())
            last = boundary
            site_ids = [site.id for site in self.live.cfg.sites]
            if len(site_ids) <= TIMER_TOGETHER_SITES:
                for site_id in site_ids:
                    self.request(site_id, debounce=False, reason="timer")
            else:
                self.spawn(self._staggered(site_ids), "smart-charging-timer-staggered")

    async def _staggered(self, site_ids: list[str]) -> None:
        """The timer's re-plans of many sites, spread over TIMER_SPREAD_S of clock time: 91 sites planned at the
        same instant (snapshots, then deliveries) held the event loop for seconds every replan_interval_s. A
        site's last profiles stay in force meanwhile (they are absolute schedules over the horizon)."""
        spread_s = min(TIMER_SPREAD_S, 0.1 * self.live.slot_s, 0.1 * self.live.sc.replan_interval_s)
        gap_s = spread_s / len(site_ids)
        for i, site_id in enumerate(site_ids):
            if i:
                await self.clock.sleep(gap_s)
            self.request(site_id, debounce=False, reason="timer")

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- events ----------------------------------------------------------------------------------
    def on_event(self, ev: DomainEvent) -> None:
        """The bus subscriber. Never blocks: requests and station set-up run as tasks."""
        if not self.live.enabled:
            return
        match ev:
            case TransactionChanged(transaction=tx, started=started, ended=ended, at=at):
                if ended:
                    self.dwell.forget(tx.id_token)  # one more stay of this driver to learn from
                # A charger's clock may run ahead of ours: a sample stamped after a limit we saw accepted may
                # have been measured before the charger applied it (a false rate-feedback cap). Messages
                # arrive in order, so our clock at receipt orders them right; take the earlier of the two.
                if self.state.note_transaction(tx, started, ended, min(at, self.clock.now())):
                    self.request_station(tx.station_id, reason="transaction-start-end" if started or ended
                                         else "transaction-update")
            case StatusChanged(station_id=sid, evse=evse, charging_state=state, at=at) if evse is not None:
                if self.state.note_charging_state(evse_key(sid, evse.evse_id), state, min(at, self.clock.now())):
                    self.request_station(sid, reason="charging-state")
            case ChargingNeedsChanged(needs=n):
                # Stated by the EV or the driver: plan for it now, not after the debounce.
                self.state.note_needs(evse_key(n.station_id, n.evse.evse_id))
                self.request_station(n.station_id, debounce=False, reason="needs")
            case StationReady(station_id=sid):
                self.spawn(self._ready(sid), f"ready-{sid}")
            case StationOnline(station_id=sid):
                self.request_station(sid, reason="online")
            case ExternalLimitChanged(station_id=sid, evse=evse, limit=limit, unit=unit):
                self.state.set_station_limit(sid, evse.evse_id if evse else None, limit, unit)
                site = self.state.station_site.get(sid)
                if site is not None:
                    self.state.retry_site(site, self.clock.now())
                self.request_station(sid, debounce=False, reason="station-limit")
