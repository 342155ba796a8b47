"""BillingService driven the way the OCPP adapters drive ChargingService: 1.6- and 2.0.1-shaped sessions,
overstay with a grace period, restarts, replays, meter anomalies, demand tiers and TOU splits.

The in-memory store (csms.store.memory: what the SQL stores do, tests/contract), FakeClock, no sockets: this
tests billing's logic; tests/integration/billing and tests/e2e run it on SQLite and PostgreSQL. Amounts are
exact decimal strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from csms.billing_config import BillingConfig, parse_billing
from csms.config import ChargerConfig, Config, IdTokenConfig, SiteConfig
from csms.domain.clock import FakeClock
from csms.domain.enums import ChargingState, ConnectorStatus, Measurand, TxEventKind
from csms.domain.events import DomainEvent, OverstayChanged, TransactionChanged
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import MeterSample, SampledValue, Transaction, TxEvent
from csms.services.billing import BillingService
from csms.services.bus import EventBus
from csms.services.charging import ChargingService
from csms.services.provisioning import seed_from_config
from csms.store.memory import MemoryStore

T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)  # a Monday
OVERSTAY = {"fee_per_minute": "0.10", "grace_min": 10, "warn_before_min": 5}
E1 = EvseRef(1)


def sample(at: datetime, wh: float | None = None, w: float | None = None) -> MeterSample:
    vals = []
    if wh is not None:
        vals.append(SampledValue(Measurand.ENERGY_IMPORT_WH, wh))
    if w is not None:
        vals.append(SampledValue(Measurand.POWER_IMPORT_W, w))
    return MeterSample(at, tuple(vals))


@dataclass
class Harness:
    """A CSMS core without sockets: store + bus + charging + billing on one FakeClock."""

    tmp: Path
    billing_raw: dict[str, Any]
    sites: list[SiteConfig] = field(default_factory=lambda: [SiteConfig(id="s1", grid_limit_kw=24.0)])
    chargers: tuple[str, ...] = ("CP1", "CP2")

    async def __aenter__(self) -> Harness:
        self.clock = FakeClock(T0)
        self.cfg = Config(
            sites=self.sites, chargers=[ChargerConfig(id=c, site=self.sites[0].id) for c in self.chargers],
            id_tokens=[IdTokenConfig(value="TAG1"), IdTokenConfig(value="TAG2")],
        )
        self.bc: BillingConfig = parse_billing(self.billing_raw)
        self.store = MemoryStore()
        await seed_from_config(self.store, self.cfg)
        self.bus = EventBus()
        self.events: list[DomainEvent] = []
        self.bus.subscribe(self.events.append)
        self.charging = ChargingService(self.store, self.bus, self.clock, heartbeat_interval_s=60)
        await self.new_billing()
        return self

    async def new_billing(self) -> BillingService:
        """(Re)start billing on the same database, as a CSMS restart would."""
        self.billing = BillingService(self.cfg, self.store, self.bus, self.clock, billing=self.bc)
        self.charging.cost_query = self.billing.live_cost
        await self.billing.start()
        await self.billing.drain()
        return self.billing

    async def __aexit__(self, *exc: object) -> None:
        await self.billing.stop()

    def at(self, minutes: float) -> datetime:
        self.clock.t = T0 + timedelta(minutes=minutes)
        return self.clock.t

    async def settle(self) -> None:
        await self.billing.drain()

    # --- 1.6-shaped messages --------------------------------------------------------------------
    async def status(self, minutes: float, status: ConnectorStatus, cs: ChargingState | None = None,
                     station: str = "CP1") -> None:
        await self.charging.status_changed(station, E1, status, self.at(minutes), None, cs)
        await self.settle()

    async def v16_start(self, minutes: float, meter_start: float, station: str = "CP1", tag: str = "TAG1") -> str:
        r = await self.charging.transaction(TxEvent(TxEventKind.STARTED, StationId(station), self.at(minutes), None,
                                                    E1, tag, seq_no=0, meter_start_wh=meter_start))
        await self.settle()
        assert r.charger_tx_id is not None
        return r.charger_tx_id

    async def v16_meter(self, minutes: float, tx_id: str, wh: float | None, w: float | None,
                        station: str = "CP1") -> None:
        at = self.at(minutes)
        await self.charging.meter_values(station, E1, tx_id, (sample(at, wh, w),))
        await self.settle()

    async def v16_stop(self, minutes: float, tx_id: str, meter_stop: float, reason: str = "Local",
                       station: str = "CP1") -> Any:
        r = await self.charging.transaction(TxEvent(TxEventKind.ENDED, StationId(station), self.at(minutes), tx_id,
                                                    E1, meter_stop_wh=meter_stop, stop_reason=reason))
        await self.settle()
        return r

    # --- 2.0.1-shaped messages ------------------------------------------------------------------
    async def v201(self, kind: TxEventKind, minutes: float, tx_id: str, seq: int, *, wh: float | None = None,
                   w: float | None = None, cs: ChargingState | None = None, reason: str | None = None,
                   station: str = "CP1", tag: str | None = "TAG1") -> Any:
        at = self.at(minutes)
        samples = (sample(at, wh, w),) if wh is not None or w is not None else ()
        r = await self.charging.transaction(TxEvent(kind, StationId(station), at, tx_id, E1,
                                                    tag if kind is TxEventKind.STARTED else None, seq_no=seq,
                                                    charging_state=cs, stop_reason=reason, samples=samples))
        await self.settle()
        return r

    async def invoices(self) -> list[dict[str, Any]]:
        return await self.billing.list_invoices(limit=None)

    def overstay_events(self) -> list[OverstayChanged]:
        return [e for e in self.events if isinstance(e, OverstayChanged)]


@pytest.fixture
def harness(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(billing: dict[str, Any] | None = None, **kw: Any) -> Harness:
        return Harness(tmp_path, {"overstay": OVERSTAY} if billing is None else billing, **kw)
    return make


async def v16_session_full_at_60(h: Harness) -> str:
    """Plug in, charge 12 kW for an hour (register 1000 -> 13000 Wh), EV full (SuspendedEV) at +60 min."""
    await h.status(0, ConnectorStatus.OCCUPIED, ChargingState.EV_CONNECTED)  # Preparing
    tx = await h.v16_start(0, 1000.0)
    await h.status(0, ConnectorStatus.OCCUPIED, ChargingState.CHARGING)
    for m in range(5, 61, 5):
        await h.v16_meter(m, tx, 1000.0 + 1000 * m / 5, 12000.0)
    await h.status(60, ConnectorStatus.OCCUPIED, ChargingState.SUSPENDED_EV)
    await h.v16_meter(65, tx, 13000.0, 0.0)
    return tx


def overstay_line(inv: dict[str, Any]) -> dict[str, Any]:
    [line] = [x for x in inv["lines"] if x["kind"] == "overstay"]
    return line


# --- overstay: 40 minutes after full, 10 minutes grace -> exactly 30 minutes ---------------------------
async def test_v16_stop_before_unplug_bills_exactly_30_minutes(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        tx = await v16_session_full_at_60(h)
        await h.billing.tick(h.at(66))
        await h.billing.tick(h.at(99))
        await h.v16_stop(100, tx, 13000.0)  # the driver badges out 40 min after full ...
        await h.status(100, ConnectorStatus.OCCUPIED, ChargingState.EV_CONNECTED)  # Finishing
        assert await h.invoices() == []  # ... but the bay is not free yet
        await h.status(100.5, ConnectorStatus.AVAILABLE)  # unplugged 40.5 min after full
        [inv] = await h.invoices()
    assert inv["overstay_minutes"] == 30 and overstay_line(inv)["amount"] == "3.00"
    assert inv["energy_wh"] == "12000.000" and inv["reason"] == "unplugged"
    assert [ln["amount"] for ln in inv["lines"]] == ["3.60", "3.00"]
    assert inv["total"] == "6.60"
    assert inv["overstay"]["allotted_end"] == (T0 + timedelta(minutes=60)).isoformat()
    phases = [e.phase for e in h.overstay_events()]
    assert phases == ["warning", "started", "ended"]
    assert h.overstay_events()[-1].minutes == 30 and h.overstay_events()[-1].fee == "3.00"


async def test_v201_transaction_ends_at_unplug_bills_exactly_30_minutes(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        await h.v201(TxEventKind.STARTED, 0, "t-1", 0, wh=5000.0, w=12000.0, cs=ChargingState.CHARGING)
        for i, m in enumerate(range(5, 61, 5), start=1):
            await h.v201(TxEventKind.UPDATED, m, "t-1", i, wh=5000.0 + 1000 * m / 5, w=12000.0)
        await h.v201(TxEventKind.UPDATED, 60, "t-1", 20, cs=ChargingState.SUSPENDED_EV)
        running = await h.billing.cost_so_far(await _tx(h, "CP1/t-1"))
        await h.billing.tick(h.at(80))
        view = h.billing.overstay_view(await _tx(h, "CP1/t-1"))
        assert view is not None and view["phase"] == "overstaying" and view["minutes"] == 10
        await h.v201(TxEventKind.ENDED, 100, "t-1", 21, wh=17000.0, reason="EVDisconnected")
        ended_cost = await h.charging.live_cost("CP1/t-1")  # what the 2.0.1 adapter answers the Ended with
        await h.status(100, ConnectorStatus.AVAILABLE)
        [inv] = await h.invoices()
    assert running == 3.60
    assert ended_cost == float(inv["total"])  # the final totalCost is the invoice
    assert inv["overstay_minutes"] == 30 and inv["total"] == "6.60" and inv["energy_wh"] == "12000.000"


async def test_power_near_zero_counts_as_finished_when_the_charger_keeps_saying_charging(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        await h.v201(TxEventKind.STARTED, 0, "t-2", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.UPDATED, 60, "t-2", 1, wh=11000.0, w=11000.0)
        await h.v201(TxEventKind.UPDATED, 61, "t-2", 2, wh=11000.0, w=20.0)  # EV stopped drawing
        await h.v201(TxEventKind.UPDATED, 66, "t-2", 3, wh=11000.0, w=0.0)   # confirmed (> 120 s)
        await h.v201(TxEventKind.ENDED, 101, "t-2", 4, wh=11000.0, reason="EVDisconnected")
        [inv] = await h.invoices()
    assert inv["overstay"]["allotted_end"] == (T0 + timedelta(minutes=61)).isoformat()
    assert inv["overstay_minutes"] == 30


async def test_suspended_evse_is_never_the_ev_being_full(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        await h.v201(TxEventKind.STARTED, 0, "t-3", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.UPDATED, 30, "t-3", 1, wh=5500.0, w=0.0, cs=ChargingState.SUSPENDED_EVSE)
        await h.v201(TxEventKind.UPDATED, 60, "t-3", 2, wh=5500.0, w=0.0)
        await h.v201(TxEventKind.UPDATED, 90, "t-3", 3, wh=11000.0, w=11000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.ENDED, 95, "t-3", 4, wh=11900.0, reason="EVDisconnected")
        [inv] = await h.invoices()
    assert inv["overstay_minutes"] == 0


async def _tx(h: Harness, key: str) -> Transaction:
    async with h.store.session() as s:
        tx = await s.transaction(key)
    assert tx is not None
    return tx


# --- restarts and replays -------------------------------------------------------------------------------
async def test_restart_during_overstay_still_bills_exactly_30_minutes_once(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        tx = await v16_session_full_at_60(h)
        await h.billing.tick(h.at(66))
        await h.billing.tick(h.at(85))  # overstaying for 15 min
        await h.billing.stop()  # the CSMS goes down ...
        h.at(90)
        await h.new_billing()   # ... and comes back on the same database
        await h.v16_stop(100, tx, 13000.0)
        await h.status(100.5, ConnectorStatus.AVAILABLE)
        await h.new_billing()   # and once more after the invoice: nothing happens twice
        await h.billing.tick(h.at(2000))
        invs = await h.invoices()
    assert len(invs) == 1 and invs[0]["overstay_minutes"] == 30 and invs[0]["total"] == "6.60"
    assert [e.phase for e in h.overstay_events()] == ["warning", "started", "ended"]  # not re-announced


async def test_messages_received_while_billing_was_down_are_caught_up_at_start(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        tx = await v16_session_full_at_60(h)
        await h.billing.stop()  # billing misses the stop and the unplug (crash between commit and billing)
        await h.v16_stop(100, tx, 13000.0)
        await h.charging.status_changed("CP1", E1, ConnectorStatus.AVAILABLE, h.at(100.5), None, None)
        await h.new_billing()
        [inv] = await h.invoices()
    assert inv["overstay_minutes"] == 30 and inv["total"] == "6.60"


async def test_replayed_stop_and_ended_do_not_create_or_change_an_invoice(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        tx = await v16_session_full_at_60(h)
        await h.v16_stop(100, tx, 13000.0)
        await h.status(100.5, ConnectorStatus.AVAILABLE)
        [before] = await h.invoices()
        await h.v16_stop(100, tx, 13000.0)  # the charger resends StopTransaction
        await h.v16_stop(130, tx, 14000.0)  # ... even with other values
        await h.v201(TxEventKind.STARTED, 0, "t-9", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING, station="CP2")
        await h.v201(TxEventKind.ENDED, 60, "t-9", 1, wh=11000.0, reason="EVDisconnected", station="CP2")
        await h.v201(TxEventKind.ENDED, 60, "t-9", 1, wh=11000.0, reason="EVDisconnected", station="CP2")
        await h.v201(TxEventKind.ENDED, 61, "t-9", 2, wh=12000.0, reason="EVDisconnected", station="CP2")
        # a duplicate delivery on the bus itself (at-least-once consumers) changes nothing either
        h.bus.publish(TransactionChanged(await _tx(h, f"CP1/{tx}"), False, True, h.at(140)))
        await h.status(141, ConnectorStatus.AVAILABLE)
        await h.settle()
        invs = await h.invoices()
    assert len(invs) == 2
    again = next(i for i in invs if i["tx_key"] == before["tx_key"])
    assert again == before
    cp2 = next(i for i in invs if i["station_id"] == "CP2")
    assert cp2["energy_wh"] == "11000.000"


# --- meter anomalies ------------------------------------------------------------------------------------
async def test_register_going_backwards_is_flagged_and_billed_sanely(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness({}) as h:
        await h.v201(TxEventKind.STARTED, 0, "t-a", 0, wh=100000.0, w=16000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.UPDATED, 15, "t-a", 1, wh=104000.0, w=16000.0)
        await h.v201(TxEventKind.UPDATED, 30, "t-a", 2, wh=102000.0, w=16000.0)  # backwards
        await h.v201(TxEventKind.UPDATED, 45, "t-a", 3, wh=106000.0, w=16000.0)
        await h.v201(TxEventKind.UPDATED, 60, "t-a", 4, wh=500000.0, w=16000.0)  # impossible jump
        await h.v201(TxEventKind.ENDED, 61, "t-a", 5, reason="EVDisconnected")
        [inv] = await h.invoices()
    kinds = {a["kind"] for a in inv["anomalies"]}
    assert {"register_backwards", "impossible_jump"} <= kinds
    max_wh = Decimal(32 * 230 * 3) / 4 * Decimal("1")  # 15 min at the station's max power
    assert Decimal(inv["energy_wh"]) == Decimal(4000) + 0 + Decimal(4000) + max_wh
    assert Decimal(inv["total"]) > 0 and all(Decimal(ln["amount"]) >= 0 for ln in inv["lines"])
    assert "overstay" not in {ln["kind"] for ln in inv["lines"]}  # no overstay section: no fee


# --- demand tiers ---------------------------------------------------------------------------------------
async def test_demand_tiers_follow_site_utilisation(harness) -> None:  # type: ignore[no-untyped-def]
    tiers = [{"name": "medium", "from_utilisation": 0.5, "multiplier": 1.2},
             {"name": "high", "from_utilisation": 0.8, "multiplier": 1.5}]
    async with harness({"tariff": {"demand_tiers": tiers}}) as h:
        await h.v201(TxEventKind.STARTED, 0, "a", 0, wh=0.0, w=12000.0, cs=ChargingState.CHARGING)
        seq = {"a": 1, "b": 1}
        for m in range(5, 61, 5):
            await h.v201(TxEventKind.UPDATED, m, "a", seq["a"], wh=1000.0 * m / 5, w=12000.0)
            seq["a"] += 1
            if m == 30:
                await h.v201(TxEventKind.STARTED, 30, "b", 0, wh=0.0, w=12000.0, cs=ChargingState.CHARGING,
                             station="CP2", tag="TAG2")
            elif m > 30:
                await h.v201(TxEventKind.UPDATED, m, "b", seq["b"], wh=1000.0 * (m - 30) / 5, w=12000.0,
                             station="CP2")
                seq["b"] += 1
        await h.v201(TxEventKind.ENDED, 60, "a", 99, reason="EVDisconnected")
        await h.v201(TxEventKind.ENDED, 60, "b", 99, reason="EVDisconnected", station="CP2")
        invs = {i["station_id"]: i for i in await h.invoices()}
    a_lines = [(ln["quantity"], ln["unit_price"], ln["amount"]) for ln in invs["CP1"]["lines"]]
    assert a_lines == [("6.000", "0.360", "2.16"), ("6.000", "0.450", "2.70")]  # 12 of 24 kW, then 24 of 24
    b_lines = [(ln["quantity"], ln["unit_price"], ln["amount"]) for ln in invs["CP2"]["lines"]]
    assert b_lines == [("6.000", "0.450", "2.70")]
    assert "high" in invs["CP2"]["lines"][0]["description"]


async def test_utilisation_is_measured_against_the_planners_limit(harness) -> None:  # type: ignore[no-untyped-def]
    """The site's limit as the planner sees it (services.site_limits): a limit-schedule window from 10:32
    halves it. Load buckets are cut exactly at the window's edge, even one a single row spans."""
    tiers = [{"name": "medium", "from_utilisation": 0.5, "multiplier": 1.2},
             {"name": "high", "from_utilisation": 0.8, "multiplier": 1.5}]
    evening = [SiteConfig(id="s1", grid_limit_kw=24.0,
                          limit_schedule=[{"start": "10:32", "end": "12:00", "limit_kw": 12}])]
    async with harness({"tariff": {"demand_tiers": tiers}}, sites=evening) as h:
        await h.v201(TxEventKind.STARTED, 0, "a", 0, wh=0.0, w=12000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.UPDATED, 30, "a", 1, wh=6000.0, w=12000.0)
        await h.v201(TxEventKind.UPDATED, 60, "a", 2, wh=12000.0, w=12000.0)
        await h.v201(TxEventKind.ENDED, 60, "a", 99, reason="EVDisconnected")
        [inv] = await h.invoices()
    lines = [(ln["quantity"], ln["unit_price"], ln["amount"]) for ln in inv["lines"]]
    assert lines == [("6.400", "0.360", "2.30"), ("5.600", "0.450", "2.52")]  # 12 of 24 kW, then 12 of 12


