"""Bookings: drivers reserve an EVSE ahead; the CSMS guards the grid, reserves the connector, frees no-shows.

- Overlap on the same EVSE is refused (Conflict -> 409). A site-level booking gets the first free EVSE.
- Admission control: a what-if plan of the site over the booking window, with the other bookings and the
  sessions charging now, must deliver the booked energy. If it cannot, the booking is refused with the
  energy that can be guaranteed, or accepted with that energy when the caller allows partial bookings.
- `reserve_lead_min` before the start, ReserveNow goes to the charger (reservationId = booking id);
  cancelling sends CancelReservation; a no-show expires `no_show_grace_min` after the start.
- A session started by the booking's token on its EVSE makes it Active; its end and energy feed the
  optimizer and billing (allotted time for overstay) through `OpenBookings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from csms.config import Config
from csms.domain import commands as cmd
from csms.domain.clock import Clock
from csms.domain.enums import AuthorizationStatus
from csms.domain.errors import (
    Conflict, InvalidRequest, StoreUnavailable, UnknownBooking, UnknownSite, UnknownStation,
)
from csms.domain.events import DomainEvent, TransactionChanged
from csms.domain.model import Booking
from csms.domain.ports import ChargerGateway
from csms.domain.store_ports import StorePort, StoreSession
from csms.scheduling import SessionSpec, plan

from .bus import EventBus
from .open_bookings import OpenBookings
from .plan_input import BOOKED_PRIORITY, charger_evses, evse_key
from .site_limits import SiteLimits, external_limits_of, slot_edges

log = logging.getLogger("csms.bookings")
OPEN = ("Confirmed", "Reserved", "Active")
PENDING = ("Confirmed", "Reserved")  # not started yet: may still be reserved, cancelled or expire
#: Priority of already admitted bookings (and booked cars charging now) in the what-if plan: above the new
#: booking's (BOOKED_PRIORITY), so it is only given what is left after the earlier guarantees.
COMMITTED_PRIORITY = 10 * BOOKED_PRIORITY
#: The what-if plan of a very long booking looks at its first week only (keeps the LP small).
MAX_WHAT_IF_SLOTS = 7 * 96
#: A running session whose departure nobody stated (no charging needs, no booking) is assumed to stay this
#: long from now: a booking on its connector starting sooner is refused, and availability shows it busy.
UNKNOWN_STAY = timedelta(hours=8)
#: Charging needs sent this long before the transaction started still count (as billing and smart do).
NEEDS_BEFORE_START = timedelta(minutes=10)


class AdmissionRefused(Conflict):
    def __init__(self, requested_wh: float, guaranteed_wh: float) -> None:
        super().__init__(f"the site cannot deliver {requested_wh / 1000:.1f} kWh in that window alongside its "
                         f"commitments; it can guarantee {guaranteed_wh / 1000:.1f} kWh "
                         f"(book again with accept_partial=true to accept that)")
        self.requested_wh = requested_wh
        self.guaranteed_wh = guaranteed_wh


def aligned_grid(plan_start: datetime, arrival: datetime, end: datetime, slot_s: float
                 ) -> tuple[float, float, int]:
    """(first slot s, slot s, slot count) of a what-if grid from `plan_start` on which a booking's `arrival` and
    `end` are slot edges: the window [arrival, end) is k equal slots no longer than `slot_s`, and the time
    before it is whole slots of that length after a first, shorter one. Pure."""
    window_s = (end - arrival).total_seconds()
    if window_s <= 0:
        raise InvalidRequest("end: must be after start")
    k = max(1, math.ceil(window_s / slot_s - 1e-9))
    step_s = window_s / k
    lead_s = (arrival - plan_start).total_seconds()
    if lead_s <= 1e-6:
        return step_s, step_s, k
    first_s = lead_s % step_s
    if first_s <= 1e-6 or step_s - first_s <= 1e-6:
        first_s = step_s
    return first_s, step_s, k + 1 + round((lead_s - first_s) / step_s)


class BookingService:
    def __init__(self, cfg: Config, store: StorePort, bus: EventBus, gateway: ChargerGateway, clock: Clock,
                 smart: Any = None, open_bookings: OpenBookings | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.gateway = gateway
        self.clock = clock
        self.smart = smart  # SmartChargingService: snapshot() and solver for the admission what-if
        self.open = open_bookings or OpenBookings(store, clock)  # what the optimizer and billing read
        self._lock = asyncio.Lock()  # serialises check-then-insert so two requests cannot both win a slot
        self._task: asyncio.Task[Any] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._locks: dict[int, asyncio.Lock] = {}  # per booking: its lifecycle steps never interleave
        self._unsubscribe = bus.subscribe(self._on_event)

    def reconfigure(self, cfg: Config) -> None:
        self.cfg = cfg

    async def start(self) -> None:
        await self._refresh_cache()
        self._task = asyncio.create_task(self._loop(), name="bookings")

    async def stop(self) -> None:
        self._unsubscribe()
        tasks = [t for t in (self._task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # --- queries --------------------------------------------------------------------------------
    async def _evses_of_site(self, site_id: str) -> list[tuple[str, int]]:
        async with self.store.session() as s:
            stations = [st for st in await s.stations() if st.site_id == site_id]
        out = []
        for st in stations:
            c = self.cfg.charger(st.id)
            out += [(st.id, n) for n, _ in (charger_evses(c) if c else [(1, ())])]
        return out

    async def availability(self, site_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Per EVSE, the free intervals within [start, end) given open bookings."""
        if self.cfg.site(site_id) is None:
            raise UnknownSite(site_id)
        if end <= start:
            raise InvalidRequest("end: must be after start")
        async with self.store.session() as s:
            booked = await s.bookings(site_id=site_id, overlapping=(start, end), statuses=OPEN)
            occupied = await self._occupied(s, site_id)
        now = self.clock.now()
        out = []
        for station_id, evse_id in await self._evses_of_site(site_id):
            busy = sorted((b.start, b.end) for b in booked if (b.station_id, b.evse_id) == (station_id, evse_id))
            leaves = occupied.get((station_id, evse_id))
            if leaves is not None:  # a car is plugged in now: busy until it is expected to leave
                busy = sorted([*busy, (now, leaves)])
            free, cursor = [], start
            for b0, b1 in busy:
                if b0 > cursor:
                    free.append({"start": cursor, "end": min(b0, end)})
                cursor = max(cursor, b1)
            if cursor < end:
                free.append({"start": cursor, "end": end})
            out.append({"station_id": station_id, "evse_id": evse_id, "free": free})
        return out

    # --- create / cancel ------------------------------------------------------------------------
    async def create(self, *, site_id: str | None, station_id: str | None, evse_id: int | None, id_token: str,
                     start: datetime, end: datetime, energy_wh: float | None,
                     accept_partial: bool = False) -> Booking:
        now = self.clock.now()
        bc = self.cfg.bookings
        if end <= start:
            raise InvalidRequest("end: must be after start")
        if end <= now:
            raise InvalidRequest("end: must be in the future")
        if start < now - timedelta(minutes=1):  # it would expire as a no-show at once
            raise InvalidRequest("start: must not be in the past")
        if (end - start) < timedelta(minutes=bc.min_duration_min):
            raise InvalidRequest(f"a booking lasts at least {bc.min_duration_min} minutes")
        if start > now + timedelta(days=bc.max_days_ahead):
            raise InvalidRequest(f"start: at most {bc.max_days_ahead} days ahead")
        async with self._lock:
            async with self.store.session() as s:
                if station_id is not None:
                    st = await s.station(station_id)
                    if st is None:
                        raise UnknownStation(station_id)
                    if site_id is not None and site_id != st.site_id:
                        raise InvalidRequest(f"station_id: {station_id!r} is not at site {site_id!r}")
                    site_id = st.site_id
                if site_id is None or self.cfg.site(site_id) is None:
                    raise UnknownSite(site_id or "")
                token = await s.id_token(id_token)
                if token is None:
                    raise InvalidRequest(f"id_token: unknown token {id_token!r}")
                if token.status is not AuthorizationStatus.ACCEPTED:
                    raise InvalidRequest(f"id_token: {id_token!r} is {token.status.value}")
                booked = await s.bookings(site_id=site_id, overlapping=(start, end), statuses=OPEN)
                occupied = await self._occupied(s, site_id)
            candidates = [(sid, n) for sid, n in await self._evses_of_site(site_id)
                          if (station_id is None or sid == station_id) and (evse_id is None or n == evse_id)]
            if not candidates:
                raise InvalidRequest("no such EVSE at that site")
            taken = {(b.station_id, b.evse_id) for b in booked}
            # A connector a car occupies now is not free before that car is expected to leave.
            taken |= {k for k, leaves in occupied.items() if leaves > start}
            free = [c for c in candidates if c not in taken]
            if not free:
                if station_id and evse_id and (station_id, evse_id) in occupied:
                    raise Conflict(f"that connector is occupied by a charging session until about "
                                   f"{occupied[(station_id, evse_id)].isoformat(timespec='minutes')}")
                raise Conflict("that connector is already booked in that window" if station_id and evse_id
                               else "no connector is free in that window")
            chosen = free[0]
            guaranteed = await self._admissible_energy(site_id, chosen, start, end, energy_wh, booked)
            if energy_wh is not None and guaranteed + 1.0 < energy_wh and (not accept_partial or guaranteed < 1.0):
                raise AdmissionRefused(energy_wh, guaranteed)  # a guarantee of nothing is never booked
            booking = Booking(0, site_id, chosen[0], chosen[1], id_token, start, end, energy_wh,
                              min(energy_wh, guaranteed) if energy_wh is not None else None, "Confirmed", now)
            async with self.store.session() as s:
                booking = await s.add_booking(booking)
        log.info("booking created id=%s station=%s evse=%s start=%s end=%s energy_wh=%s guaranteed_wh=%s",
                 booking.id, booking.station_id, booking.evse_id, start, end, energy_wh, booking.guaranteed_energy_wh)
        await self._refresh_cache()
        await self._check_one(booking)  # a booking starting within the lead time is reserved at once
        return await self.get(booking.id)  # with the status that produced (Reserved)

    async def _occupied(self, s: StoreSession, site_id: str) -> dict[tuple[str, int], datetime]:
        """EVSEs of the site with a running session, and when that car is expected to leave: its stated
        departure (charging needs), else its booking's end, else UNKNOWN_STAY from now."""
        now = self.clock.now()
        stations = {st.id for st in await s.stations() if st.site_id == site_id}
        out: dict[tuple[str, int], datetime] = {}
        for tx in await s.active_transactions():
            if tx.station_id not in stations:
                continue
            needs = await s.latest_charging_needs(tx.station_id, tx.evse.evse_id, tx.started_at - NEEDS_BEFORE_START)
            leaves = needs.departure_time if needs is not None else None
            leaves = leaves or self.open.booking_end(tx.station_id, tx.id_token) or now + UNKNOWN_STAY
            out[(tx.station_id, tx.evse.evse_id)] = max(leaves, now)
        return out

    async def _admissible_energy(self, site_id: str, chosen: tuple[str, int], start: datetime, end: datetime,
                                 energy_wh: float | None, booked: list[Booking]) -> float:
        """Energy the site can deliver to the new booking in [start, end) alongside the other commitments."""
        if energy_wh is None or self.smart is None:
            return energy_wh or 0.0
        site = self.cfg.site(site_id)
        assert site is not None
        sc = self.cfg.smart_charging.for_site(site)
        slot_s = sc.slot_min * 60
        snap = await self.smart.snapshot(site_id)
        inp = snap.input  # current sessions and fixed draws, planned from now
        # Within the planning horizon the what-if starts now, with the sessions charging now; a booking
        # further ahead is planned from its own start (today's sessions will have left by then).
        near = start <= inp.start + timedelta(seconds=inp.horizon_slots * slot_s)
        plan_start = inp.start if near else start
        arrival = max(start, plan_start)
        # The what-if's own slot grid puts the booking's start and end on slot edges, so its first and last
        # slots are counted to the second (the planner drops a partial last slot: right for a live plan that
        # re-plans, too little for a guarantee: a one-hour booking got three whole slots).
        first_slot_s, step_s, n = aligned_grid(plan_start, arrival, end, slot_s)
        n = min(MAX_WHAT_IF_SLOTS, n)
        # The site's limits over *this* window, from their one owner (services.site_limits): the grid
        # connection (daily schedule, external signal, current limit) and every circuit with its EVSEs,
        # and the base load. The snapshot's series start now and cover the planning horizon only.
        limits = SiteLimits.of(site, external_limits_of(self.smart))
        edges = slot_edges(plan_start, step_s, n, first_slot_s)
        stations = [(e.evse_key, e.evse_key.rsplit("#", 1)[0]) for e in inp.evses]  # "<station>#<evse id>"
        circuits = limits.circuit_specs(stations, edges)
        busy = {x.evse_key for x in inp.sessions} if near else set()
        # Bookings admitted earlier keep their guarantee: they come first in the what-if.
        extra = [SessionSpec(f"booking-{b.id}", evse_key(b.station_id, b.evse_id), b.guaranteed_energy_wh or 0.0,
                             departure=b.end, arrival=max(b.start, plan_start), priority=COMMITTED_PRIORITY)
                 for b in booked if b.guaranteed_energy_wh and evse_key(b.station_id, b.evse_id) not in busy]
        key = evse_key(*chosen)
        # Ranked as the live plan will rank them (BOOKED_PRIORITY): the new booking above walk-ins, whose needs
        # are site defaults (a 1.6 car states nothing) or best effort, so they never take what it would hold;
        # below the bookings admitted earlier, booked cars charging now included.
        new = SessionSpec("booking-new", key, energy_wh, departure=end, arrival=arrival, priority=BOOKED_PRIORITY)
        booked_now = {k for k, info in snap.sessions.items() if info.booked}
        sessions = tuple(replace(x, priority=COMMITTED_PRIORITY) if x.session_key in booked_now else x
                         for x in inp.sessions if x.evse_key != key) if near else ()
        # Fixed draws (EVSEs offline, rejecting profiles, or idle with a non-zero default) describe now: they
        # count for a booking within the horizon, except on EVSEs a booking will use (the booking replaces
        # the idle allowance); a booking further ahead does not inherit today's outages.
        used = {key, *(e.evse_key for e in extra)}
        fixed = tuple(f for f in inp.fixed_draws if f.evse_key not in used) if near else ()
        # A what-if is not re-planned every few minutes: slot 0 counts to its boundary (no replan_s).
        what_if = replace(inp, start=plan_start, first_slot_s=first_slot_s, slot_s=step_s, horizon_slots=n,
                          circuits=circuits, base_loads=limits.base_loads(edges), sessions=(*sessions, *extra, new),
                          fixed_draws=fixed, price_per_kwh=(), replan_s=None, expected_arrivals=())
        schedule = await (self.smart.what_if(snap.site_id, what_if) if self.smart is not None
                          else asyncio.to_thread(plan, what_if))
        return schedule.session("booking-new").energy_wh

    async def cancel(self, booking_id: int) -> Booking:
        async with self.store.session() as s:
            b = await s.booking(booking_id)
            if b is None:
                raise UnknownBooking(str(booking_id))
            if b.status not in PENDING or not await s.set_booking(booking_id, only_if=PENDING, status="Cancelled"):
                raise Conflict(f"booking {booking_id} is {b.status}: only a Confirmed or Reserved one can be "
                               f"cancelled")
        if b.status == "Reserved":
            res = await self.gateway.send(b.station_id, cmd.CancelReservation(b.id))
            log.info("reservation cancelled booking=%s status=%s", b.id, res.status)
        await self._refresh_cache()
        return await self.get(booking_id)

    async def get(self, booking_id: int) -> Booking:
        async with self.store.session() as s:
            b = await s.booking(booking_id)
        if b is None:
            raise UnknownBooking(str(booking_id))
        return b

    # --- lifecycle ------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            await self.clock.sleep(self.cfg.bookings.check_interval_s)
            try:
                await self.check_due()
            except Exception:  # noqa: BLE001 - retried next round
                log.exception("booking check failed")

    async def check_due(self) -> None:
        """Send ReserveNow for bookings within the lead time; expire no-shows."""
        async with self.store.session() as s:
            due = await s.bookings(statuses=PENDING)
        ids = {b.id for b in due}
        for stale in [i for i, lock in self._locks.items() if i not in ids and not lock.locked()]:
            del self._locks[stale]
        for b in due:
            await self._check_one(b)

    async def _check_one(self, b: Booking) -> None:
        """One booking at a time (the loop and create() must not both send ReserveNow), on its current state."""
        async with self._locks.setdefault(b.id, asyncio.Lock()):
            async with self.store.session() as s:
                current = await s.booking(b.id)
            if current is not None and current.status in PENDING:
                await self._check(current)

    async def _check(self, b: Booking) -> None:
        now = self.clock.now()
        bc = self.cfg.bookings
        expiry = min(b.start + timedelta(minutes=bc.no_show_grace_min), b.end)
        if now >= expiry:
            async with self.store.session() as s:
                current = await s.booking(b.id)
                if current is None or not await s.set_booking(b.id, only_if=PENDING, status="Expired"):
                    return  # started (Active) or cancelled meanwhile
            if current.status == "Reserved":
                res = await self.gateway.send(b.station_id, cmd.CancelReservation(b.id))
                log.info("reservation cancelled (no-show) booking=%s status=%s", b.id, res.status)
            log.info("booking expired (no-show) id=%s", b.id)
            await self._refresh_cache()
            return
        if b.status == "Confirmed" and now >= b.start - timedelta(minutes=bc.reserve_lead_min):
            async with self.store.session() as s:
                token = await s.id_token(b.id_token)  # its configured type (e.g. Central), not always ISO14443
            res = await self.gateway.send(b.station_id, cmd.ReserveNow(
                b.id, b.evse_id, b.id_token, expiry, token.type if token is not None else None))
            log.info("reserve now booking=%s station=%s evse=%s status=%s", b.id, b.station_id, b.evse_id, res.status)
            if res.accepted:
                async with self.store.session() as s:
                    reserved = await s.set_booking(b.id, only_if=("Confirmed",), status="Reserved")
                if not reserved:  # cancelled while ReserveNow was in flight: take the reservation back
                    await self.gateway.send(b.station_id, cmd.CancelReservation(b.id))

    def _on_event(self, ev: DomainEvent) -> None:
        if isinstance(ev, TransactionChanged) and (ev.started or ev.ended):
            t = asyncio.ensure_future(self._on_tx(ev))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _on_tx(self, ev: TransactionChanged) -> None:
        tx = ev.transaction
        # Most transactions are not booked: without an open booking at the station (the cache is refreshed
        # after every booking write) there is nothing to activate or complete. This was a SELECT and a
        # re-read of all open bookings per transaction start and end (issue 10: 5 % of a boot ramp's CPU).
        if not self.open.may_have_open(tx.station_id):
            return
        try:
            async with self.store.session() as s:
                if ev.started:
                    cands = await s.bookings(station_id=tx.station_id, evse_id=tx.evse.evse_id,
                                             statuses=PENDING, id_tokens=[tx.id_token or ""])
                    now = self.clock.now()
                    for b in cands:
                        if b.start - timedelta(minutes=self.cfg.bookings.reserve_lead_min) <= now < b.end:
                            if await s.set_booking(b.id, only_if=PENDING, status="Active", transaction_key=tx.key):
                                log.info("booking active id=%s tx=%s", b.id, tx.key)
                                break
                if ev.ended:
                    for b in await s.bookings(station_id=tx.station_id, statuses=("Active",)):
                        if b.transaction_key == tx.key:
                            await s.set_booking(b.id, status="Completed")
                            log.info("booking completed id=%s tx=%s", b.id, tx.key)
            await self._refresh_cache()
        except StoreUnavailable:  # the store logged the outage once; no traceback per transaction
            log.warning("booking update skipped tx=%s: database unavailable", tx.key)
        except Exception:  # noqa: BLE001 - a task nobody awaits: log instead of losing the error
            log.exception("booking update failed tx=%s", tx.key)

    async def _refresh_cache(self) -> None:
        await self.open.refresh()

    # --- hooks for the optimizer and billing (see OpenBookings) -------------------------------------
    def booking_for(self, station_id: str, id_token: str) -> tuple[float | None, datetime | None]:
        return self.open.booking_for(station_id, id_token)

    def booking_end(self, station_id: str, id_token: str | None) -> datetime | None:
        return self.open.booking_end(station_id, id_token)
