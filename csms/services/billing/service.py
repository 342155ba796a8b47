"""Billing service: follows each session on the bus, tracks overstay, and invoices every transaction once.

    billing = BillingService(cfg, store, bus, clock)     # subscribes at once; events queue until start()
    await billing.start()                                # reloads open sessions, reconciles, starts tasks
    smart.price_fn = billing.prices_per_slot             # optimizer cost term
    billing.booking_end_fn = lambda tx: bookings.booking_end(tx.station_id, tx.id_token)
    cost = await billing.live_cost(tx)                   # 2.0.1 totalCost (the adapter asks; nobody else)

Events are handled in order by one worker task (a bus subscriber must not block). Timer work (overstay
phases, timeouts, site-load buckets, reconciliation) goes through the same queue, but at most one of each
kind is ever waiting: a timer that fires faster than the worker keeps up (an accelerated clock, a slow
store, many sessions) must not bury the chargers' events under thousands of ticks. That backlog is what
lost every invoice after 08:24 of the office scenario: the run ended with 2,800 items queued.

Everything billing needs to survive a restart is persisted per transaction (billing_sessions); what the
worker never saw (a crash with events queued, a store outage while handling one) is found again in the
store by the reconciliation pass (`reconcile.py`). The invoice is unique per transaction key, so replays,
repairs and restarts can never bill twice. Pricing is the pure `csms.billing` library (invoicer.py);
the pure tracking rules are in `state.py`. See docs/billing.md, "Service".
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from csms.billing import prices_per_slot as tariff_prices_per_slot
from csms.billing_config import BillingConfig, parse_billing
from csms.config import Config
from csms.domain.clock import Clock
from csms.domain.enums import ConnectorStatus
from csms.domain.errors import StoreUnavailable
from csms.domain.events import (
    ChargingNeedsChanged,
    DomainEvent,
    MeterSampled,
    OverstayChanged,
    StationChanged,
    StatusChanged,
    TransactionChanged,
)
from csms.domain.model import ChargingNeeds, Transaction
from csms.domain.store_ports import StorePort, StoreSession

from ..bus import EventBus
from ..site_limits import ExternalLimits, NoExternalLimits
from .invoicer import Invoicer
from .overstay import OverstayTracker, busy_intervals
from .reconcile import KINDS, Gap, Repair, gap, plan_repairs
from .reports import BillingQueries
from .site_load import SiteLoadMeter, StationInfo
from .state import SessionTrack

log = logging.getLogger("csms.billing")

BookingEndFn = Callable[[Transaction], datetime | None | Awaitable[datetime | None]]
#: Charging needs sent this long before the transaction started (ISO 15118 before authorisation) still count.
NEEDS_BEFORE_START = timedelta(minutes=10)
#: Ended transactions older than this are not looked for by reconciliation (a store's whole history
#: would be scanned otherwise); the unplug timeout plus a day, at least a week.
RECONCILE_LOOKBACK_MIN = timedelta(days=7)
COST_REFRESH = timedelta(seconds=60)  # clock time between recomputations of a live cost
COST_REFRESH_REAL_S = 1.0  # and real time, for accelerated clocks
#: First asks for a session's live cost priced on the message path at once, at most; more answer without
#: a figure (totalCost is optional) and are priced in the background for the next message.
LIVE_COST_INLINE = 2
STOP_DRAIN_S = 5.0  # real seconds a clean stop waits for queued events
RECONCILE_MIN_REAL_S = 2.0  # on an accelerated clock, real seconds between timer-driven passes
ENDED_COST_WAIT_S = 2.0  # real seconds the answer to an Ended event waits for the worker
TICK_YIELD_EVERY = 100  # open sessions a tick visits between letting the event loop run


@dataclass(frozen=True, slots=True)
class _Tick:
    now: datetime | None = None  # None (the timer): the clock when handled, however long it waited
    #: When the timer queued it. The site-load meter advances only that far: the events queued before the
    #: tick are older than that, those behind it newer; advancing to the clock's now while a backlog of
    #: meter values waits behind the tick would fold the backlog's hours into one bucket at the old power.
    queued_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Reconcile:
    forced: bool = False  # asked for (start, tests, API) rather than the timer


@dataclass(frozen=True, slots=True)
class _Barrier:
    """Resolved when the worker reaches it: everything queued before it has been handled."""

    reached: asyncio.Future[None]


class BillingService:
    def __init__(self, cfg: Config, store: StorePort, bus: EventBus, clock: Clock, *,
                 billing: BillingConfig | None = None, external_limits: ExternalLimits | None = None) -> None:
        self.cfg = cfg
        self.bc = billing or parse_billing(getattr(cfg, "billing", None))
        self.store = store
        self.bus = bus
        self.clock = clock
        #: The external cap on a site (operator, grid signal): utilisation is measured against the same
        #: limit the plan works with (services.site_limits).
        self.external_limits: ExternalLimits = external_limits or NoExternalLimits()
        self.infos = StationInfo(store)
        self.meter = SiteLoadMeter(cfg, store, clock, self.infos, self.bc.utilisation_bucket_s,
                                   self.external_limits)
        self.invoicer = Invoicer(cfg, self.bc, store, self.infos, self.meter)
        self.overstay = OverstayTracker(bus, self.bc.currency, self.bc.overstay_policy())
        self.queries = BillingQueries(store, self.bc)
        #: Set by the bookings service: the end of the booking a transaction belongs to.
        self.booking_end_fn: BookingEndFn | None = None
        self._tracks: dict[str, SessionTrack] = {}  # open (not invoiced) sessions
        self._txs: dict[str, Transaction] = {}
        self._by_evse: dict[tuple[str, int], str] = {}
        self._booking_end: dict[str, datetime | None] = {}
        self._cost_cache: dict[str, tuple[datetime, float, float]] = {}  # tx key -> (at, monotonic, cost)
        #: Open sessions whose live cost is re-priced in the background (see live_cost), and its task.
        self._to_refresh: dict[str, Transaction] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._pricing_inline = 0  # live costs being priced on the message path now
        self.live_cost_inline = LIVE_COST_INLINE
        #: What was last written for each open track (its persisted fields): see _save.
        self._saved: dict[str, dict[str, Any]] = {}
        self._queue: asyncio.Queue[DomainEvent | _Tick | _Reconcile | _Barrier] = asyncio.Queue()
        self._pending: set[type] = set()  # timer items waiting in the queue (at most one of each kind)
        self._tasks: list[asyncio.Task[Any]] = []
        #: Repairs made by reconciliation, by kind (docs/billing.md, "Exactly once"), and the last gap.
        self.repairs: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.gap = Gap(0, 0, None)
        self._suspects: set[tuple[str, str]] = set()  # (kind, tx key) found by the last pass
        self._waiting: set[str] = set()  # ended sessions waiting for their unplug at the last pass
        self._reconciled_real = 0.0
        self.invoices_created = 0
        #: The newest charging needs received per EVSE since `_needs_from` (from ChargingNeedsChanged, the only
        #: way needs are stored): a transaction start looks for needs in the store only when these may not
        #: know them (see _needs_for_new).
        self._needs_at: dict[tuple[str, int], datetime] = {}
        self._needs_from = clock.now()
        self._unsubscribe = bus.subscribe(self._on_event) if self.bc.enabled else (lambda: None)

    @property
    def policy(self) -> Any:
        return self.invoicer.policy

    @property
    def on_overstay(self) -> list[Callable[[OverstayChanged], None]]:
        """Called with every OverstayChanged (also published on the bus)."""
        return self.overstay.listeners

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if not self.bc.enabled:
            return
        await self._reload()
        await self._reconcile(self.clock.now(), at_start=True)
        self._tasks = [asyncio.create_task(self._worker(), name="billing-worker"),
                       asyncio.create_task(self._timer(_Tick, lambda: self.bc.tick_s), name="billing-timer"),
                       asyncio.create_task(self._timer(_Reconcile, lambda: self.bc.reconcile_interval_s),
                                           name="billing-reconcile")]
        self._enqueue_timer(_Tick)

    async def stop(self) -> None:
        self._unsubscribe()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresher
        self._to_refresh.clear()
        # A clean stop handles what is queued (bounded); whatever is left is found by the next start's
        # reconciliation, as after a crash.
        if self._tasks and not self._tasks[0].done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), STOP_DRAIN_S)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if self._queue.qsize():
            log.warning("billing stopped with %d events not handled (reconciled at next start)",
                        self._queue.qsize())

    def reconfigure(self, cfg: Config, billing: BillingConfig | None = None) -> None:
        """Config reload: new tariffs and policy apply to invoices finalised from now on."""
        self.cfg = cfg
        self.bc = billing or parse_billing(getattr(cfg, "billing", None))
        self.meter.cfg = cfg
        self.invoicer.configure(cfg, self.bc)
        self.overstay.policy = self.invoicer.policy
        self.overstay.currency = self.bc.currency
        self.queries.bc = self.bc
        self.infos.forget()

    async def drain(self) -> None:
        """Wait until every event published so far has been handled (tests, shutdown)."""
        await self._queue.join()

    async def tick(self, now: datetime | None = None) -> None:
        """Re-evaluate overstay phases and timeouts now (the timer does this every billing.tick_s)."""
        self._queue.put_nowait(_Tick(now or self.clock.now()))
        await self.drain()

    async def reconcile(self) -> None:
        """Run a reconciliation pass now (the timer does this every billing.reconcile_interval_s)."""
        self._queue.put_nowait(_Reconcile(forced=True))
        await self.drain()

    def _on_event(self, ev: DomainEvent) -> None:
        if isinstance(ev, TransactionChanged | StatusChanged | MeterSampled | ChargingNeedsChanged):
            self._queue.put_nowait(ev)
        elif isinstance(ev, StationChanged):
            self.infos.forget()  # an operator moved a station or changed its maximum: read it again

    def _enqueue_timer(self, kind: type) -> None:
        if kind in self._pending:
            return  # one is still waiting: a second would only repeat it
        self._pending.add(kind)
        self._queue.put_nowait(_Tick(queued_at=self.clock.now()) if kind is _Tick else kind())

    async def _timer(self, kind: type, interval_s: Callable[[], float]) -> None:
        while True:
            await self.clock.sleep(interval_s())
            self._enqueue_timer(kind)

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                self._pending.discard(type(item))
                await self._handle(item)
            except StoreUnavailable:  # the store logged the outage (once); one line, no traceback, per event
                log.warning("billing skipped %s: database unavailable (reconciliation repairs)", type(item).__name__)
            except Exception:  # noqa: BLE001 - one bad event must not stop billing (reconciliation repairs)
                log.exception("billing failed on %s", type(item).__name__)
            finally:
                self._queue.task_done()

    async def _handle(self, item: DomainEvent | _Tick | _Reconcile | _Barrier) -> None:
        match item:
            case TransactionChanged(transaction=tx, started=started, ended=ended, at=at):
                await self._on_tx(tx, ended, at, new=started)
            case StatusChanged(station_id=sid, evse=evse, status=status, charging_state=cs, at=at) if evse:
                freed = status is ConnectorStatus.AVAILABLE
                await self.meter.set_power(sid, evse.evse_id, 0.0 if freed else None, at)
                key = self._by_evse.get((sid, evse.evse_id))
                if key is not None and key in self._tracks:
                    track = self._tracks[key]
                    track.on_status(status, cs, at)
                    await self._after_change(track)
            case MeterSampled(station_id=sid, evse=evse, power_w=p, at=at) if evse and p is not None:
                await self.meter.set_power(sid, evse.evse_id, p, at)
            case ChargingNeedsChanged(needs=n):
                evse_key = (n.station_id, n.evse.evse_id)
                self._needs_at[evse_key] = max(n.received_at, self._needs_at.get(evse_key, n.received_at))
                key = self._by_evse.get((n.station_id, n.evse.evse_id))
                if key is not None and key in self._tracks:
                    _apply_needs(self._tracks[key], n)
                    await self._save(self._tracks[key])
            case _Tick(now=now, queued_at=queued_at):
                await self._on_tick(now or self.clock.now(), meter_to=queued_at)
            case _Reconcile(forced=forced):
                # On an accelerated clock (the scenarios: 300 clock-s is 0.17 real s at 1800x) a pass at most
                # every RECONCILE_MIN_REAL_S: it reads the store, and nothing is gained by doing it faster.
                fast = self.clock.speedup() > 1.0
                if forced or not fast or time.monotonic() - self._reconciled_real >= RECONCILE_MIN_REAL_S:
                    self._reconciled_real = time.monotonic()
                    await self._reconcile(self.clock.now())
            case _Barrier(reached=fut):
                if not fut.done():
                    fut.set_result(None)

    # --- session tracking -----------------------------------------------------------------------
    async def _on_tx(self, tx: Transaction, ended: bool, at: datetime, new: bool = False) -> None:
        track = await self._track(tx, new)
        await self.meter.set_power(tx.station_id, tx.evse.evse_id, 0.0 if ended else tx.power_w, at)
        if track is None:
            return  # already invoiced: a late or replayed message changes nothing
        if ended:  # its utilisation ends here (demand tiers): what the live cost saw is what it is billed
            await self.meter.cut(tx.station_id, at)
        self._txs[tx.key] = tx
        track.delivered_wh = tx.energy_wh
        track.occupied(at)
        if ended or tx.ended_at is not None:
            track.on_ended(tx.ended_at or at, tx.stop_reason)
        else:
            track.on_reading(tx.charging_state, tx.power_w, at, self.bc.charging_finished_power_w,
                             timedelta(seconds=self.bc.charging_finished_confirm_s))
        await self._refresh_booking_end(tx)
        await self._after_change(track)

    async def _track(self, tx: Transaction, new: bool = False) -> SessionTrack | None:
        """The open track of `tx`, loaded or created; None once the transaction is invoiced.

        `new`: the transaction was opened by the message that published it (TransactionChanged.started), so
        no billing session and no invoice of it can exist yet: created without reading either (issue 10,
        a boot ramp: half of the chargers start a transaction)."""
        track = self._tracks.get(tx.key)
        if track is not None:
            return track
        if new:
            track = await self._new_track(tx)
            self._open(track, tx)
            return track
        async with self.store.session() as s:
            row = await s.billing_session(tx.key)
            if row is None and await s.invoice(tx.key) is not None:
                return None
            info = await self.infos.get(tx.station_id, s)
            needs = await s.latest_charging_needs(tx.station_id, tx.evse.evse_id,
                                                  tx.started_at - NEEDS_BEFORE_START)
        if row is not None and row.finalised:
            return None
        track = SessionTrack.from_record(row) if row else SessionTrack.for_tx(tx, info.site_id if info else None)
        if needs is not None:
            _apply_needs(track, needs)
        self._open(track, tx)
        return track

    async def _new_track(self, tx: Transaction) -> SessionTrack:
        since = tx.started_at - NEEDS_BEFORE_START
        seen = self._needs_at.get((tx.station_id, tx.evse.evse_id))
        if since >= self._needs_from and (seen is None or seen < since):
            # Every need received since _needs_from passed through here: none for this EVSE in the window.
            info, needs = await self.infos.get(tx.station_id), None
        else:
            async with self.store.session() as s:
                info = await self.infos.get(tx.station_id, s)
                needs = await s.latest_charging_needs(tx.station_id, tx.evse.evse_id, since)
        track = SessionTrack.for_tx(tx, info.site_id if info else None)
        if needs is not None:
            _apply_needs(track, needs)
        return track

    def _open(self, track: SessionTrack, tx: Transaction | None) -> None:
        self._tracks[track.tx_key] = track
        if tx is not None:
            self._txs[track.tx_key] = tx
        current = self._tracks.get(self._by_evse.get((track.station_id, track.evse_id), ""))
        if current is None or current.started_at <= track.started_at:
            self._by_evse[(track.station_id, track.evse_id)] = track.tx_key

    async def _after_change(self, track: SessionTrack) -> None:
        now = self.clock.now()
        await self._save(track)
        if track.unplugged_at is not None and track.overstay_phase != "ok":
            self._overstay_ended(track, track.unplugged_at)
            await self._save(track)
        await self._maybe_finalise(track, now)

    async def _save(self, track: SessionTrack) -> None:
        # Through the charger path's group commit: on SQLite a write transaction of its own, once per
        # meter value, contended with it for the database's single write lock (issue 10).
        fields = track.to_fields()
        if _same_state(self._saved.get(track.tx_key), fields):
            return
        record = track.to_record(self.clock.now())
        await self.store.write(lambda s: s.save_billing_session(record))
        self._saved[track.tx_key] = fields

    async def _on_tick(self, now: datetime, meter_to: datetime | None = None) -> None:
        confirm = timedelta(seconds=self.bc.charging_finished_confirm_s)
        await self.meter.advance(min(now, meter_to) if meter_to is not None else now)
        if self.policy is not None and self.policy.only_when_busy:
            await self._refresh_busy(now)
        t0 = time.perf_counter()
        for n, track in enumerate(list(self._tracks.values()), 1):
            if n % TICK_YIELD_EVERY == 0:
                # Every open session is visited: at 5,000 sessions one uninterrupted pass held the event loop
                # (and every charger's answer) for a noticeable time every tick_s. Let the loop run between.
                await asyncio.sleep(0)
            before = (track.charging_finished_at, track.low_power_since)
            track.confirm_low_power(now, confirm)
            changed = (track.charging_finished_at, track.low_power_since) != before
            tx = self._txs.get(track.tx_key)
            if tx is not None:
                await self._refresh_booking_end(tx)
            changed |= self.overstay.update_phase(track, now, tx.group if tx else None,
                                                  self._booking_end.get(track.tx_key))
            if changed:
                await self._save(track)
            await self._maybe_finalise(track, now)
        took_s = time.perf_counter() - t0
        if took_s > 0.5:
            log.info("billing tick took %.2f s over %d open sessions", took_s, len(self._tracks))

    def _overstay_ended(self, track: SessionTrack, at: datetime) -> None:
        tx = self._txs.get(track.tx_key)
        self.overstay.ended(track, at, tx.group if tx else None, self._booking_end.get(track.tx_key))

    async def _refresh_booking_end(self, tx: Transaction) -> None:
        if self.booking_end_fn is None:
            return
        try:
            res = self.booking_end_fn(tx)
            end = await res if inspect.isawaitable(res) else res
            if end is not None:  # keep the last known end: a completed booking may no longer be listed
                self._booking_end[tx.key] = end  # type: ignore[assignment]
        except Exception:  # noqa: BLE001 - no booking information: the policy falls back
            log.exception("booking_end_fn failed tx=%s", tx.key)

    async def _refresh_busy(self, now: datetime) -> None:
        sites = {t.site_id for t in self._tracks.values() if t.site_id and t.unplugged_at is None}
        for site_id in sites:
            since = min(t.started_at for t in self._tracks.values() if t.site_id == site_id)
            async with self.store.session() as s:
                self.overstay.busy[site_id] = await busy_intervals(s, site_id, since, now, self.policy)

    # --- invoices -------------------------------------------------------------------------------
    async def _maybe_finalise(self, track: SessionTrack, now: datetime) -> None:
        due = track.finalisation(now, timedelta(hours=self.bc.finalize_after_h))
        if due is None:
            return
        session_end, reason = due
        tx = await self._tx(track.tx_key)
        if tx is None:
            return
        if track.overstay_phase != "ok":  # e.g. the unplug was only learnt at a restart's catch-up
            self._overstay_ended(track, session_end)
        await self._refresh_booking_end(tx)
        # The track is marked finalised only once the invoice is committed: a failed write leaves it
        # open, and the next event, tick or reconciliation tries again.
        _, created = await self.invoicer.finalise(tx, track, session_end, reason, now,
                                                  self._booking_end.get(tx.key))
        track.finalised = True
        self.invoices_created += created
        self._forget(track)

    def _forget(self, track: SessionTrack) -> None:
        self._tracks.pop(track.tx_key, None)
        self._txs.pop(track.tx_key, None)
        self._booking_end.pop(track.tx_key, None)
        self._cost_cache.pop(track.tx_key, None)
        self._to_refresh.pop(track.tx_key, None)
        self._saved.pop(track.tx_key, None)
        if self._by_evse.get((track.station_id, track.evse_id)) == track.tx_key:
            del self._by_evse[(track.station_id, track.evse_id)]

    async def _tx(self, key: str) -> Transaction | None:
        async with self.store.session() as s:
            tx = await s.transaction(key)
        if tx is not None:
            self._txs[key] = tx
        return tx or self._txs.get(key)

    # --- what the API and the other services call -----------------------------------------------
    async def live_cost(self, tx: Transaction) -> float | None:
        """Total incl. tax of the invoice `tx` would get if its session ended now (its invoice once
        invoiced): the 2.0.1 `totalCost`. None when billing is off or fails, or (rarely) when it is not
        known yet; never raises into the OCPP path. The answer to an Ended event is priced fresh, so that
        it equals the invoice. An open session's figure is answered from the cache and, when older than
        COST_REFRESH, refreshed in the background (one pricing at a time): pricing reads every sample of
        the session, and at 10,000 chargers the 2.0.1 sessions' re-pricings on the message path held
        dozens of database connections at once and starved the group commit (PostgreSQL steady p99 4.6 s
        with billing on, 50 ms off; issue 10)."""
        return await self._figure(tx, wait=False)

    async def cost_so_far(self, tx: Transaction) -> float | None:
        """The same figure for the sessions API: at most COST_REFRESH old, priced now if older."""
        return await self._figure(tx, wait=True)

    async def _figure(self, tx: Transaction, wait: bool) -> float | None:
        if not self.bc.enabled:
            return None
        try:
            return await self._live_cost(tx, wait)
        except Exception:  # noqa: BLE001 - a display figure must never break a charger's message or a listing
            log.exception("running cost failed tx=%s", tx.key)
            return None

    async def _live_cost(self, tx: Transaction, wait: bool) -> float | None:
        if tx.ended_at is not None:
            # The answer to an Ended event: let the worker apply what was queued before it (bounded), so
            # the figure is priced from the same track as the invoice, or is the invoice itself.
            await self._caught_up(ENDED_COST_WAIT_S)
            return await self._price(tx)
        cached = self._cost_cache.get(tx.key)
        if cached is not None:
            # Pricing reads every sample of the session: recomputing it on every meter value made each
            # message cost O(samples so far). A live estimate a minute old is good enough for a display.
            now, real = self.clock.now(), time.monotonic()
            fast = self.clock.speedup() > 1.0
            if now - cached[0] < COST_REFRESH or fast and real - cached[1] < COST_REFRESH_REAL_S:
                return cached[2]
            if not wait:
                self._refresh_soon(tx)
                return cached[2]
        elif not wait and self._pricing_inline >= self.live_cost_inline:
            self._refresh_soon(tx)  # many first asks at once (a restart, a storm): the next answer has it
            return None
        self._pricing_inline += 1
        try:
            return await self._price(tx)
        finally:
            self._pricing_inline -= 1

    async def _price(self, tx: Transaction) -> float | None:
        """Price `tx` as if it ended now and remember the figure (open sessions)."""
        track = self._tracks.get(tx.key)
        if track is None:
            total = await self.invoicer.stored_total(tx.key)
            if total is not None:
                return float(total)
            track = SessionTrack.for_tx(tx, await self.infos.site_of(tx.station_id))
        if tx.ended_at is not None and track.ended_at is None:
            track = _copy_ended(track, tx)
        now = self.clock.now()
        invoice = await self.invoicer.cost_as_if_ended(tx, track, now, self._booking_end.get(tx.key))
        value = float(invoice.total.amount)
        if tx.ended_at is None:
            self._cost_cache[tx.key] = (now, time.monotonic(), value)
            if len(self._cost_cache) > 10_000:
                self._cost_cache.pop(next(iter(self._cost_cache)))
        return value

    def _refresh_soon(self, tx: Transaction) -> None:
        """Queue `tx` for the background re-pricing (the newest transaction per key wins)."""
        self._to_refresh[tx.key] = tx
        if self._refresher is None and self.bc.enabled:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh(), name="billing-live-cost")

    async def live_costs_refreshed(self) -> None:
        """Wait until the background re-pricing has nothing left (tests)."""
        while self._refresher is not None:
            await asyncio.shield(self._refresher)

    async def _refresh(self) -> None:
        try:
            while self._to_refresh:
                key = next(iter(self._to_refresh))
                tx = self._to_refresh.pop(key)
                try:
                    await self._price(tx)
                except StoreUnavailable:
                    self._to_refresh.clear()  # an outage: asked again by the next message
                except Exception:  # noqa: BLE001 - one session's figure must not stop the others'
                    log.exception("running cost failed tx=%s", key)
                await asyncio.sleep(0)
        finally:
            self._refresher = None

    async def _caught_up(self, timeout_s: float) -> None:
        if not self._tasks or self._tasks[0].done():
            return
        reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Barrier(reached))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reached), timeout_s)

    def overstay_view(self, tx: Transaction) -> dict[str, Any] | None:
        """Live overstay of an open session: phase, minutes and fee so far (None without a policy)."""
        track = self._tracks.get(tx.key)
        if track is None:
            return None
        return self.overstay.view(track, self.clock.now(), tx.group, self._booking_end.get(tx.key))

    def prices_per_slot(self, site_id: str, start: datetime, slot_s: int, n: int) -> tuple[float, ...]:
        """Energy price per kWh (excl. tax) per slot for the optimizer: TOU only. Demand tiers are left
        out: the plan itself causes the utilisation, and the optimizer has its own peak term."""
        book = self.invoicer.book(site_id)
        return tuple(float(p) for p in tariff_prices_per_slot(book.default, start, slot_s, n))

    async def invoice_for(self, station_id: str, charger_tx_id: str) -> dict[str, Any] | None:
        return await self.queries.invoice_for(station_id, charger_tx_id)

    async def list_invoices(self, **filters: Any) -> list[dict[str, Any]]:
        return await self.queries.list_invoices(**filters)

    async def revenue(self, since: datetime | None, until: datetime | None, site_id: str | None = None
                      ) -> dict[str, Any]:
        return await self.queries.revenue(since, until, site_id)

    def tariffs_view(self) -> dict[str, Any]:
        return self.queries.tariffs_view()

    def status(self) -> dict[str, Any]:
        """Exactly-once bookkeeping (API and /metrics): open sessions, what is not invoiced yet as of the
        last reconciliation, repairs made, events waiting."""
        return {
            "open_sessions": len(self._tracks), "uninvoiced_ended": self.gap.uninvoiced_ended,
            "overdue": self.gap.overdue, "oldest_uninvoiced_ended_at": self.gap.oldest_ended_at,
            "repairs": dict(self.repairs), "invoices_created": self.invoices_created,
            "queued_events": self._queue.qsize(),
        }

    # --- restart and reconciliation -------------------------------------------------------------
    async def _reload(self) -> None:
        """Reload the open sessions, catch up with the connector statuses stored meanwhile, and rebuild
        the site load from the running transactions."""
        now = self.clock.now()
        async with self.store.session() as s:
            rows = await s.open_billing_sessions()
            active = await s.active_transactions()
            for row in rows:
                self._open(SessionTrack.from_record(row), await s.transaction(row.tx_key))
            for track in self._tracks.values():
                await self._catch_up(s, track, now)
        for tx in active:
            await self.meter.set_power(tx.station_id, tx.evse.evse_id, tx.power_w or 0.0, now)
        for track in list(self._tracks.values()):
            await self._save(track)
        log.info("billing started open_sessions=%d", len(self._tracks))

    async def _reconcile(self, now: datetime, *, at_start: bool = False) -> None:
        """Compare the store with the tracked sessions and complete what billing missed (reconcile.py).

        A transaction is committed before its event is published, so a pass can see one whose event is on
        its way: a discrepancy is only repaired when the previous pass saw it too (at start, nothing is on
        its way, so at once). A repair thus comes at most two intervals after the miss."""
        timeout = timedelta(hours=self.bc.finalize_after_h)
        since = now - max(timeout + timedelta(days=1), RECONCILE_LOOKBACK_MIN)
        async with self.store.session() as s:
            ended = await s.ended_transactions_without_invoice(since)
            active = await s.active_transactions()
        found = {(r.kind, r.tx.key): r for r in plan_repairs(self._tracks, ended, active)}
        waiting = {k for k, t in self._tracks.items() if t.ended_at is not None and t.unplugged_at is None}
        due = found if at_start else {k: r for k, r in found.items() if k in self._suspects}
        check = waiting if at_start else waiting & self._waiting
        self._suspects, self._waiting = set(found), waiting
        for r in due.values():
            await self._repair(r, now)
        # Ended sessions waiting for their unplug: a lost StatusNotification is in the status history.
        for key in check:
            track = self._tracks.get(key)
            if track is None or track.unplugged_at is not None:
                continue
            async with self.store.session() as s:
                await self._catch_up(s, track, now)
            if track.unplugged_at is not None:
                self._count("missing_unplug", track.tx_key)
                await self._after_change(track)
        for track in list(self._tracks.values()):
            await self._maybe_finalise(track, now)
        async with self.store.session() as s:
            ended = await s.ended_transactions_without_invoice(since)
        # The bound: the unplug timeout, plus two reconciliation intervals and one tick to notice it.
        self.gap = gap(ended, now, timeout + timedelta(seconds=2 * self.bc.reconcile_interval_s + self.bc.tick_s))
        if self.gap.overdue:
            log.warning("billing: %d ended transactions without an invoice past the bound (oldest ended %s)",
                        self.gap.overdue, self.gap.oldest_ended_at)

    async def _repair(self, r: Repair, now: datetime) -> None:
        tx = r.tx
        if r.kind == "missing_end":
            track = self._tracks[tx.key]
            self._txs[tx.key] = tx
        else:
            opened = await self._track(tx)
            if opened is None:
                return  # invoiced meanwhile (an active transaction closed by the unplug timeout)
            track = opened
        async with self.store.session() as s:
            await self._catch_up(s, track, now)
        self._count(r.kind, tx.key)
        await self._after_change(track)

    def _count(self, kind: str, tx_key: str) -> None:
        self.repairs[kind] = self.repairs.get(kind, 0) + 1
        log.warning("billing repair kind=%s tx=%s", kind, tx_key)

    async def _catch_up(self, s: StoreSession, track: SessionTrack, now: datetime) -> None:
        """Bring a track up to what the store holds: the transaction's end and energy, the latest
        charging needs, and the connector statuses since the session started."""
        tx = self._txs.get(track.tx_key)
        if tx is not None:
            track.delivered_wh = tx.energy_wh
            if tx.ended_at is not None and track.ended_at is None:
                track.on_ended(tx.ended_at, tx.stop_reason)
        needs = await s.latest_charging_needs(track.station_id, track.evse_id,
                                              track.started_at - NEEDS_BEFORE_START)
        if needs is not None:
            _apply_needs(track, needs)
        # until: a day ahead, so a status stamped by a charger clock slightly ahead of ours is included.
        for r in await s.status_changes([track.station_id], track.started_at, now + timedelta(days=1)):
            if r.evse_id == track.evse_id and r.at >= track.started_at:
                track.on_status(r.status, r.charging_state, r.at)


def _same_state(saved: dict[str, Any] | None, fields: dict[str, Any]) -> bool:
    """Whether writing `fields` over what was `saved` would change nothing a restart or an invoice uses.
    A meter value of a running session moves only last_occupied_at, and that is read only once the
    session has ended (the end is max(ended_at, last_occupied_at), and ended_at is later than any
    reading before it). So a running session's track is written when something else changes, not on
    every meter value (issue 10: one UPDATE per meter value)."""
    if saved is None or fields["ended_at"] is not None:
        return saved == fields
    return all(v == saved.get(k) for k, v in fields.items() if k != "last_occupied_at")


def _copy_ended(track: SessionTrack, tx: Transaction) -> SessionTrack:
    """The track as it will be once the worker has applied the end of `tx` (the Ended answer is priced
    before the worker sees the event)."""
    t = copy.copy(track)
    t.on_ended(tx.ended_at or tx.started_at, tx.stop_reason)
    return t


def _apply_needs(track: SessionTrack, n: ChargingNeeds) -> None:
    if n.departure_time is not None:
        track.stated_departure = n.departure_time
    if n.energy_amount_wh is not None:
        track.energy_need_wh = n.energy_amount_wh
