"""Bookings: drivers reserve an EVSE ahead; the CSMS guards the grid, reserves the connector, frees no-shows.

- Overlap on the same EVSE is refused (Conflict -> 409). A site-level booking gets the first free EVSE.
- Admission control: a what-if plan of the site over the booking window, with the other bookings and the
  sessions charging now, must deliver the booked energy. If it cannot, the booking is refused with the
  energy that can be guaranteed, or accepted with that energy when the caller allows partial bookings.
- `reserve_lead_min` before the start, ReserveNow goes to the charger (reservationId = booking id);
  cancelling sends CancelReservation; a no-show expires `no_show_grace_min` after the start.
- A session started by the booking's token on its EVSE makes it Active; its end and energy feed the
  optimizer (SmartChargingService.booking_fn) and billing (allotted time for overstay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import datetime, timedelta
from typing import Any

from csms.config import Config
from csms.domain.clock import Clock
from csms.domain.errors import Conflict, InvalidRequest, UnknownStation
from csms.domain.events import DomainEvent, TransactionChanged
from csms.domain.model import Booking
from csms.domain.ports import ChargerGateway
from csms.scheduling import SessionSpec, plan

from .bus import EventBus
from .charging import StorePort
from .plan_input import charger_evses, evse_key

log = logging.getLogger("csms.bookings")
OPEN = ("Confirmed", "Reserved", "Active")


class AdmissionRefused(Conflict):
    def __init__(self, requested_wh: float, guaranteed_wh: float) -> None:
        super().__init__(f"the site cannot deliver {requested_wh / 1000:.1f} kWh in that window alongside its "
                         f"commitments; it can guarantee {guaranteed_wh / 1000:.1f} kWh "
                         f"(book again with accept_partial=true to accept that)")
        self.requested_wh = requested_wh
        self.guaranteed_wh = guaranteed_wh


class BookingService:
    def __init__(self, cfg: Config, store: StorePort, bus: EventBus, gateway: ChargerGateway, clock: Clock,
                 smart: Any = None) -> None:
        self.cfg = cfg
        self.store = store
        self.gateway = gateway
        self.clock = clock
        self.smart = smart
        self._lock = asyncio.Lock()  # serialises check-then-insert so two requests cannot both win a slot
        self._task: asyncio.Task[Any] | None = None
        self._active: dict[tuple[str, str], Booking] = {}  # (station, token) -> open booking, for the optimizer
        self._unsubscribe = bus.subscribe(self._on_event)

    def reconfigure(self, cfg: Config) -> None:
        self.cfg = cfg

    async def start(self) -> None:
        await self._refresh_cache()
        self._task = asyncio.create_task(self._loop(), name="bookings")

    async def stop(self) -> None:
        self._unsubscribe()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
            raise InvalidRequest(f"unknown site {site_id!r}")
        if end <= start:
            raise InvalidRequest("end: must be after start")
        async with self.store.session() as s:
            booked = await s.bookings(site_id=site_id, overlapping=(start, end), statuses=OPEN)
        out = []
        for station_id, evse_id in await self._evses_of_site(site_id):
            busy = sorted((b.start, b.end) for b in booked if (b.station_id, b.evse_id) == (station_id, evse_id))
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
                    site_id = st.site_id
                if site_id is None or self.cfg.site(site_id) is None:
                    raise InvalidRequest("give a known site_id or station_id")
                if await s.id_token(id_token) is None:
                    raise InvalidRequest(f"id_token: unknown token {id_token!r}")
                booked = await s.bookings(site_id=site_id, overlapping=(start, end), statuses=OPEN)
            candidates = [(sid, n) for sid, n in await self._evses_of_site(site_id)
                          if (station_id is None or sid == station_id) and (evse_id is None or n == evse_id)]
            if not candidates:
                raise InvalidRequest("no such EVSE at that site")
            taken = {(b.station_id, b.evse_id) for b in booked}
            free = [c for c in candidates if c not in taken]
            if not free:
                raise Conflict("that connector is already booked in that window" if station_id and evse_id
                               else "no connector is free in that window")
            chosen = free[0]
            guaranteed = await self._admissible_energy(site_id, chosen, start, end, energy_wh, booked)
            if energy_wh is not None and guaranteed + 1.0 < energy_wh and not accept_partial:
                raise AdmissionRefused(energy_wh, guaranteed)
            booking = Booking(0, site_id, chosen[0], chosen[1], id_token, start, end, energy_wh,
                              min(energy_wh, guaranteed) if energy_wh is not None else None, "Confirmed", now)
            async with self.store.session() as s:
                booking = await s.add_booking(booking)
        log.info("booking created id=%s station=%s evse=%s start=%s end=%s energy_wh=%s guaranteed_wh=%s",
                 booking.id, booking.station_id, booking.evse_id, start, end, energy_wh, booking.guaranteed_energy_wh)
        await self._refresh_cache()
        await self._check_one(booking)  # a booking starting within the lead time is reserved at once
        return booking

    async def _admissible_energy(self, site_id: str, chosen: tuple[str, int], start: datetime, end: datetime,
                                 energy_wh: float | None, booked: list[Booking]) -> float:
        """Energy the site can deliver to the new booking in [start, end) alongside the other commitments."""
        if energy_wh is None or self.smart is None:
            return energy_wh or 0.0
        site = self.cfg.site(site_id)
        assert site is not None
        now = self.clock.now()
        slot_s = self.cfg.smart_charging.slot_min * 60
        inp, _, _ = await self.smart._snapshot(site)  # current sessions and fixed draws, planned from now
        plan_start = inp.start if start <= now + timedelta(seconds=inp.horizon_slots * slot_s) else start
        n = max(1, math.ceil((end - plan_start).total_seconds() / slot_s))
        extra = [SessionSpec(f"booking-{b.id}", evse_key(b.station_id, b.evse_id), b.guaranteed_energy_wh or 0.0,
                             departure=b.end, arrival=max(b.start, plan_start)) for b in booked
                 if b.guaranteed_energy_wh and evse_key(b.station_id, b.evse_id) not in
                 {x.evse_key for x in inp.sessions}]
        key = evse_key(*chosen)
        new = SessionSpec("booking-new", key, energy_wh, departure=end, arrival=max(start, plan_start),
                          priority=1.0)
        sessions = tuple(x for x in inp.sessions if x.evse_key != key) if plan_start == inp.start else ()
        from dataclasses import replace

        # Present sessions keep their priority; the booking competes as an equal. Fixed draws for idle EVSEs
        # are dropped for EVSEs that a booking will use (the booking replaces the idle reservation).
        used = {key, *(e.evse_key for e in extra)}
        what_if = replace(inp, start=plan_start, horizon_slots=n, sessions=(*sessions, *extra, new),
                          fixed_draws=tuple(f for f in inp.fixed_draws if f.evse_key not in used),
                          price_per_kwh=())
        schedule = await asyncio.to_thread(plan, what_if)
        return schedule.session("booking-new").energy_wh

    async def cancel(self, booking_id: int) -> Booking:
        async with self.store.session() as s:
            b = await s.booking(booking_id)
            if b is None:
                raise InvalidRequest(f"unknown booking {booking_id}")
            if not b.open or b.status == "Active":
                raise Conflict(f"booking {booking_id} is {b.status}")
            await s.set_booking(booking_id, status="Cancelled")
        if b.status == "Reserved":
            res = await self.gateway.cancel_reservation(b.station_id, b.id)
            log.info("reservation cancelled booking=%s status=%s", b.id, res.status)
        await self._refresh_cache()
        return await self.get(booking_id)

    async def get(self, booking_id: int) -> Booking:
        async with self.store.session() as s:
            b = await s.booking(booking_id)
        if b is None:
            raise InvalidRequest(f"unknown booking {booking_id}")
        return b

    # --- lifecycle ------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.bookings.check_interval_s / self.clock.speedup())
            try:
                await self.check_due()
            except Exception:  # noqa: BLE001 - retried next round
                log.exception("booking check failed")

    async def check_due(self) -> None:
        """Send ReserveNow for bookings within the lead time; expire no-shows; complete past ones."""
        async with self.store.session() as s:
            due = await s.bookings(statuses=("Confirmed", "Reserved"))
        for b in due:
            await self._check_one(b)

    async def _check_one(self, b: Booking) -> None:
        now = self.clock.now()
        bc = self.cfg.bookings
        expiry = b.start + timedelta(minutes=bc.no_show_grace_min)
        if now >= expiry:
            async with self.store.session() as s:
                await s.set_booking(b.id, status="Expired")
            if b.status == "Reserved":
                await self.gateway.cancel_reservation(b.station_id, b.id)
            log.info("booking expired (no-show) id=%s", b.id)
            await self._refresh_cache()
            return
        if b.status == "Confirmed" and now >= b.start - timedelta(minutes=bc.reserve_lead_min):
            res = await self.gateway.reserve_now(b.station_id, b.id, b.evse_id, b.id_token, expiry)
            log.info("reserve now booking=%s station=%s evse=%s status=%s", b.id, b.station_id, b.evse_id, res.status)
            if res.accepted:
                async with self.store.session() as s:
                    await s.set_booking(b.id, status="Reserved")

    def _on_event(self, ev: DomainEvent) -> None:
        if isinstance(ev, TransactionChanged) and (ev.started or ev.ended):
            asyncio.ensure_future(self._on_tx(ev))

    async def _on_tx(self, ev: TransactionChanged) -> None:
        tx = ev.transaction
        async with self.store.session() as s:
            if ev.started:
                cands = await s.bookings(station_id=tx.station_id, evse_id=tx.evse.evse_id,
                                         statuses=("Confirmed", "Reserved"), id_tokens=[tx.id_token or ""])
                now = self.clock.now()
                for b in cands:
                    if b.start - timedelta(minutes=self.cfg.bookings.reserve_lead_min) <= now < b.end:
                        await s.set_booking(b.id, status="Active", transaction_key=tx.key)
                        log.info("booking active id=%s tx=%s", b.id, tx.key)
                        break
            if ev.ended:
                for b in await s.bookings(station_id=tx.station_id, statuses=("Active",)):
                    if b.transaction_key == tx.key:
                        await s.set_booking(b.id, status="Completed")
        await self._refresh_cache()

    async def _refresh_cache(self) -> None:
        async with self.store.session() as s:
            open_ = await s.bookings(statuses=OPEN)
        self._active = {(b.station_id, b.id_token): b for b in open_}

    # --- hooks for the optimizer and billing ------------------------------------------------------
    def booking_for(self, station_id: str, id_token: str) -> tuple[float | None, datetime | None]:
        """(energy wanted, end) of the open booking this session belongs to, if any."""
        b = self._active.get((station_id, id_token))
        if b is None or b.start - timedelta(hours=1) > self.clock.now():
            return None, None
        return b.energy_wh, b.end

    def booking_end(self, station_id: str, id_token: str | None) -> datetime | None:
        return self.booking_for(station_id, id_token or "")[1]
