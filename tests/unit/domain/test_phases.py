"""Phases a car draws on, from per-phase Current.Import (or 2.0.1 numberOfPhasesUsed), onto the transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.domain import transactions
from csms.domain.enums import Measurand, TxEventKind
from csms.domain.ids import EvseRef, StationId, TransactionKey
from csms.domain.model import MeterSample, SampledValue, Transaction, TxEvent

T0 = datetime(2026, 11, 27, 8, tzinfo=UTC)
A = Measurand.CURRENT_IMPORT_A


def sample(at: datetime, *amps: tuple[str | None, float]) -> MeterSample:
    return MeterSample(at, tuple(SampledValue(A, a, phase) for phase, a in amps))


def test_phases_carrying_more_than_1_a_count() -> None:
    assert sample(T0, ("L1", 31.9), ("L2", 0.0), ("L3", 0.4)).phases_drawing() == 1
    assert sample(T0, ("L1-N", 16.0), ("L2-N", 16.0), ("L3-N", 0.0)).phases_drawing() == 2
    assert sample(T0, (None, 16.0)).phases_drawing() is None  # no per-phase values: unknown
    assert sample(T0, ("L1", 0.0), ("L2", 0.0), ("L3", 0.0)).phases_drawing() is None  # not drawing: unknown


def test_the_transaction_keeps_the_latest_known_phases() -> None:
    tx = Transaction(TransactionKey("CP/1"), StationId("CP"), "1", EvseRef(1), "TAG", T0)
    started = TxEvent(TxEventKind.STARTED, StationId("CP"), T0, "1", seq_no=0, phases_used=3)
    tx = transactions.apply(tx, started, False).transaction
    assert tx.ev_phases == 3  # what the charger states
    measured = TxEvent(TxEventKind.UPDATED, StationId("CP"), T0 + timedelta(minutes=1), "1", seq_no=1,
                       samples=(sample(T0 + timedelta(minutes=1), ("L1", 16.0), ("L2", 0.0), ("L3", 0.0)),))
    tx = transactions.apply(tx, measured, False).transaction
    assert tx.ev_phases == 1  # what the meter measures wins
    silent = TxEvent(TxEventKind.UPDATED, StationId("CP"), T0 + timedelta(minutes=2), "1", seq_no=2,
                     samples=(sample(T0 + timedelta(minutes=2), ("L1", 0.0), ("L2", 0.0), ("L3", 0.0)),))
    assert transactions.apply(tx, silent, False).transaction.ev_phases == 1  # a pause does not forget it
