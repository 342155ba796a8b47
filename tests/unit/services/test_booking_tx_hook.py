"""BookingService's transaction hook (`_on_tx`): a session starting at a station with an open booking for
its driver activates it; a session at a station without any open booking costs no store work at all (it
was a SELECT and a re-read of all open bookings per transaction start and end, issue 10)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from csms.config import Config
from csms.domain.clock import FakeClock
from csms.domain.events import TransactionChanged
from csms.domain.ids import EvseRef, StationId, TransactionKey
from csms.domain.model import Booking, Transaction
from csms.services.bookings import BookingService
from csms.services.bus import EventBus
from csms.store.memory import MemoryStore

T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0

    @asynccontextmanager
    async def session(self) -> Any:
        self.sessions += 1
        async with super().session() as s:
            yield s


def tx(station: str, token: str) -> Transaction:
    return Transaction(TransactionKey(f"{station}/T1"), StationId(station), "T1", EvseRef(1), token, T0)


async def settle(svc: BookingService) -> None:
    for _ in range(20):
        await asyncio.sleep(0)
        if not svc._tasks:
            return


async def test_only_a_station_with_an_open_booking_costs_store_work() -> None:
    store = CountingStore()
    async with store.session() as s:
        b = await s.add_booking(Booking(0, "s", "CP1", 1, "TAG1", T0 - timedelta(minutes=5), T0 + timedelta(hours=1),
                                        10_000.0, 10_000.0, "Confirmed", T0))
    bus = EventBus()
    svc = BookingService(Config(), store, bus, None, FakeClock(T0))  # type: ignore[arg-type]
    await svc.open.refresh()
    before = store.sessions
    bus.publish(TransactionChanged(tx("CP2", "TAG1"), started=True, ended=False, at=T0))
    bus.publish(TransactionChanged(tx("CP2", "TAG1"), started=False, ended=True, at=T0))
    await settle(svc)
    assert store.sessions == before  # CP2 has no open booking: nothing read, nothing refreshed
    bus.publish(TransactionChanged(tx("CP1", "TAG1"), started=True, ended=False, at=T0))
    await settle(svc)
    async with store.session() as s:
        (got,) = await s.bookings(station_id="CP1")
    assert got.id == b.id and got.status == "Active" and got.transaction_key == "CP1/T1"
    await svc.stop()
