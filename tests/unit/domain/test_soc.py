"""SoC reaches the transaction (sessions API, MQTT): chargers report it at location EV."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.domain import transactions
from csms.domain.enums import Measurand, TxEventKind
from csms.domain.ids import EvseRef, StationId, TransactionKey
from csms.domain.model import MeterSample, SampledValue, TxEvent

T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)


def test_soc_at_location_ev_is_the_transactions_soc() -> None:
    smp = MeterSample(T0, (SampledValue(Measurand.ENERGY_IMPORT_WH, 1000.0, location="Outlet"),
                           SampledValue(Measurand.SOC_PCT, 47.6, location="EV")))
    assert smp.get(Measurand.SOC_PCT) == 47.6
    assert smp.get(Measurand.ENERGY_IMPORT_WH) == 1000.0
    ev = TxEvent(TxEventKind.STARTED, StationId("CP1"), T0, "t-1", EvseRef(1), "TAG", seq_no=0, samples=(smp,))
    tx = transactions.new_transaction(ev, TransactionKey("CP1/t-1"), "t-1", None)
    later = MeterSample(T0, (SampledValue(Measurand.SOC_PCT, 52.0, location="EV"),))
    out = transactions.apply(tx, TxEvent(TxEventKind.UPDATED, StationId("CP1"), T0, "t-1", EvseRef(1), seq_no=1,
                                         samples=(later,)), False)
    assert out.transaction.soc_pct == 52.0


def test_energy_at_the_ev_is_still_not_the_outlets() -> None:
    smp = MeterSample(T0, (SampledValue(Measurand.ENERGY_IMPORT_WH, 5.0, location="EV"),))
    assert smp.get(Measurand.ENERGY_IMPORT_WH) is None
