"""Pure transaction lifecycle: apply a version-neutral TxEvent to the stored Transaction.

No I/O and no clock reads. The service loads the current Transaction (or None), calls `apply`, and
persists the result in one database transaction, acknowledging the charger only after the commit.

Replay rules (chargers resend what they were not sure was received, and they queue while offline):
- 2.0.1: a (transaction, seqNo) already applied is a duplicate and changes nothing.
- 1.6 StartTransaction carries no id: a start with the same connector, idTag, meterStart and timestamp
  as an existing transaction is the same start, answered with the same transactionId.
- An Ended/StopTransaction for a transaction already ended changes nothing.
- Messages may arrive out of order (Updated after Ended when a queue drains): meter values are still
  recorded, but the transaction is never reopened.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from .enums import ChargingState, Measurand, TxEventKind
from .ids import EvseRef, TransactionKey
from .model import MeterSample, Transaction, TxEvent


@dataclass(frozen=True, slots=True)
class TxOutcome:
    transaction: Transaction
    changed: bool  # False: a duplicate/replay that must change nothing
    started: bool = False  # this message opened the transaction
    ended: bool = False  # this message closed it


def start_fingerprint(ev: TxEvent) -> str:
    """Identity of a 1.6 StartTransaction, which has no id of its own."""
    evse = ev.evse.evse_id if ev.evse else 0
    return f"{ev.station_id}|{evse}|{ev.id_token}|{ev.meter_start_wh}|{ev.at.isoformat()}"


def latest_energy_register_wh(samples: tuple[MeterSample, ...]) -> tuple[datetime, float] | None:
    best: tuple[datetime, float] | None = None
    for s in samples:
        v = s.get(Measurand.ENERGY_IMPORT_WH)
        if v is not None and (best is None or s.at >= best[0]):
            best = (s.at, v)
    return best


def _latest(samples: tuple[MeterSample, ...], m: Measurand) -> float | None:
    for s in sorted(samples, key=lambda s: s.at, reverse=True):
        v = s.get(m)
        if v is not None:
            return v
    return None


def new_transaction(ev: TxEvent, key: TransactionKey, charger_tx_id: str, group: str | None) -> Transaction:
    """The transaction a first message (normally Started) creates."""
    evse = ev.evse or EvseRef(1, 1)
    reg = latest_energy_register_wh(ev.samples)
    meter_start = ev.meter_start_wh
    if meter_start is None and reg is not None and ev.kind is TxEventKind.STARTED:
        meter_start = reg[1]
    tx = Transaction(
        key=key,
        station_id=ev.station_id,
        charger_tx_id=charger_tx_id,
        evse=evse,
        id_token=ev.id_token,
        started_at=ev.at,
        meter_start_wh=meter_start,
        charging_state=ev.charging_state,
        group=group,
        ev_phases=_latest_phases(ev),
    )
    return tx


def apply(tx: Transaction, ev: TxEvent, seen_seq: bool) -> TxOutcome:
    """Apply `ev` to the existing `tx`. `seen_seq`: the store already holds this (tx, seqNo)."""
    if seen_seq:
        return TxOutcome(tx, changed=False)
    if ev.kind is TxEventKind.ENDED and not tx.active:
        return TxOutcome(tx, changed=False)
    updated = tx
    if ev.id_token and not tx.id_token:
        updated = replace(updated, id_token=ev.id_token)
    if ev.evse and ev.evse != tx.evse:
        updated = replace(updated, evse=ev.evse)
    if ev.charging_state is not None and tx.active:
        updated = replace(updated, charging_state=ev.charging_state)
    if ev.seq_no is not None:
        updated = replace(updated, last_seq_no=max(ev.seq_no, tx.last_seq_no or 0))
    updated = _apply_meter(updated, ev)
    ended = False
    if ev.kind is TxEventKind.ENDED:
        ended = True
        updated = replace(
            updated,
            ended_at=ev.at,
            stop_reason=ev.stop_reason or "Local",
            # An ended transaction charges nothing. Whether the EV is still plugged in (2.0.1 says so
            # in the Ended event, 1.6 only in a later StatusNotification) is the connector's status.
            charging_state=ChargingState.IDLE,
            power_w=0.0,
        )
    return TxOutcome(updated, changed=True, ended=ended)


def _apply_meter(tx: Transaction, ev: TxEvent) -> Transaction:
    """Energy so far = latest register - meter start, never negative (a register reset is not a refund)."""
    reg = latest_energy_register_wh(ev.samples)
    stop = ev.meter_stop_wh if ev.kind is TxEventKind.ENDED else None
    latest = stop if stop is not None else (reg[1] if reg else None)
    out = tx
    if tx.meter_start_wh is None and reg is not None:
        out = replace(out, meter_start_wh=reg[1])
    if latest is not None and out.meter_start_wh is not None:
        energy = max(0.0, latest - out.meter_start_wh)
        out = replace(out, energy_wh=max(out.energy_wh, energy) if tx.active else out.energy_wh)
    if stop is not None:
        out = replace(out, meter_stop_wh=stop)
    power = _latest(ev.samples, Measurand.POWER_IMPORT_W)
    if power is not None and tx.active:
        out = replace(out, power_w=power)
    soc = _latest(ev.samples, Measurand.SOC_PCT)
    if soc is not None:
        out = replace(out, soc_pct=soc)
    phases = _latest_phases(ev)
    if phases is not None and tx.active:
        out = replace(out, ev_phases=phases)
    return out


def _latest_phases(ev: TxEvent) -> int | None:
    """Phases the car draws on, as this message tells: measured per-phase current wins over a stated
    numberOfPhasesUsed (2.0.1), which only says what the charger intends."""
    for s in sorted(ev.samples, key=lambda s: s.at, reverse=True):
        n = s.phases_drawing()
        if n is not None:
            return n
    return ev.phases_used
