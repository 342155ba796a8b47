"""Reconciliation, pure: compare what the store says happened with what billing tracks, list the repairs.

Billing follows sessions through bus events handled by one worker. An event can be lost to the worker
(a store outage while it is handled, a crash or kill -9 with events still queued, a bug); the store,
which every charger message is committed to before it is answered, is the truth. At start and every
`billing.reconcile_interval_s` the service lists:

* ``untracked_ended``: a transaction ended without an invoice and billing has no session for it;
* ``missing_end``: billing's session has no end although the transaction ended;
* ``untracked_active``: a running transaction billing does not follow;
* ``missing_unplug``: (found by the service while replaying the status history) the connector was freed
  after the end but billing never saw it.

and the service completes each one through the same rules as live events, so that every ended transaction
gets its one invoice within `finalize_after_h` (the unplug timeout) + two reconciliation intervals (a
discrepancy is repaired when two consecutive passes see it: a transaction is committed before its event
reaches billing, so one pass alone may see an event on its way).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from csms.domain.model import Transaction

from .state import SessionTrack

KINDS = ("untracked_ended", "missing_end", "untracked_active", "missing_unplug")


@dataclass(frozen=True, slots=True)
class Repair:
    kind: str
    tx: Transaction


def plan_repairs(tracked: Mapping[str, SessionTrack], ended_without_invoice: Iterable[Transaction],
                 active: Iterable[Transaction]) -> list[Repair]:
    """The repairs the store's facts call for, ended transactions first (they are owed an invoice)."""
    out: list[Repair] = []
    for tx in ended_without_invoice:
        track = tracked.get(tx.key)
        if track is None:
            out.append(Repair("untracked_ended", tx))
        elif track.ended_at is None:
            out.append(Repair("missing_end", tx))
    out += [Repair("untracked_active", tx) for tx in active if tx.ended_at is None and tx.key not in tracked]
    return out


@dataclass(frozen=True, slots=True)
class Gap:
    """What is not invoiced yet, as of a reconciliation pass."""

    uninvoiced_ended: int  # ended transactions without an invoice (most wait for the unplug)
    overdue: int  # of those, ended longer ago than the bound: a fault, never expected
    oldest_ended_at: datetime | None


def gap(ended_without_invoice: Iterable[Transaction], now: datetime, bound: timedelta) -> Gap:
    ends = [tx.ended_at for tx in ended_without_invoice if tx.ended_at is not None]
    return Gap(len(ends), sum(1 for e in ends if now - e > bound), min(ends, default=None))
