"""PURE per-EVSE state machine of a simulated charging station.

Statuses use the 1.6 vocabulary (it is the finer one); the 2.0.1 adapter maps them to a connector status
(Available/Occupied/Reserved/Unavailable/Faulted) plus a transaction ``chargingState``::

    Available --plug_in--> Preparing --tx started--> Charging <--> SuspendedEV / SuspendedEVSE
        ^                      |                         |
        |                      +--------- stop ----------+--> Finishing --unplug--> Available
        +-- Reserved (ReserveNow; only the reserved id token may start) / Unavailable (ChangeAvailability)

Methods mutate the :class:`Evse` and return *intents* (:class:`StatusChanged`) that the async charger
turns into OCPP messages. No asyncio, no clock reads (``now`` is a parameter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from simulator.ev import EV


class Status(StrEnum):
    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


TX_STATUSES = frozenset({Status.CHARGING, Status.SUSPENDED_EV, Status.SUSPENDED_EVSE})


class TransitionError(RuntimeError):
    """An operation not allowed in the EVSE's current state."""


@dataclass(frozen=True, slots=True)
class StatusChanged:
    evse_id: int
    status: Status
    previous: Status
    at: datetime


Intent = StatusChanged


@dataclass(slots=True)
class Reservation:
    reservation_id: int
    id_token: str
    expiry: datetime


@dataclass(slots=True)
class Transaction:
    transaction_id: str          # the CSMS's id in 1.6 (int as str), the station's id in 2.0.1
    id_token: str
    started_at: datetime
    meter_start_wh: float
    reservation_id: int | None = None
    remote_start_id: int | None = None
    seq_no: int = 0              # next 2.0.1 TransactionEvent seqNo

    def next_seq(self) -> int:
        n = self.seq_no
        self.seq_no += 1
        return n