# --- TOU ------------------------------------------------------------------------------------------------
async def test_tou_split_in_site_local_time_with_fees_tax_and_overstay(harness) -> None:  # type: ignore[no-untyped-def]
    """The docs/billing.md example, end to end through the service: Berlin, Monday 15 January 2024."""
    raw = {"tariff": {"session_fee": "0.50", "tax_rate": "0.19",
                      "tou_windows": [{"days": "weekdays", "start": "17:00", "end": "21:00", "price_per_kwh": "0.45",
                                       "name": "peak"}]},
           "overstay": {"fee_per_minute": "0.10", "grace_min": 10}}
    berlin = [SiteConfig(id="s1", grid_limit_kw=24.0, timezone="Europe/Berlin")]
    async with harness(raw, sites=berlin) as h:
        base = datetime(2024, 1, 15, 15, 30, tzinfo=UTC)
        off = (base - T0) / timedelta(minutes=1)
        tx = await h.v16_start(off, 0.0)
        await h.status(off, ConnectorStatus.OCCUPIED, ChargingState.CHARGING)
        await h.v16_meter(off + 30, tx, 5500.0, 11000.0)
        await h.v16_meter(off + 60, tx, 11000.0, 0.0)
        await h.status(off + 60, ConnectorStatus.OCCUPIED, ChargingState.SUSPENDED_EV)
        await h.v16_stop(off + 99, tx, 11000.0)
        await h.status(off + 100, ConnectorStatus.AVAILABLE)
        [inv] = await h.invoices()
    assert [(ln["description"], ln["quantity"], ln["amount"]) for ln in inv["lines"]] == [
        ("Energy, standard period", "5.500", "1.65"), ("Energy, peak period", "5.500", "2.48"),
        ("Session fee", "1", "0.50"), ("Overstay", "30", "3.00")]
    assert (inv["subtotal"], inv["tax"], inv["total"]) == ("7.63", "1.45", "9.08")


