"""The open bookings, by (station, driver token): a read model for the optimizer and billing.

Kept apart from BookingService, which admits bookings with a what-if plan of the smart-charging service:
smart charging reads the bookings (a session's end and energy), and bookings ask smart charging for plans,
so the part both need is its own object and neither is wired into the other after construction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from csms.domain.clock import Clock
from csms.domain.model import Booking
from csms.domain.store_ports import StorePort

OPEN = ("Confirmed", "Reserved", "Active")
#: A booking shapes the session of its driver from this long before its start (early arrivals).
EARLY = timedelta(hours=1)


class OpenBookings:
    def __init__(self, store: StorePort, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._active: dict[tuple[str, str], Booking] = {}
        #: None until the first refresh: then any station may have one.
        self._stations: frozenset[str] | None = None

    async def refresh(self) -> None:
        """Re-read the open bookings (after any booking changed)."""
        async with self.store.session() as s:
            open_ = await s.bookings(statuses=OPEN)
        # One booking per (station, token): an Active one, else the earliest (bookings come sorted by start),
        # so tomorrow's booking does not hide today's.
        active: dict[tuple[str, str], Booking] = {}
        for b in open_:
            key = (b.station_id, b.id_token)
            if key not in active or (b.status == "Active" and active[key].status != "Active"):
                active[key] = b
        self._active = active
        self._stations = frozenset(b.station_id for b in open_)

    def may_have_open(self, station_id: str) -> bool:
        """False only when the last refresh found no open booking at this station (every booking write
        refreshes): a transaction there cannot start or end one, and needs no query."""
        return self._stations is None or station_id in self._stations

    def booking_for(self, station_id: str, id_token: str) -> tuple[float | None, datetime | None]:
        """(energy wanted, end) of the open booking this session belongs to, if any (smart.BookingPort)."""
        b = self._active.get((station_id, id_token))
        if b is None or b.start - EARLY > self.clock.now():
            return None, None
        return b.energy_wh, b.end

    def booking_end(self, station_id: str, id_token: str | None) -> datetime | None:
        return self.booking_for(station_id, id_token or "")[1]