@dataclass(slots=True)
class Evse:
    """One EVSE with one connector."""

    evse_id: int
    status: Status = Status.AVAILABLE
    ev: EV | None = None
    id_token: str | None = None
    tx: Transaction | None = None
    reservation: Reservation | None = None
    operative: bool = True
    pending_inoperative: bool = False
    meter_wh: float = 0.0
    faulted: bool = False
    history: list[StatusChanged] = field(default_factory=list)

    # ---------------------------------------------------------------- helpers
    @property
    def plugged(self) -> bool:
        return self.ev is not None

    def _set(self, status: Status, now: datetime) -> list[Intent]:
        if status == self.status:
            return []
        ch = StatusChanged(self.evse_id, status, self.status, now)
        self.status = status
        self.history.append(ch)
        return [ch]

    def _idle_status(self) -> Status:
        if self.faulted:
            return Status.FAULTED
        if not self.operative:
            return Status.UNAVAILABLE
        if self.reservation is not None:
            return Status.RESERVED
        return Status.AVAILABLE

    # ---------------------------------------------------------------- driver actions
    def plug_in(self, ev: EV, now: datetime, id_token: str | None = None) -> list[Intent]:
        if self.plugged:
            raise TransitionError(f"EVSE {self.evse_id}: an EV is already plugged in")
        if self.status in (Status.UNAVAILABLE, Status.FAULTED):
            raise TransitionError(f"EVSE {self.evse_id} is {self.status}")
        self.ev = ev
        self.id_token = id_token
        return self._set(Status.PREPARING, now)

    def unplug(self, now: datetime) -> list[Intent]:
        """Remove the EV. The caller must end a running transaction first (reason EVDisconnected)."""
        if self.tx is not None:
            raise TransitionError(f"EVSE {self.evse_id}: stop the transaction before unplugging")
        self.ev = None
        self.id_token = None
        if self.pending_inoperative:
            self.operative, self.pending_inoperative = False, False
        return self._set(self._idle_status(), now)

    # ---------------------------------------------------------------- transactions
    def may_start(self, id_token: str) -> tuple[bool, str]:
        """Whether a transaction for ``id_token`` may start now (reason when not)."""
        if self.tx is not None:
            return False, "transaction already running"
        if not self.operative or self.faulted:
            return False, f"EVSE is {self.status}"
        if self.reservation is not None and self.reservation.id_token != id_token:
            return False, "reserved for another id token"
        return True, ""

    def start_transaction(self, tx: Transaction, now: datetime) -> list[Intent]:
        ok, why = self.may_start(tx.id_token)
        if not ok:
            raise TransitionError(why)
        if not self.plugged:
            raise TransitionError("no EV plugged in")
        if self.reservation is not None:
            tx.reservation_id = self.reservation.reservation_id
            self.reservation = None
        self.tx = tx
        self.id_token = tx.id_token
        # The charging status follows from the first power update; until then the EV is "connected".
        return self._set(Status.SUSPENDED_EV, now)

    def update_power(self, limit_w: float, power_w: float, now: datetime) -> list[Intent]:
        """Derive Charging / SuspendedEV / SuspendedEVSE from the applied limit and the EV's draw."""
        if self.tx is None:
            return []
        if power_w > 0:
            return self._set(Status.CHARGING, now)
        if limit_w <= 0 or (self.ev is not None and not self.ev.satisfied and self.ev.power_for_limit(limit_w) <= 0):
            return self._set(Status.SUSPENDED_EVSE, now)
        return self._set(Status.SUSPENDED_EV, now)

    def stop_transaction(self, now: datetime) -> tuple[Transaction, list[Intent]]:
        """End the running transaction; returns it. Finishing while plugged, else the idle status."""
        if self.tx is None:
            raise TransitionError(f"EVSE {self.evse_id}: no transaction")
        tx, self.tx = self.tx, None
        if self.plugged:
            return tx, self._set(Status.FINISHING, now)
        if self.pending_inoperative:
            self.operative, self.pending_inoperative = False, False
        return tx, self._set(self._idle_status(), now)

    # ---------------------------------------------------------------- CSMS commands
    def reserve(self, res: Reservation, now: datetime) -> tuple[str, list[Intent]]:
        """ReserveNow: returns (1.6 ReservationStatus, intents)."""
        if self.faulted:
            return "Faulted", []
        if not self.operative:
            return "Unavailable", []
        if self.reservation is not None and self.reservation.reservation_id == res.reservation_id:
            self.reservation = res
            return "Accepted", []
        if self.plugged or self.tx is not None or self.reservation is not None:
            return "Occupied", []
        self.reservation = res
        return "Accepted", self._set(Status.RESERVED, now)

    def cancel_reservation(self, reservation_id: int, now: datetime) -> tuple[bool, list[Intent]]:
        if self.reservation is None or self.reservation.reservation_id != reservation_id:
            return False, []
        self.reservation = None
        return True, (self._set(self._idle_status(), now) if not self.plugged else [])

    def expire_reservation(self, now: datetime) -> list[Intent]:
        if self.reservation is not None and now >= self.reservation.expiry:
            self.reservation = None
            if not self.plugged:
                return self._set(self._idle_status(), now)
        return []

    def set_operative(self, operative: bool, now: datetime) -> tuple[str, list[Intent]]:
        """ChangeAvailability: returns ("Accepted" | "Scheduled", intents)."""
        if operative:
            self.pending_inoperative = False
            self.operative = True
            if self.status is Status.UNAVAILABLE:
                return "Accepted", self._set(Status.PREPARING if self.plugged else self._idle_status(), now)
            return "Accepted", []
        if self.tx is not None:
            self.pending_inoperative = True
            return "Scheduled", []
        self.operative = False
        return "Accepted", self._set(Status.UNAVAILABLE, now)

    def set_fault(self, faulted: bool, now: datetime) -> list[Intent]:
        self.faulted = faulted
        if faulted:
            return self._set(Status.FAULTED, now)
        return self._set(Status.PREPARING if self.plugged and self.tx is None else self._idle_status(), now)
