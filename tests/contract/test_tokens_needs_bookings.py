"""TokenRepo, ChargingNeedsRepo and BookingRepo: the same behaviour from every store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from csms.domain.enums import AuthorizationStatus
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import Booking, ChargingNeeds, IdToken

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)


async def test_id_tokens(store: Any) -> None:
    b = IdToken("B", "Central", AuthorizationStatus.BLOCKED, T0, "fleet")
    async with store.session() as s:
        await s.upsert_id_token(IdToken("C"))
        await s.upsert_id_token(IdToken("B"))
        await s.upsert_id_token(b)  # replaces
    async with store.session() as s:
        assert await s.id_token("B") == b and await s.id_token("nope") is None
        assert await s.id_tokens() == [b, IdToken("C")]
        assert await s.delete_id_token("C") is True
        assert await s.delete_id_token("C") is False
    async with store.session() as s:
        assert [t.value for t in await s.id_tokens()] == ["B"]


async def test_groups(store: Any) -> None:
    async with store.session() as s:
        await s.upsert_group("fleet", 3.0)
        await s.upsert_group("staff", 1.0)
        await s.upsert_group("fleet", 5.0)
    async with store.session() as s:
        assert await s.groups() == {"fleet": 5.0, "staff": 1.0}
        assert await s.delete_group("staff") is True and await s.delete_group("staff") is False
    async with store.session() as s:
        assert await s.groups() == {"fleet": 5.0}


def _needs(minute: int, evse: int = 1, **kw: Any) -> ChargingNeeds:
    return ChargingNeeds(StationId("A"), EvseRef(evse), T0 + timedelta(minutes=minute), **kw)


async def test_charging_needs(store: Any) -> None:
    full = _needs(10, energy_amount_wh=20000.0, departure_time=T0 + 8 * H, ev_max_current_a=32.0,
                  ev_min_current_a=6.0, ev_max_power_w=11000.0, source="driver", ev_phases=3)
    async with store.session() as s:
        await s.add_charging_needs(_needs(0, energy_amount_wh=1.0))
        await s.add_charging_needs(full)
        await s.add_charging_needs(_needs(5, evse=2))
        await s.add_charging_needs(ChargingNeeds(StationId("A"), EvseRef(1, 2), T0 + timedelta(minutes=20)))
    async with store.session() as s:
        since = await s.charging_needs_since("A", 1, T0 + timedelta(minutes=1))
        latest = await s.latest_charging_needs("A", 1, T0)
        assert await s.latest_charging_needs("A", 1, T0 + H) is None
        assert len(await s.charging_needs_since("A", 1, T0)) == 3
    # per EVSE: the connector reads back as 1
    assert since == [full, ChargingNeeds(StationId("A"), EvseRef(1), T0 + timedelta(minutes=20))]
    assert latest == since[-1]


def _booking(station: str, evse: int, start_h: float, token: str = "T1", status: str = "Confirmed",
             site: str = "depot") -> Booking:
    start = T0 + start_h * H
    return Booking(0, site, station, evse, token, start, start + H, 20000.0, 15000.0, status, T0)


async def test_bookings_get_ids_and_are_found_by_filters(store: Any) -> None:
    async with store.session() as s:
        a = await s.add_booking(_booking("A", 1, 2))
        b = await s.add_booking(_booking("A", 2, 1, token="T2"))
        c = await s.add_booking(_booking("B", 1, 3, status="Cancelled", site="other"))
    assert len({a.id, b.id, c.id}) == 3 and a.transaction_key is None
    assert (a.site_id, a.station_id, a.evse_id, a.id_token, a.start, a.end, a.energy_wh, a.guaranteed_energy_wh,
            a.status, a.created_at) == ("depot", "A", 1, "T1", T0 + 2 * H, T0 + 3 * H, 20000.0, 15000.0,
                                        "Confirmed", T0)
    async with store.session() as s:
        assert await s.booking(a.id) == a and await s.booking(10**9) is None
        assert [x.id for x in await s.bookings()] == [b.id, a.id, c.id]  # by start
        assert [x.id for x in await s.bookings(site_id="depot")] == [b.id, a.id]
        assert [x.id for x in await s.bookings(station_id="A", evse_id=1)] == [a.id]
        assert [x.id for x in await s.bookings(overlapping=(T0 + 2 * H, T0 + 3.5 * H))] == [a.id, c.id]
        assert [x.id for x in await s.bookings(overlapping=(T0 + 2 * H, T0 + 3 * H))] == [a.id]  # ends are open
        assert [x.id for x in await s.bookings(statuses=["Confirmed"], id_tokens=["T1"])] == [a.id]
        assert [x.id for x in await s.bookings(offset=1, limit=1)] == [a.id]


async def test_set_booking_is_a_compare_and_set(store: Any) -> None:
    async with store.session() as s:
        a = await s.add_booking(_booking("A", 1, 2))
    async with store.session() as s:
        assert await s.set_booking(a.id, "Active", transaction_key="A/1", only_if=("Confirmed", "Reserved"))
        assert not await s.set_booking(a.id, "Expired", only_if=("Confirmed", "Reserved"))  # Active meanwhile
        assert not await s.set_booking(10**9, "Cancelled")
    async with store.session() as s:
        got = await s.booking(a.id)
        assert got is not None and (got.status, got.transaction_key) == ("Active", "A/1")
        assert await s.set_booking(a.id, "Completed")  # no condition; the transaction stays
        got = await s.booking(a.id)
    assert got is not None and (got.status, got.transaction_key) == ("Completed", "A/1")
