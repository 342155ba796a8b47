"""BillingRepo: the same behaviour from every store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from csms.domain.model import Transaction
from csms.domain.records import BillingSession, InvoiceRecord

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def invoice_for(t: Transaction, *, end: datetime | None = None, site: str | None = "depot",
                total: str = "6.55") -> InvoiceRecord:
    return InvoiceRecord(
        tx_key=t.key, station_id=t.station_id, charger_tx_id=t.charger_tx_id, evse_id=t.evse.evse_id,
        site_id=site, id_token=t.id_token, group=None, currency="EUR", session_start=t.started_at,
        session_end=end or t.ended_at or t.started_at, finalised_at=T0 + timedelta(days=1), reason="unplugged",
        energy_wh="10000.0", subtotal="5.50", tax="1.05", total=total, overstay_minutes=30, overstay_fee="2.00",
        lines=({"kind": "energy", "amount": "3.00"}, {"kind": "overstay", "amount": "2.00"}),
        anomalies=({"kind": "meter_gap", "at": "2026-12-01T08:10:00+00:00"},),
        data={"tariff": "default", "tax_rate": "0.19", "overstay": {"minutes": 30}})


def _track(key: str, start_min: int, site_id: str | None = "depot", **kw: Any) -> BillingSession:
    return BillingSession(tx_key=key, station_id=key.split("/")[0], evse_id=1, site_id=site_id,
                          started_at=T0 + timedelta(minutes=start_min), **kw)


async def test_billing_sessions_round_trip_and_replace(store: Any) -> None:
    full = _track("A/1", 0, ended_at=T0 + timedelta(hours=1), drew_power=True,
                  charging_finished_at=T0 + timedelta(minutes=40), low_power_since=T0 + timedelta(minutes=35),
                  unplugged_at=T0 + timedelta(minutes=70), last_occupied_at=T0 + timedelta(minutes=70),
                  stated_departure=T0 + timedelta(hours=2), overstay_phase="overstaying", finalised=False,
                  updated_at=T0 + timedelta(minutes=70))
    async with store.session() as s:
        assert await s.billing_session("A/1") is None
        await s.save_billing_session(_track("A/1", 0))
        await s.save_billing_session(_track("B/2", -10, site_id=None))
    async with store.session() as s:
        assert await s.billing_session("A/1") == _track("A/1", 0)
        await s.save_billing_session(full)
    async with store.session() as s:
        assert await s.billing_session("A/1") == full
        assert [b.tx_key for b in await s.open_billing_sessions()] == ["B/2", "A/1"]  # oldest start first
        await s.save_billing_session(replace(full, finalised=True))
    async with store.session() as s:
        assert await s.open_billing_sessions() == [_track("B/2", -10, site_id=None)]


async def test_a_session_reads_the_billing_rows_it_saved(store: Any) -> None:
    """The SQL stores write billing rows with the batch (one upsert): a read in the same session sees the
    last state saved."""
    async with store.session() as s:
        await s.save_billing_session(_track("A/1", 0))
        assert await s.billing_session("A/1") == _track("A/1", 0)
        await s.save_billing_session(_track("A/1", 0, drew_power=True))
        await s.save_billing_session(_track("A/1", 0, drew_power=True, finalised=True))
        assert await s.open_billing_sessions() == []
        await s.save_billing_session(_track("B/2", 5))
    async with store.session() as s:
        assert await s.billing_session("A/1") == _track("A/1", 0, drew_power=True, finalised=True)
        assert [b.tx_key for b in await s.open_billing_sessions()] == ["B/2"]


def _tx(station: str, charger_id: str, end_min: int, token: str = "TAG") -> Transaction:
    from .test_transactions import tx

    return tx(station, charger_id, token=token, ended_min=end_min)


async def test_one_invoice_per_transaction(store: Any) -> None:
    inv = invoice_for(_tx("A", "1", 30))
    async with store.session() as s:
        assert await s.invoice(inv.tx_key) is None
        assert await s.add_invoice(inv) is True
        assert await s.add_invoice(replace(inv, total="9.99")) is False  # nothing written
    async with store.session() as s:
        assert await s.invoice(inv.tx_key) == inv


async def test_invoices_by_session_end_newest_first_with_filters(store: Any) -> None:
    invs = [invoice_for(_tx("A", "1", 10, "T1")), invoice_for(_tx("A", "2", 20, "T2"), site="other"),
            invoice_for(_tx("B", "3", 30, "T1")), invoice_for(_tx("B", "4", 40, "T2"))]
    async with store.session() as s:
        for inv in invs:
            assert await s.add_invoice(inv)
    async with store.session() as s:
        assert [i.charger_tx_id for i in await s.invoices()] == ["4", "3", "2", "1"]
        assert [i.charger_tx_id for i in await s.invoices(since=T0 + timedelta(minutes=20),
                                                          until=T0 + timedelta(minutes=40))] == ["3", "2"]
        assert [i.charger_tx_id for i in await s.invoices(station_id="A")] == ["2", "1"]
        assert [i.charger_tx_id for i in await s.invoices(site_id="other")] == ["2"]
        assert [i.charger_tx_id for i in await s.invoices(id_tokens=["T1"])] == ["3", "1"]
        assert [i.charger_tx_id for i in await s.invoices(offset=1, limit=2)] == ["3", "2"]
        assert len(await s.invoices(limit=None)) == 4
        assert (await s.invoices(station_id="A"))[1] == invs[0]
