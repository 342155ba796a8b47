"""Billing service: follows each session on the bus, tracks overstay, and invoices every transaction once.

    billing = BillingService(cfg, store, bus, clock)     # subscribes at once; events queue until start()
    await billing.start()                                # reloads open sessions, catches up, starts tasks
    charging.running_cost = billing.cost_so_far          # 2.0.1 totalCost
    smart.price_fn = billing.prices_per_slot             # optimizer cost term
    billing.booking_end_fn = lambda tx: bookings.booking_end(tx.station_id, tx.id_token)

Events are handled in order by one worker task (a bus subscriber must not block). Everything billing
needs to survive a restart is persisted per transaction (billing_sessions): when the EV stopped drawing,
the unplug, the overstay phase already announced. The invoice is unique per transaction key, so replays
and restarts can never bill twice. Pricing itself is the pure `csms.billing` library; the pure tracking
rules are in `billing_state`. See docs/billing.md, "Service".
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from csms.billing import (
    Invoice,
    OverstayInputs,
    OverstayPhase,
    TariffBook,
    busy_intervals_from_occupancy,
    meter_session,
    overstay_state,
    price_session,
)
from csms.billing import prices_per_slot as tariff_prices_per_slot
from csms.billing_config import BillingConfig, parse_billing
from csms.config import Config
from csms.domain.clock import Clock
from csms.domain.enums import ChargingState, ConnectorStatus
from csms.domain.events import (
    ChargingNeedsChanged,
    DomainEvent,
    MeterSampled,
    OverstayChanged,
    StatusChanged,
    TransactionChanged,
)
from csms.domain.ids import transaction_key
from csms.domain.model import ChargingNeeds, Transaction

from .billing_reports import invoice_out, revenue_report, tariffs_view
from .billing_state import SessionTrack, SiteLoad, occupancy_spans, readings_from_samples, utilisation_spans
from .bus import EventBus
from .charging import StorePort
from .site_limits import ExternalLimits, NoExternalLimits, SiteLimits

log = logging.getLogger("csms.billing")

BookingEndFn = Callable[[Transaction], datetime | None | Awaitable[datetime | None]]
DEFAULT_MAX_POWER_W = 32 * 230.0 * 3
#: Charging needs sent this long before the transaction started (ISO 15118 before authorisation) still count.
NEEDS_BEFORE_START = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class _Tick:
    now: datetime


COST_REFRESH = timedelta(seconds=60)  # clock time between recomputations of a live cost
COST_REFRESH_REAL_S = 1.0  # and real time, for accelerated clocks


class BillingService:
    def __init__(self, cfg: Config, store: StorePort, bus: EventBus, clock: Clock, *,
                 billing: BillingConfig | None = None, external_limits: ExternalLimits | None = None) -> None:
        self.cfg = cfg
        #: The external cap on a site (operator, grid signal): utilisation is measured against the same
        #: limit the plan works with (services.site_limits).
        self.external_limits: ExternalLimits = external_limits or NoExternalLimits()
        self.bc = billing or parse_billing(getattr(cfg, "billing", None))
        self.store = store
        self.bus = bus
        self.clock = clock
        self.policy = self.bc.overstay_policy()
        #: Set by the bookings service: the end of the booking a transaction belongs to.
        self.booking_end_fn: BookingEndFn | None = None
        #: Called with every OverstayChanged (also published on the bus).
        self.on_overstay: list[Callable[[OverstayChanged], None]] = []
        self._tracks: dict[str, SessionTrack] = {}  # open (not invoiced) sessions
        self._txs: dict[str, Transaction] = {}
        self._by_evse: dict[tuple[str, int], str] = {}
        self._booking_end: dict[str, datetime | None] = {}
        self._station_info: dict[str, dict[str, Any]] = {}
        self._loads: dict[str, SiteLoad] = {}
        self._busy: dict[str, list[tuple[datetime, datetime]]] = {}
        self._cost_cache: dict[str, tuple[datetime, float, float]] = {}  # tx key -> (at, monotonic, cost)
        self._queue: asyncio.Queue[DomainEvent | _Tick] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self._unsubscribe = bus.subscribe(self._on_event) if self.bc.enabled else (lambda: None)

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if not self.bc.enabled:
            return
        await self._reload()
        self._tasks = [asyncio.create_task(self._worker(), name="billing-worker"),
                       asyncio.create_task(self._tick_loop(), name="billing-timer")]
        self._queue.put_nowait(_Tick(self.clock.now()))

    async def stop(self) -> None:
        self._unsubscribe()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    def reconfigure(self, cfg: Config, billing: BillingConfig | None = None) -> None:
        """Config reload: new tariffs and policy apply to invoices finalised from now on."""
        self.cfg = cfg
        self.bc = billing or parse_billing(getattr(cfg, "billing", None))
        self.policy = self.bc.overstay_policy()

    async def drain(self) -> None:
        """Wait until every event published so far has been handled (tests, shutdown)."""
        await self._queue.join()

    async def tick(self, now: datetime | None = None) -> None:
        """Re-evaluate overstay phases and timeouts now (the timer does this every billing.tick_s)."""
        self._queue.put_nowait(_Tick(now or self.clock.now()))
        await self.drain()

    def _on_event(self, ev: DomainEvent) -> None:
        if isinstance(ev, TransactionChanged | StatusChanged | MeterSampled | ChargingNeedsChanged):
            self._queue.put_nowait(ev)

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._handle(item)
            except Exception:  # noqa: BLE001 - one bad event must not stop billing
                log.exception("billing failed on %s", type(item).__name__)
            finally:
                self._queue.task_done()

    async def _tick_loop(self) -> None:
        while True:
            await self.clock.sleep(self.bc.tick_s)
            self._queue.put_nowait(_Tick(self.clock.now()))

    async def _handle(self, item: DomainEvent | _Tick) -> None:
        match item:
            case TransactionChanged(transaction=tx, ended=ended, at=at):
                await self._on_tx(tx, ended, at)
            case StatusChanged(station_id=sid, evse=evse, status=status, charging_state=cs, at=at) if evse:
                freed = status is ConnectorStatus.AVAILABLE
                await self._set_power(sid, evse.evse_id, 0.0 if freed else None, at)
                key = self._by_evse.get((sid, evse.evse_id))
                if key is not None and key in self._tracks:
                    track = self._tracks[key]
                    track.on_status(status, cs, at)
                    await self._after_change(track)
            case MeterSampled(station_id=sid, evse=evse, power_w=p, at=at) if evse and p is not None:
                await self._set_power(sid, evse.evse_id, p, at)
            case ChargingNeedsChanged(needs=n):
                key = self._by_evse.get((n.station_id, n.evse.evse_id))
                if key is not None and key in self._tracks:
                    _apply_needs(self._tracks[key], n)
                    await self._save(self._tracks[key])
            case _Tick(now=now):
                await self._on_tick(now)

    # --- session tracking -----------------------------------------------------------------------
    async def _on_tx(self, tx: Transaction, ended: bool, at: datetime) -> None:
        track = await self._track(tx)
        await self._set_power(tx.station_id, tx.evse.evse_id, 0.0 if ended else tx.power_w, at)
        if track is None:
            return  # already invoiced: a late or replayed message changes nothing
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

    async def _track(self, tx: Transaction) -> SessionTrack | None:
        """The open track of `tx`, loaded or created; None once the transaction is invoiced."""
        track = self._tracks.get(tx.key)
        if track is not None:
            return track
        async with self.store.session() as s:
            row = await s.billing_session(tx.key)
            if row is None and await s.invoice(tx.key) is not None:
                return None
            info = await self._info(s, tx.station_id)
            needs = await s.latest_charging_needs(tx.station_id, tx.evse.evse_id,
                                                  tx.started_at - NEEDS_BEFORE_START)
        if row is not None and row["finalised"]:
            return None
        track = SessionTrack.from_fields(row) if row else SessionTrack.for_tx(tx, info.get("site_id"))
        if needs is not None:
            _apply_needs(track, needs)
        self._open(track, tx)
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
            await self._announce(track, "ended", track.unplugged_at)
        await self._maybe_finalise(track, now)

    async def _save(self, track: SessionTrack) -> None:
        # Through the charger path's group commit: on SQLite a write transaction of its own, once per
        # meter value, contended with it for the database's single write lock (issue 10).
        fields = {**track.to_fields(), "updated_at": self.clock.now()}
        await self.store.write(lambda s: s.save_billing_session(fields))

    async def _on_tick(self, now: datetime) -> None:
        confirm = timedelta(seconds=self.bc.charging_finished_confirm_s)
        for site_id, load in self._loads.items():
            await self._persist_load(site_id, load.advance(now))
        if self.policy is not None and self.policy.only_when_busy:
            await self._refresh_busy(now)
        for track in list(self._tracks.values()):
            before = (track.charging_finished_at, track.low_power_since)
            track.confirm_low_power(now, confirm)
            if (track.charging_finished_at, track.low_power_since) != before:
                await self._save(track)
            tx = self._txs.get(track.tx_key)
            if tx is not None:
                await self._refresh_booking_end(tx)
            await self._update_phase(track, now)
            await self._maybe_finalise(track, now)

    # --- overstay phases ------------------------------------------------------------------------
    def _live_overstay(self, track: SessionTrack, now: datetime) -> Any:
        if self.policy is None:
            return None
        tx = self._txs.get(track.tx_key)
        at = min(now, track.unplugged_at) if track.unplugged_at else now
        busy = self._busy.get(track.site_id or "", []) if self.policy.only_when_busy else None
        return overstay_state(at, self.policy, group=tx.group if tx else None,
                              booking_end=self._booking_end.get(track.tx_key),
                              stated_departure=track.stated_departure,
                              charging_finished_at=track.charging_finished_at, busy_intervals=busy)

    async def _update_phase(self, track: SessionTrack, now: datetime) -> None:
        if self.policy is None or track.unplugged_at is not None or track.finalised:
            return
        state = self._live_overstay(track, now)
        phase = str(state.phase)
        if phase == track.overstay_phase:
            return
        if phase == OverstayPhase.WARNING and track.overstay_phase == "ok":
            await self._announce(track, "warning", now, state.minutes_so_far, state.fee_so_far.amount)
        elif phase == OverstayPhase.OVERSTAYING:
            await self._announce(track, "started", state.billable_from or now, state.minutes_so_far,
                                 state.fee_so_far.amount)
        elif phase == OverstayPhase.OK:
            await self._announce(track, "ended", now)
        track.overstay_phase = phase
        await self._save(track)

    async def _announce(self, track: SessionTrack, phase: str, at: datetime, minutes: int = 0,
                        fee: Decimal = Decimal(0)) -> None:
        if phase == "ended":
            state = self._live_overstay(track, at)
            if state is not None:
                minutes, fee = state.minutes_so_far, state.fee_so_far.amount
            track.overstay_phase = "ok"
        ev = OverstayChanged(track.tx_key, track.station_id, track.evse_id, phase, minutes, str(fee),
                             self.bc.currency, at)
        log.info("overstay %s tx=%s minutes=%d fee=%s", phase, track.tx_key, minutes, fee)
        self.bus.publish(ev)
        for fn in self.on_overstay:
            try:
                fn(ev)
            except Exception:  # noqa: BLE001 - a listener must not break billing
                log.exception("overstay listener failed")

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
            await self._announce(track, "ended", session_end)
        await self._refresh_booking_end(tx)
        invoice = await self.price(tx, track, session_end)
        track.finalised = True
        o = invoice.overstay
        async with self.store.session() as s:
            created = await s.add_invoice(dict(
                tx_key=tx.key, station_id=tx.station_id, charger_tx_id=tx.charger_tx_id,
                evse_id=tx.evse.evse_id,
                site_id=track.site_id, id_token=tx.id_token, group=tx.group, currency=invoice.currency,
                session_start=invoice.session_start, session_end=invoice.session_end, finalised_at=now,
                reason=reason, energy_wh=str(invoice.energy_wh), subtotal=str(invoice.subtotal.amount),
                tax=str(invoice.tax.amount), total=str(invoice.total.amount),
                overstay_minutes=o.minutes if o else 0, overstay_fee=str(o.fee.amount) if o else "0",
                lines=[line.to_dict() for line in invoice.lines],
                anomalies=[a.to_dict() for a in invoice.anomalies], data=invoice.to_dict()))
            await s.save_billing_session({**track.to_fields(), "updated_at": now})
        self._forget(track)
        if created:
            log.info("invoice tx=%s total=%s %s energy_wh=%s overstay_min=%s reason=%s anomalies=%d", tx.key,
                     invoice.total.amount, invoice.currency, invoice.energy_wh, o.minutes if o else 0, reason,
                     len(invoice.anomalies))

    def _forget(self, track: SessionTrack) -> None:
        self._tracks.pop(track.tx_key, None)
        self._txs.pop(track.tx_key, None)
        self._booking_end.pop(track.tx_key, None)
        if self._by_evse.get((track.station_id, track.evse_id)) == track.tx_key:
            del self._by_evse[(track.station_id, track.evse_id)]

    async def _tx(self, key: str) -> Transaction | None:
        async with self.store.session() as s:
            tx = await s.transaction(key)
        if tx is not None:
            self._txs[key] = tx
        return tx or self._txs.get(key)

    async def price(self, tx: Transaction, track: SessionTrack, session_end: datetime) -> Invoice:
        """Price `tx` as if its session ended at `session_end` (the final bill, or a live estimate)."""
        end = max(session_end, tx.started_at)
        site_id = track.site_id
        async with self.store.session() as s:
            samples = await s.samples(tx.key)
            info = await self._info(s, tx.station_id)
            site_id = site_id or info.get("site_id")
            rows = await s.site_load(site_id, tx.started_at, end) if site_id else []
            busy = None
            if self.policy is not None and self.policy.only_when_busy:
                busy = await self._busy_intervals(s, site_id, tx.started_at, end)
        metered = meter_session(readings_from_samples(samples, tx),
                                max_power_w=Decimal(str(info.get("max_power_w") or DEFAULT_MAX_POWER_W)),
                                tolerance=self.bc.meter_tolerance)
        overstay = None
        if self.policy is not None:
            overstay = OverstayInputs(self.policy, booking_end=self._booking_end.get(tx.key),
                                      stated_departure=track.stated_departure,
                                      charging_finished_at=track.charging_finished_at, busy_intervals=busy)
        return price_session(metered.intervals, self._book(site_id), tx.group, session_start=tx.started_at,
                             session_end=end, utilisation=self._utilisation(site_id, rows), overstay=overstay,
                             anomalies=metered.anomalies)

    # --- what the API and the other services call -----------------------------------------------
    async def cost_so_far(self, tx: Transaction) -> float | None:
        """Total so far incl. tax (the invoice total once invoiced); None when billing is off or fails.
        Used for 2.0.1 totalCost and the sessions API; never raises into the OCPP path."""
        if not self.bc.enabled:
            return None
        try:
            track = self._tracks.get(tx.key)
            if track is None:
                async with self.store.session() as s:
                    inv = await s.invoice(tx.key)
                    info = await self._info(s, tx.station_id)
                if inv is not None:
                    return float(Decimal(inv["total"]))
                track = SessionTrack.for_tx(tx, info.get("site_id"))
            end = self.clock.now()
            if track.unplugged_at is not None:
                end = min(end, track.unplugged_at)
            cached = self._cost_cache.get(tx.key)
            real = time.monotonic()
            fast = self.clock.speedup() > 1.0
            if cached is not None and (end - cached[0] < COST_REFRESH
                                       or fast and real - cached[1] < COST_REFRESH_REAL_S):
                return cached[2]
            # Pricing reads every sample of the session: recomputing it on every meter value made each
            # message cost O(samples so far). A live estimate a minute old is good enough for a display.
            invoice = await self.price(tx, track, end)
            value = float(invoice.total.amount)
            self._cost_cache[tx.key] = (end, real, value)
            if len(self._cost_cache) > 10_000:
                self._cost_cache.pop(next(iter(self._cost_cache)))
            return value
        except Exception:  # noqa: BLE001 - a display figure must never break a charger's message
            log.exception("running cost failed tx=%s", tx.key)
            return None

    def overstay_view(self, tx: Transaction) -> dict[str, Any] | None:
        """Live overstay of an open session: phase, minutes and fee so far (None without a policy)."""
        track = self._tracks.get(tx.key)
        if self.policy is None or track is None:
            return None
        st = self._live_overstay(track, self.clock.now())
        return {
            "phase": str(st.phase), "charging_finished_at": track.charging_finished_at,
            "allotted_end": st.allotted_end, "billable_from": st.billable_from, "minutes": st.minutes_so_far,
            "fee": str(st.fee_so_far.amount), "currency": st.fee_so_far.currency,
            "unplugged_at": track.unplugged_at,
        }

    def prices_per_slot(self, site_id: str, start: datetime, slot_s: int, n: int) -> tuple[float, ...]:
        """Energy price per kWh (excl. tax) per slot for the optimizer: TOU only. Demand tiers are left
        out: the plan itself causes the utilisation, and the optimizer has its own peak term."""
        book = self._book(site_id)
        return tuple(float(p) for p in tariff_prices_per_slot(book.default, start, slot_s, n))

    async def invoice_for(self, station_id: str, charger_tx_id: str) -> dict[str, Any] | None:
        async with self.store.session() as s:
            row = await s.invoice(transaction_key(station_id, charger_tx_id))
        return invoice_out(row) if row else None

    async def list_invoices(self, **filters: Any) -> list[dict[str, Any]]:
        async with self.store.session() as s:
            return [invoice_out(r) for r in await s.invoices(**filters)]

    async def revenue(self, since: datetime | None, until: datetime | None, site_id: str | None = None
                      ) -> dict[str, Any]:
        """Energy and revenue of the sessions that ended in [since, until), exact decimals as strings."""
        async with self.store.session() as s:
            rows = await s.invoices(since=since, until=until, site_id=site_id, limit=None)
        return revenue_report(rows, since, until, site_id, self.bc.currency)

    def tariffs_view(self) -> dict[str, Any]:
        """The configured tariffs (per group, effective values) and the overstay policy, readable."""
        return tariffs_view(self.bc)

    # --- site data ------------------------------------------------------------------------------
    def _book(self, site_id: str | None) -> TariffBook:
        site = self.cfg.site(site_id) if site_id else None
        return self.bc.tariff_book(site.timezone if site else "UTC")

    def _with_limits(self, site_id: str, rows: list[tuple[datetime, datetime, float]]
                     ) -> list[tuple[datetime, datetime, float, float | None]]:
        """Load rows cut where the site's limit changes, each piece with the limit in force (W): the
        planner's limit (services.site_limits), with the limit schedule and the external override."""
        site = self.cfg.site(site_id)
        if site is None:
            return [(a, b, w, None) for a, b, w in rows]
        limits = SiteLimits.of(site, self.external_limits)
        return [(x, y, w, None if kw is None else kw * 1000.0)
                for a, b, w in rows for x, y, kw in limits.limit_kw_spans(a, b)]

    def _utilisation(self, site_id: str | None, rows: list[dict[str, Any]]) -> list[Any]:
        """Stored buckets against the limit stored with them (the one in force then); the open bucket
        against the limit in force now."""
        if site_id is None:
            return []
        buckets = [(r["start"], r["end"], r["mean_power_w"], r["limit_w"]) for r in rows]
        load = self._loads.get(site_id)
        part = load.partial() if load else None
        if part is not None and (not buckets or part[0] >= buckets[-1][1]):
            buckets += self._with_limits(site_id, [part])
        return utilisation_spans(buckets)

    async def _info(self, s: Any, station_id: str) -> dict[str, Any]:
        info = self._station_info.get(station_id)
        if info is None:
            info = await s.station_billing_info(station_id) or {}
            if info:
                self._station_info[station_id] = info
        return info

    async def _set_power(self, station_id: str, evse_id: int, power_w: float | None, at: datetime) -> None:
        if power_w is None:
            return
        async with self.store.session() as s:
            site_id = (await self._info(s, station_id)).get("site_id")
        if site_id is None:
            return
        load = self._loads.setdefault(site_id, SiteLoad(self.bc.utilisation_bucket_s))
        now = self.clock.now()
        await self._persist_load(site_id, load.set_power((station_id, evse_id), power_w, min(at, now)))

    async def _persist_load(self, site_id: str, closed: list[tuple[datetime, datetime, float]]) -> None:
        if not closed:
            return
        async with self.store.session() as s:
            for start, end, mean, limit_w in self._with_limits(site_id, closed):
                await s.add_site_load(site_id, start, end, mean, limit_w)

    async def _busy_intervals(self, s: Any, site_id: str | None, since: datetime, until: datetime
                              ) -> list[tuple[datetime, datetime]]:
        if site_id is None or self.policy is None:
            return []
        stations = await s.station_ids_of_site(site_id)
        rows = await s.status_changes(stations, since, until)
        conns = [(c.station_id, c.evse.evse_id, c.evse.connector_id) for c in await s.connectors()
                 if c.station_id in set(stations)]
        spans = occupancy_spans(rows, conns, since, until)
        return busy_intervals_from_occupancy(spans, self.policy.busy_occupancy_threshold)

    async def _refresh_busy(self, now: datetime) -> None:
        sites = {t.site_id for t in self._tracks.values() if t.site_id and t.unplugged_at is None}
        for site_id in sites:
            since = min(t.started_at for t in self._tracks.values() if t.site_id == site_id)
            async with self.store.session() as s:
                self._busy[site_id] = await self._busy_intervals(s, site_id, since, now)

    # --- restart --------------------------------------------------------------------------------
    async def _reload(self) -> None:
        """Reload open sessions, and catch up with what happened while billing was not running: ended
        transactions without an invoice, and connector statuses not yet applied."""
        now = self.clock.now()
        since = now - timedelta(hours=self.bc.finalize_after_h) - timedelta(days=1)
        async with self.store.session() as s:
            rows = await s.open_billing_sessions()
            orphans = await s.ended_transactions_without_invoice(since)
            active = await s.active_transactions()
            for row in rows:
                self._open(SessionTrack.from_fields(row), await s.transaction(row["tx_key"]))
            caught_up = 0
            for tx in orphans:
                if tx.key not in self._tracks and await s.billing_session(tx.key) is None:
                    site_id = (await self._info(s, tx.station_id)).get("site_id")
                    self._open(SessionTrack.for_tx(tx, site_id), tx)
                    caught_up += 1
            for track in self._tracks.values():
                await self._catch_up(s, track, now)
        for tx in active:
            await self._set_power(tx.station_id, tx.evse.evse_id, tx.power_w or 0.0, now)
        for track in list(self._tracks.values()):
            await self._save(track)
        log.info("billing started open_sessions=%d caught_up=%d", len(self._tracks), caught_up)

    async def _catch_up(self, s: Any, track: SessionTrack, now: datetime) -> None:
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
            if r["evse_id"] == track.evse_id and r["at"] >= track.started_at:
                cs = r["charging_state"]
                track.on_status(ConnectorStatus(r["status"]), ChargingState(cs) if cs else None, r["at"])


def _apply_needs(track: SessionTrack, n: ChargingNeeds) -> None:
    if n.departure_time is not None:
        track.stated_departure = n.departure_time
    if n.energy_amount_wh is not None:
        track.energy_need_wh = n.energy_amount_wh
