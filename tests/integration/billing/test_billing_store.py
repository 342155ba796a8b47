"""Billing persistence on SQLite and PostgreSQL: migrations, one invoice per transaction, revenue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import inspect

from csms.store.db import create_engine, migrate

from .conftest import T0, Core, run_session


async def test_migrating_twice_is_a_no_op_and_creates_the_billing_tables(db_url: str) -> None:
    engine = create_engine(db_url)
    await migrate(engine)
    await migrate(engine)
    async with engine.connect() as conn:
        names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        uniques = await conn.run_sync(lambda c: inspect(c).get_unique_constraints("invoices"))
    await engine.dispose()
    assert {"billing_sessions", "invoices", "site_load"} <= names
    assert any(u["column_names"] == ["tx_key"] for u in uniques)


async def test_one_invoice_per_transaction_and_revenue(core: Core) -> None:
    await run_session(core, "CP1", "a", "TAG1", T0, kwh=10, idle_min=40)   # 30 min overstay, capped at 2.00
    await run_session(core, "CP2", "b", "TAG2", T0 + timedelta(hours=2), kwh=5, idle_min=5)
    async with core.store.session() as s:
        row = await s.invoice("CP1/a")
        assert row is not None
        again = dict(row, id=None)
        assert await s.add_invoice({k: v for k, v in again.items() if k != "id"}) is False
    invs = await core.billing.list_invoices(limit=None)
    assert [i["tx_key"] for i in invs] == ["CP2/b", "CP1/a"]
    a = invs[1]
    assert (a["overstay_minutes"], a["overstay_fee"]) == (30, "2.00")
    assert a["subtotal"] == "5.50" and a["tax"] == "1.05" and a["total"] == "6.55"  # 3.00 + 0.50 + 2.00
    rep = await core.billing.revenue(T0, T0 + timedelta(days=1))
    assert rep["sessions"] == 2 and rep["energy_kwh"] == "15.000"
    assert Decimal(rep["total"]) == Decimal("6.55") + Decimal(invs[0]["total"])
    assert rep["by_station"]["CP1"]["total"] == "6.55"
    later = await core.billing.revenue(T0 + timedelta(hours=2), None)
    assert later["sessions"] == 1
