"""A station that (re)connects is secured before its site plans (Delivery.secure): it gets back what it held
- its TxDefault and the TxProfile of the session still running on it - or a 0 A TxDefault if it is new.
Before, it counted at its maximum until the next plan sent it 0 A, which shrank every other EVSE's share for a
plan or two (a decrease, then the rise back) and probed its running session with 0 A: a storm of reconnects
cost about twelve profiles per charger and stopped every car for a plan (issue 10)."""

from __future__ import annotations

import asyncio

import pytest

from csms.domain.enums import ProfilePurpose, RegistrationStatus
from csms.domain.events import StationOnline, TransactionChanged
from csms.domain.ids import EvseRef, StationId, TransactionKey
from csms.domain.model import Station, Transaction
from csms.services.smart import delivery

from .test_profile_churn import drain, potential_w, service

IDS = ["C0", "C1", "C2", "C3"]
LIMIT_KW = 40.0  # below the four chargers' 4 x 22 kW: every share binds


@pytest.fixture(autouse=True)
def _short_boot_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "BOOT_WINDOW_S", 0.3)


async def _reconnect() -> dict[str, object]:
    svc, gw, world, store, bus, clock = service(IDS, LIMIT_KW)
    for i in IDS:
        await svc.station_ready(i)
    # A car on C0 and on C1.
    for n, cid in enumerate(("C0", "C1")):
        cp = world.chargers[cid]
        cp.tx_id = f"t{n}"
        tx = Transaction(TransactionKey(f"{cid}/{cp.tx_id}"), StationId(cid), cp.tx_id, EvseRef(1), "TAG", clock.now())
        store.txs[tx.key] = tx
        bus.publish(TransactionChanged(tx, True, False, clock.now()))
    await drain(svc)
    await asyncio.sleep(0.4)  # past the boot window: the held shares go out
    await svc.replan("s")
    await drain(svc)
    before = {i: (c.tx_default, c.tx_profile) for i, c in world.chargers.items()}
    sent_before = svc.delivery.sent.copy()

    # C0 (in a session) and C2 (idle) drop and come back; their profiles stayed on them.
    gw.sent.clear()
    for cid in ("C0", "C2"):
        world.chargers[cid].online = False
        store._stations[cid] = Station(StationId(cid), "s", RegistrationStatus.ACCEPTED, online=False,
                                       last_seen=clock.now(), max_current_a=32.0)
        bus.publish(StationOnline(cid, False, clock.now()))
    await drain(svc)
    # While they are away their last profiles count as fixed draws (the most they allow over the day), which
    # may move the others' plans: that is the drop, not the reconnect. From here on, only the reconnect.
    gw.sent.clear()
    sent_before = svc.delivery.sent.copy()
    away = {i: world.chargers[i].limit_a(clock.now()) for i in IDS}
    reads: list[str | None] = []
    read = store.active_transactions

    async def counted(station_id: str | None = None) -> list[Transaction]:
        reads.append(station_id)
        return await read(station_id)
    store.active_transactions = counted  # type: ignore[method-assign]
    clock.advance(seconds=5)
    for cid in ("C0", "C2"):
        world.chargers[cid].online = True
        store._stations[cid] = Station(StationId(cid), "s", RegistrationStatus.ACCEPTED, online=True,
                                       last_seen=clock.now(), max_current_a=32.0)
        bus.publish(StationOnline(cid, True, clock.now()))
        await svc.station_ready(cid)
    await drain(svc)
    after = {i: (c.tx_default, c.tx_profile) for i, c in world.chargers.items()}
    sent = list(gw.sent)
    why = svc.delivery.sent - sent_before
    await svc.stop()
    return {"before": before, "after": after, "sent": sent, "why": why, "potential_w": potential_w(world),
            "away": away, "reads": reads}


def test_a_reconnect_gets_back_what_it_held_and_lowers_nobody() -> None:
    r = asyncio.run(_reconnect())
    sent = r["sent"]
    assert isinstance(sent, list)
    # Nobody else was lowered for them: what the others may draw is what it was while the two were away, give
    # or take the plan's own rounding (two cars sharing 40 kW: 29.0 + 28.9 A, then 28.9 + 28.9 A). Counted at
    # its maximum (32 A) during a plan, C0 would have pushed C1 down by 3 A.
    away = r["away"]
    assert isinstance(away, dict)
    others = [x for x in sent if x[0] not in ("C0", "C2")]
    assert all(limit >= away[s] - 0.5 for s, _, limit in others), (others, away)
    # The running session kept its limit: re-sent as it was, never probed with 0 A.
    assert not [x for x in sent if x[0] == "C0" and x[1] is ProfilePurpose.TX and x[2] == 0.0], sent
    before, after = r["before"], r["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    for cid in ("C0", "C2"):
        (d0, p0), (d1, p1) = before[cid], after[cid]
        assert (d0.periods[0].limit if d0 else None) == (d1.periods[0].limit if d1 else None), cid
        assert (p0.periods[0].limit if p0 else None) == (p1.periods[0].limit if p1 else None), cid
    why = r["why"]
    assert why["tx_default", "reassert"] == 2 and why["tx_profile", "reassert"] == 1, why
    assert not why["tx_profile", "probe"] and not why["tx_default", "decrease"], why
    assert isinstance(r["potential_w"], float) and r["potential_w"] <= LIMIT_KW * 1000 + 1e-6
    # Every EVSE's limit was known: which ones run a session came from that, not from the database (a storm of
    # 10,000 reconnects is 10,000 reads fewer).
    assert r["reads"] == [], r["reads"]


async def _newcomer() -> tuple[list[tuple[str, ProfilePurpose, float]], float]:
    svc, gw, world, store, bus, clock = service(IDS, LIMIT_KW)
    world.chargers["C3"].online = False  # not yet connected
    store._stations["C3"] = Station(StationId("C3"), "s", RegistrationStatus.ACCEPTED, online=False, last_seen=None,
                                    max_current_a=32.0)
    for i in IDS[:3]:
        await svc.station_ready(i)
    await drain(svc)
    await asyncio.sleep(0.4)
    await svc.replan("s")
    await drain(svc)
    gw.sent.clear()
    world.chargers["C3"].online = True
    store._stations["C3"] = Station(StationId("C3"), "s", RegistrationStatus.ACCEPTED, online=True,
                                    last_seen=clock.now(), max_current_a=32.0)
    await svc.station_ready("C3")  # never seen before: it may hold anything
    first = list(gw.sent)
    await drain(svc)
    await svc.stop()
    return first, potential_w(world)


def test_a_new_station_takes_0_a_before_its_site_plans() -> None:
    first, potential = asyncio.run(_newcomer())
    assert first == [("C3", ProfilePurpose.TX_DEFAULT, 0.0)], first
    assert potential <= LIMIT_KW * 1000 + 1e-6
