"""Billing persistence on SQLite and PostgreSQL: migrations, one invoice per transaction, revenue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import inspect

from csms.domain.records import BillingSession
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
        assert await s.add_invoice(row) is False
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


async def test_meter_values_of_a_running_session_do_not_rewrite_its_billing_row(core: Core) -> None:
    """One UPDATE per meter value was a quarter of the billing work under load (issue 10). A reading that
    changes only when the bay was last occupied is not written while the session runs (the end decides);
    a change billing needs after a restart (the car stops drawing, the end) is written at once."""
    from csms.domain.enums import ChargingState, Measurand, TxEventKind
    from csms.domain.ids import EvseRef, StationId
    from csms.domain.model import MeterSample, SampledValue, TxEvent

    def ev(kind: TxEventKind, minute: int, seq: int, power_w: float, **kw: object) -> TxEvent:
        at = T0 + timedelta(minutes=minute)
        core.clock.t = at
        smp = (MeterSample(at, (SampledValue(Measurand.ENERGY_IMPORT_WH, 200.0 * minute),
                                SampledValue(Measurand.POWER_IMPORT_W, power_w))),)
        return TxEvent(kind, StationId("CP1"), at, "r", EvseRef(1), seq_no=seq, samples=smp, **kw)  # type: ignore[arg-type]

    async def row() -> BillingSession:
        await core.billing.drain()
        async with core.store.session() as s:
            r = await s.billing_session("CP1/r")
        assert r is not None
        return r

    await core.charging.transaction(ev(TxEventKind.STARTED, 0, 0, 12000.0, id_token="TAG1",
                                       charging_state=ChargingState.CHARGING))
    first = await row()
    for m in range(1, 6):
        await core.charging.transaction(ev(TxEventKind.UPDATED, m, m, 12000.0,
                                           charging_state=ChargingState.CHARGING))
    assert await row() == first  # five readings, nothing billing keeps changed
    await core.charging.transaction(ev(TxEventKind.UPDATED, 6, 6, 0.0, charging_state=ChargingState.SUSPENDED_EV))
    stopped = await row()
    assert stopped.updated_at == T0 + timedelta(minutes=6)
    assert stopped.low_power_since is not None or stopped.charging_finished_at is not None
    await core.charging.transaction(ev(TxEventKind.ENDED, 9, 7, 0.0, stop_reason="EVDisconnected"))
    ended = await row()
    assert ended.ended_at == T0 + timedelta(minutes=9) and ended.last_occupied_at == T0 + timedelta(minutes=9)