# --- safety timeout, exempt groups, hooks ---------------------------------------------------------------
async def test_no_unplug_seen_finalises_after_the_timeout_with_the_observed_occupancy(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness({"overstay": OVERSTAY, "finalize_after_h": 2}) as h:
        tx = await v16_session_full_at_60(h)
        await h.v16_stop(70, tx, 13000.0)
        await h.status(75, ConnectorStatus.OCCUPIED, ChargingState.EV_CONNECTED)  # Finishing, then silence
        await h.billing.tick(h.at(180))
        assert await h.invoices() == []
        await h.billing.tick(h.at(191))
        [inv] = await h.invoices()
    assert inv["reason"] == "timeout" and inv["session_end"] == T0 + timedelta(minutes=75)
    assert inv["overstay_minutes"] == 5


async def test_booking_end_hook_sets_the_allotted_end(harness) -> None:  # type: ignore[no-untyped-def]
    raw = {"overstay": {**OVERSTAY, "allotted_by": "booking_end"}}
    async with harness(raw) as h:
        async def booking_end(tx: Transaction) -> datetime | None:
            return T0 + timedelta(minutes=90)
        h.billing.booking_end_fn = booking_end
        tx = await v16_session_full_at_60(h)
        await h.v16_stop(100, tx, 13000.0)
        await h.status(130, ConnectorStatus.AVAILABLE)
        [inv] = await h.invoices()
    assert inv["overstay_minutes"] == 30  # 130 - (90 + 10)


async def test_prices_per_slot_for_the_optimizer(harness) -> None:  # type: ignore[no-untyped-def]
    raw = {"tariff": {"tou_windows": [{"days": "all", "start": "10:30", "end": "11:00", "price_per_kwh": "0.50"}]}}
    async with harness(raw) as h:
        prices = h.billing.prices_per_slot("s1", T0, 900, 4)
    assert prices == (0.30, 0.30, 0.50, 0.50)


async def test_csms_pause_after_the_stated_need_is_delivered_counts_as_finished(harness) -> None:  # type: ignore[no-untyped-def]
    from csms.domain.model import ChargingNeeds

    async with harness() as h:
        await h.v201(TxEventKind.STARTED, 0, "t-n", 0, wh=0.0, w=12000.0, cs=ChargingState.CHARGING)
        await h.charging.charging_needs(ChargingNeeds(StationId("CP1"), E1, h.at(0), energy_amount_wh=6000.0))
        await h.v201(TxEventKind.UPDATED, 30, "t-n", 1, wh=6000.0, w=0.0, cs=ChargingState.SUSPENDED_EVSE)
        await h.v201(TxEventKind.ENDED, 70, "t-n", 2, wh=6000.0, reason="EVDisconnected")
        [inv] = await h.invoices()
    assert inv["overstay"]["allotted_end"] == (T0 + timedelta(minutes=30)).isoformat()
    assert inv["overstay_minutes"] == 30


# --- exactly once: timers never bury events, reconciliation repairs what the worker missed --------------
async def test_timer_ticks_never_pile_up_behind_a_busy_worker(harness) -> None:  # type: ignore[no-untyped-def]
    """The office scenario's lost invoices: at 1800x, a tick every 8 ms of real time was queued whether or not
    the last one was handled, the queue grew to thousands and the run ended with the ends still queued. Here
    an hour of 15-s ticks passes while the worker is busy with the store: at most one tick (and one
    reconciliation) may wait, and the session's events still get through."""
    async with harness({"overstay": OVERSTAY, "tick_s": 15, "reconcile_interval_s": 60}) as h:
        await h.v201(TxEventKind.STARTED, 0, "t-q", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING)
        most = 0
        for _ in range(240):
            await h.clock.run_for(seconds=15)
            most = max(most, h.billing._queue.qsize())
        await h.v201(TxEventKind.ENDED, 61, "t-q", 1, wh=11000.0, reason="EVDisconnected")
        [inv] = await h.invoices()
    assert most <= 2
    assert inv["energy_wh"] == "11000.000"


async def _lose_events(h: Harness) -> Any:
    """Billing stops hearing the bus (as when the worker fails on every event during a store outage);
    returns a function that reconnects it."""
    h.billing._unsubscribe()
    return lambda: h.bus.subscribe(h.billing._on_event)


async def test_reconciliation_completes_an_end_and_an_unplug_billing_never_saw(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        tx = await v16_session_full_at_60(h)
        reconnect = await _lose_events(h)
        await h.v16_stop(100, tx, 13000.0)
        await h.status(100.5, ConnectorStatus.AVAILABLE)
        reconnect()
        assert await h.invoices() == []
        await h.billing.reconcile()  # seen once: may be an event on its way, not repaired yet
        assert await h.invoices() == []
        await h.billing.reconcile()
        [inv] = await h.invoices()
        await h.billing.reconcile()  # a third pass finds nothing to do and bills nothing twice
        assert len(await h.invoices()) == 1
        status = h.billing.status()
    assert inv["overstay_minutes"] == 30 and inv["total"] == "6.60" and inv["reason"] == "unplugged"
    assert status["repairs"]["missing_end"] == 1 and status["uninvoiced_ended"] == 0


async def test_reconciliation_tracks_a_transaction_billing_never_heard_of(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        reconnect = await _lose_events(h)
        await h.v201(TxEventKind.STARTED, 0, "t-u", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.UPDATED, 30, "t-u", 1, wh=5500.0, w=11000.0)
        reconnect()
        await h.billing.reconcile()
        await h.billing.reconcile()
        assert h.billing.status()["repairs"]["untracked_active"] == 1
        await h.v201(TxEventKind.ENDED, 60, "t-u", 2, wh=11000.0, reason="EVDisconnected")
        [inv] = await h.invoices()
        reconnect = await _lose_events(h)
        await h.v201(TxEventKind.STARTED, 70, "t-v", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.ENDED, 130, "t-v", 1, wh=11000.0, reason="EVDisconnected")
        reconnect()
        await h.billing.reconcile()
        await h.billing.reconcile()
        invs = await h.invoices()
        status = h.billing.status()
    assert inv["energy_wh"] == "11000.000"
    assert len(invs) == 2 and status["repairs"]["untracked_ended"] == 1 and status["uninvoiced_ended"] == 0


async def test_reconciliation_runs_on_its_timer(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness({"reconcile_interval_s": 300}) as h:
        reconnect = await _lose_events(h)
        await h.v201(TxEventKind.STARTED, 0, "t-t", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.ENDED, 60, "t-t", 1, wh=11000.0, reason="EVDisconnected")
        reconnect()
        assert await h.invoices() == []
        await h.clock.run_for(seconds=601)  # two passes
        await h.settle()
        [inv] = await h.invoices()
    assert inv["energy_wh"] == "11000.000"


async def test_gap_counts_ended_transactions_waiting_for_an_invoice(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        tx = await v16_session_full_at_60(h)
        await h.v16_stop(100, tx, 13000.0)  # ended, the bay not yet free: owed an invoice, not overdue
        await h.billing.reconcile()
        waiting = h.billing.status()
        await h.status(101, ConnectorStatus.AVAILABLE)
        await h.billing.reconcile()
        done = h.billing.status()
    assert (waiting["uninvoiced_ended"], waiting["overdue"]) == (1, 0)
    assert (done["uninvoiced_ended"], done["overdue"]) == (0, 0)


# --- one price path: the live cost is the invoice as if the session ended now ---------------------------
async def test_a_stale_live_cost_is_answered_at_once_and_repriced_in_the_background(harness) -> None:  # type: ignore[no-untyped-def]
    """Issue 10: re-pricing every 2.0.1 session's samples on its message path held dozens of database
    connections at once at 10,000 chargers. A figure older than a minute is answered as it is (the charger
    is not kept waiting) and re-priced behind it; the sessions API still gets one at most a minute old."""
    async with harness() as h:
        await h.v201(TxEventKind.STARTED, 0, "t-s", 0, wh=0.0, w=12000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.UPDATED, 10, "t-s", 1, wh=2000.0, w=12000.0)
        first = await h.charging.live_cost("CP1/t-s")  # nothing known yet: priced now
        await h.v201(TxEventKind.UPDATED, 30, "t-s", 2, wh=6000.0, w=12000.0)
        stale = await h.charging.live_cost("CP1/t-s")  # 20 minutes old: answered from the cache
        await h.billing.live_costs_refreshed()
        repriced = await h.charging.live_cost("CP1/t-s")
        await h.v201(TxEventKind.UPDATED, 45, "t-s", 3, wh=9000.0, w=12000.0)
        api = await h.billing.cost_so_far(await _tx(h, "CP1/t-s"))  # the API waits for a fresh figure
    assert (first, stale, repriced, api) == (0.60, 0.60, 1.80, 2.70)


async def test_first_live_costs_beyond_the_inline_limit_come_with_the_next_message(harness) -> None:  # type: ignore[no-untyped-def]
    """A restart or a boot storm asks for thousands of first figures at once: beyond `live_cost_inline`
    in flight the answer has no totalCost (optional in 2.0.1) and the figure is priced in the background."""
    async with harness() as h:
        h.billing.live_cost_inline = 0
        await h.v201(TxEventKind.STARTED, 0, "t-f", 0, wh=0.0, w=12000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.UPDATED, 10, "t-f", 1, wh=2000.0, w=12000.0)
        none_yet = await h.charging.live_cost("CP1/t-f")
        await h.billing.live_costs_refreshed()
        known = await h.charging.live_cost("CP1/t-f")
        await h.v201(TxEventKind.ENDED, 20, "t-f", 2, wh=4000.0, reason="EVDisconnected")
        ended = await h.charging.live_cost("CP1/t-f")  # the Ended answer is always priced, and is the invoice
        await h.status(20, ConnectorStatus.AVAILABLE)
        [inv] = await h.invoices()
    assert (none_yet, known) == (None, 0.60)
    assert ended == float(inv["total"]) == 1.20


async def test_live_cost_of_a_car_held_at_0_a_by_the_plan_carries_no_overstay(harness) -> None:  # type: ignore[no-untyped-def]
    """UX-0001: held at 0 A by the planner, the live cost grew 0.95 -> 3.33 (the overstay cap inferred from
    the meter) while no overstay was ever billed. The live figure is the invoice as if it ended now."""
    async with harness({"overstay": {**OVERSTAY, "cap": "2.00"}, "tariff": {"tax_rate": "0.19"}}) as h:
        await h.v201(TxEventKind.STARTED, 0, "t-h", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.UPDATED, 30, "t-h", 1, wh=5500.0, w=0.0, cs=ChargingState.SUSPENDED_EVSE)
        costs = []
        for i, m in enumerate((45, 60, 90, 120), start=2):
            await h.v201(TxEventKind.UPDATED, m, "t-h", i, wh=5500.0, w=0.0)
            costs.append(await h.charging.live_cost("CP1/t-h"))
        await h.v201(TxEventKind.ENDED, 130, "t-h", 9, wh=5500.0, reason="EVDisconnected")
        final = await h.charging.live_cost("CP1/t-h")
        [inv] = await h.invoices()
    assert costs == [1.96] * 4  # 5.5 kWh x 0.30 x 1.19
    assert inv["overstay_minutes"] == 0 and final == float(inv["total"]) == 1.96


async def test_live_cost_follows_the_invoice_while_overstaying(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        await h.v201(TxEventKind.STARTED, 0, "t-o", 0, wh=0.0, w=12000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.UPDATED, 60, "t-o", 1, wh=12000.0, w=0.0, cs=ChargingState.SUSPENDED_EV)
        await h.v201(TxEventKind.UPDATED, 85, "t-o", 2, wh=12000.0, w=0.0)
        at_85 = await h.charging.live_cost("CP1/t-o")  # 15 min past the 10-min grace
        await h.v201(TxEventKind.ENDED, 100, "t-o", 3, wh=12000.0, reason="EVDisconnected")
        final = await h.charging.live_cost("CP1/t-o")
        [inv] = await h.invoices()
    assert at_85 == 3.60 + 1.50
    assert final == float(inv["total"]) == 6.60


async def test_live_cost_equals_the_invoice_with_demand_tiers_when_others_charge_on(harness) -> None:  # type: ignore[no-untyped-def]
    """Issue 11: with demand tiers the live cost could differ from the invoice. A driver stops at 22 min (not
    the unplug: the invoice comes at 41) while a second car charges on. The 20-25 min load bucket then held
    both cars (24 of 24 kW, high) until the stop and one car after it, so the invoice priced the 20-21 min
    reading with the whole bucket's mean (16.8 of 24 kW, medium): 1.69 against the live 1.71. A transaction's
    end now closes the bucket: the session is priced with the load up to its end, as its live cost was."""
    tiers = [{"name": "medium", "from_utilisation": 0.5, "multiplier": 1.2},
             {"name": "high", "from_utilisation": 0.8, "multiplier": 1.5}]
    async with harness({"tariff": {"demand_tiers": tiers}}) as h:
        await h.v201(TxEventKind.STARTED, 0, "a", 0, wh=0.0, w=12000.0, cs=ChargingState.CHARGING)
        seq = {"a": 1, "b": 1}

        async def reading(tx: str, m: int, since: int) -> None:
            await h.v201(TxEventKind.UPDATED, m, tx, seq[tx], wh=200.0 * (m - since), w=12000.0,
                         station="CP1" if tx == "a" else "CP2")
            seq[tx] += 1
        for m in range(3, 22, 3):
            await reading("a", m, 0)
            if m == 12:
                await h.v201(TxEventKind.STARTED, 12, "b", 0, wh=0.0, w=12000.0, cs=ChargingState.CHARGING,
                             station="CP2", tag="TAG2")
            elif m > 12:
                await reading("b", m, 12)
        h.at(22)
        live = await h.charging.live_cost("CP1/a")
        await h.v201(TxEventKind.ENDED, 22, "a", 99, reason="Local")  # the car stays plugged in
        for m in range(24, 41, 3):
            await reading("b", m, 12)
        await h.status(41, ConnectorStatus.AVAILABLE)
        [inv] = [i for i in await h.invoices() if i["station_id"] == "CP1"]
    assert inv["reason"] == "unplugged"
    assert live == float(inv["total"]) == 1.71
    energy = [(ln["quantity"], ln["unit_price"]) for ln in inv["lines"] if ln["kind"] == "energy"]
    # 0-10 min: 12 of 24 kW (medium); then buckets with both cars (high), the 20-21 min reading included
    assert energy == [("2.000", "0.360"), ("2.200", "0.450")]


# --- overstay is the driver's -----------------------------------------------------------------------------
async def test_operator_remote_stop_is_not_the_car_being_done(harness) -> None:  # type: ignore[no-untyped-def]
    """Issue 11: a remote stop counted as "charging finished" and billed the driver's walk back to the car."""
    async with harness() as h:
        await h.status(0, ConnectorStatus.OCCUPIED, ChargingState.EV_CONNECTED)
        tx = await h.v16_start(0, 1000.0)
        await h.status(0, ConnectorStatus.OCCUPIED, ChargingState.CHARGING)
        await h.v16_meter(30, tx, 7000.0, 12000.0)
        await h.v16_stop(40, tx, 9000.0, reason="Remote")  # an operator stops it, the car still charging
        await h.status(40, ConnectorStatus.OCCUPIED, ChargingState.EV_CONNECTED)  # Finishing
        await h.status(100, ConnectorStatus.AVAILABLE)  # the driver comes back an hour later
        [inv] = await h.invoices()
    assert inv["overstay_minutes"] == 0 and "overstay" not in {ln["kind"] for ln in inv["lines"]}


async def test_remote_stop_after_the_car_was_full_leaves_the_drivers_overstay(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        tx = await v16_session_full_at_60(h)  # full at 60: from then on the idle time is the driver's
        await h.v16_stop(90, tx, 13000.0, reason="Remote")
        await h.status(110, ConnectorStatus.AVAILABLE)
        [inv] = await h.invoices()
    assert inv["overstay_minutes"] == 40  # 110 - (60 + 10 grace)


async def test_a_fault_while_charging_is_not_overstay(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        await h.status(0, ConnectorStatus.OCCUPIED, ChargingState.EV_CONNECTED)
        tx = await h.v16_start(0, 0.0)
        await h.status(0, ConnectorStatus.OCCUPIED, ChargingState.CHARGING)
        await h.v16_meter(30, tx, 6000.0, 12000.0)
        await h.status(31, ConnectorStatus.FAULTED)              # the charger fails ...
        await h.v16_meter(36, tx, 6000.0, 0.0)                     # ... no power (not the car being full)
        await h.status(40, ConnectorStatus.OCCUPIED, ChargingState.SUSPENDED_EV)  # back, the car idle
        await h.v16_stop(45, tx, 6000.0, reason="Other")
        await h.billing.tick(h.at(90))
        await h.status(100, ConnectorStatus.AVAILABLE)
        [inv] = await h.invoices()
    assert inv["overstay_minutes"] == 0 and inv["energy_wh"] == "6000.000"


async def test_a_fault_then_charging_again_then_full_counts_from_the_real_finish(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        await h.v201(TxEventKind.STARTED, 0, "t-f", 0, wh=0.0, w=12000.0, cs=ChargingState.CHARGING)
        await h.status(20, ConnectorStatus.FAULTED)
        await h.v201(TxEventKind.UPDATED, 25, "t-f", 1, wh=4000.0, w=0.0)  # below threshold: ignored
        await h.v201(TxEventKind.UPDATED, 30, "t-f", 2, wh=4000.0, w=12000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.UPDATED, 60, "t-f", 3, wh=10000.0, w=0.0, cs=ChargingState.SUSPENDED_EV)
        await h.v201(TxEventKind.ENDED, 100, "t-f", 4, wh=10000.0, reason="EVDisconnected")
        [inv] = await h.invoices()
    assert inv["overstay_minutes"] == 30  # 100 - (60 + 10)


async def test_an_unavailable_connector_stops_the_overstay_count(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        tx = await v16_session_full_at_60(h)
        await h.status(85, ConnectorStatus.UNAVAILABLE)  # the operator takes the bay out of service
        await h.v16_stop(130, tx, 13000.0)
        await h.status(140, ConnectorStatus.AVAILABLE)
        [inv] = await h.invoices()
    assert inv["overstay_minutes"] == 15  # 85 - (60 + 10), not 140 - 70


async def test_held_at_0_a_by_the_plan_then_unplugged_is_not_overstay(harness) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        await h.v201(TxEventKind.STARTED, 0, "t-p", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING)
        await h.v201(TxEventKind.UPDATED, 20, "t-p", 1, wh=3700.0, w=0.0, cs=ChargingState.SUSPENDED_EVSE)
        await h.billing.tick(h.at(100))
        await h.v201(TxEventKind.UPDATED, 110, "t-p", 2, wh=3700.0, w=0.0)
        await h.billing.tick(h.at(150))
        await h.v201(TxEventKind.ENDED, 160, "t-p", 3, wh=3700.0, reason="EVDisconnected")
        [inv] = await h.invoices()
    assert inv["overstay_minutes"] == 0 and [e.phase for e in h.overstay_events()] == []


async def test_a_billing_backlog_keeps_the_site_load_meter_in_event_order(harness) -> None:  # type: ignore[no-untyped-def]
    """Billing behind the clock (a 3600x simulated day: hours of meter values queued): the timer's tick,
    handled late, advances the site-load meter only to when it was queued. Advancing to the clock's now
    folded the backlog's hours into one bucket at the power before them (GET /sites/{id}/load-history
    showed 14 flat hours over the limit)."""
    from csms.domain.events import MeterSampled
    from csms.services.billing.service import _Tick

    async with harness({}) as h:
        await h.v201(TxEventKind.STARTED, 0, "a", 0, wh=0.0, w=12000.0, cs=ChargingState.CHARGING)
        # queued without the worker running in between: what a backlog looks like
        h.at(10)
        h.billing._queue.put_nowait(MeterSampled("CP1", E1, 12000.0, 2000.0, T0 + timedelta(minutes=5)))
        h.billing._enqueue_timer(_Tick)                                     # queued at +10 min
        h.billing._queue.put_nowait(MeterSampled("CP1", E1, 2000.0, 2000.0, T0 + timedelta(minutes=10)))
        h.at(60)                                                            # the clock runs on meanwhile
        h.billing._queue.put_nowait(MeterSampled("CP1", E1, 2000.0, 2300.0, T0 + timedelta(minutes=20)))
        await h.settle()
        async with h.store.session() as s:
            rows = await s.site_load("s1", T0, T0 + timedelta(hours=2))
    load = {(r.start - T0).total_seconds() / 60: r.mean_power_w for r in rows}
    assert load[0] == load[5] == 12000.0
    assert load[10] == load[15] == 2000.0, load   # the power from +10 min, where it was measured


# --- a transaction start (issue 10: half of a boot ramp's chargers start one) ----------------------------------
def count_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    from csms.store.memory import MemorySession

    calls = {"billing_session": 0, "invoice": 0, "latest_charging_needs": 0}
    for name in calls:
        orig = getattr(MemorySession, name)

        async def counted(self: Any, *a: Any, _orig: Any = orig, _name: str = name, **k: Any) -> Any:
            calls[_name] += 1
            return await _orig(self, *a, **k)

        monkeypatch.setattr(MemorySession, name, counted)
    return calls


async def test_a_transaction_start_reads_no_billing_session_invoice_or_needs(
        harness, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    async with harness() as h:
        calls = count_reads(monkeypatch)
        await h.v201(TxEventKind.STARTED, 20, "t-1", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING)
        await h.v16_start(21, 0.0, station="CP2")
        assert calls == {"billing_session": 0, "invoice": 0, "latest_charging_needs": 0}
        assert len(h.billing._tracks) == 2  # both tracked


async def test_needs_stated_before_the_start_still_count(harness, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from csms.domain.model import ChargingNeeds

    async with harness() as h:
        # ISO 15118: the car states its needs before the transaction starts (within NEEDS_BEFORE_START).
        await h.charging.charging_needs(ChargingNeeds(StationId("CP1"), E1, h.at(20), energy_amount_wh=6000.0))
        await h.settle()
        calls = count_reads(monkeypatch)
        await h.v201(TxEventKind.STARTED, 22, "t-1", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING)
        assert h.billing._tracks["CP1/t-1"].energy_need_wh == 6000.0
        assert calls["latest_charging_needs"] == 1  # this EVSE had needs in the window: read them


async def test_needs_stated_before_a_billing_restart_still_count(harness) -> None:  # type: ignore[no-untyped-def]
    from csms.domain.model import ChargingNeeds

    async with harness() as h:
        await h.charging.charging_needs(ChargingNeeds(StationId("CP1"), E1, h.at(20), energy_amount_wh=6000.0))
        await h.settle()
        await h.billing.stop()
        h.at(21)
        await h.new_billing()  # it never saw those needs: the start reads them from the store
        await h.v201(TxEventKind.STARTED, 22, "t-1", 0, wh=0.0, w=11000.0, cs=ChargingState.CHARGING)
        assert h.billing._tracks["CP1/t-1"].energy_need_wh == 6000.0


async def test_a_tick_over_many_open_sessions_lets_the_event_loop_run(tmp_path: Path) -> None:
    """The tick visits every open session; at 5,000 sessions one uninterrupted pass held the event loop (and
    every charger's answer) each tick_s. It now yields every TICK_YIELD_EVERY sessions."""
    import asyncio

    from csms.services.billing.service import TICK_YIELD_EVERY

    chargers = tuple(f"CP{i}" for i in range(3 * TICK_YIELD_EVERY))
    async with Harness(tmp_path, {"enabled": True}, chargers=chargers) as h:
        for c in chargers:
            await h.v16_start(1, 0, station=c)
        ran = 0

        async def probe() -> None:
            nonlocal ran
            while True:
                await asyncio.sleep(0)
                ran += 1

        await asyncio.sleep(0)
        task = asyncio.create_task(probe())
        await asyncio.sleep(0)
        before = ran
        await h.billing.tick(h.at(2))
        task.cancel()
        assert ran - before >= 3
