"""The store as the services see it: one Protocol per concern, taking and returning frozen domain values.

`StorePort.session()` is one database transaction (commits on a normal exit, rolls back on an error);
`StorePort.write(work)` runs `work(session)` in a transaction shared with other writes queued meanwhile
(group commit) and returns its result once that is committed. Inside, a `StoreSession` offers every
repository below. A service states what it uses by the narrower Protocol where it can.

Implemented by csms.store.repositories (SQLite and PostgreSQL, the same SQLAlchemy code) and
csms.store.memory (an in-memory fake for service tests); tests/contract runs one suite against all three.
No `Any` here: `tests/unit/test_static_gates.py` runs mypy --strict on this package.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol, TypeVar

from .enums import ChargingState, ConnectorStatus
from .ids import EvseRef
from .model import Booking, ChargingNeeds, ConnectorState, IdToken, MeterSample, Station, StationInfo, Transaction
from .records import (
    BillingSession,
    InvoiceRecord,
    JsonObject,
    SiteLoadBucket,
    StationAccessRecord,
    StationEvent,
    StationPower,
    StationSettings,
    StatusChange,
    StoredValue,
)

T = TypeVar("T")


class StationRepo(Protocol):
    """Stations: settings (operator, config.yaml), what chargers report, connectors and their history."""

    async def station(self, station_id: str) -> Station | None: ...
    async def stations(self) -> list[Station]:
        """Every station, by id."""
        ...
    async def site_stations(self, site_id: str) -> list[Station]:
        """The stations of one site, by id (a plan's snapshot)."""
        ...
    async def station_access(self, station_id: str) -> StationAccessRecord | None:
        """The handshake's read (None: unknown identity)."""
        ...
    async def station_settings(self, station_id: str) -> StationSettings | None: ...
    async def save_station_settings(self, station_id: str, settings: StationSettings) -> None:
        """Create the station (offline, nothing reported yet) or replace its settings (what it reported stays)."""
        ...
    async def delete_station(self, station_id: str) -> bool:
        """True if it existed. Its connectors go with it."""
        ...
    async def record_boot(self, station_id: str, info: StationInfo, protocol: str | None, at: datetime) -> None: ...
    async def set_online(self, station_id: str, online: bool, at: datetime, protocol: str | None = None) -> None: ...
    async def touch(self, last_seen: Mapping[str, datetime]) -> None:
        """Move last_seen of these stations (a station deleted meanwhile is skipped)."""
        ...
    async def mark_all_offline(self) -> None: ...
    async def record_status(self, station_id: str, evse: EvseRef | None, status: ConnectorStatus, at: datetime,
                            error_code: str | None, charging_state: ChargingState | None) -> None:
        """Append to the history; the connector's current status moves only if `at` is not older than it."""
        ...
    async def connectors(self, station_id: str | None = None) -> list[ConnectorState]:
        """Current status of each connector, by station, EVSE and connector."""
        ...
    async def status_history(self, station_id: str, limit: int = 100, offset: int = 0) -> list[StatusChange]:
        """Newest first."""
        ...
    async def add_station_event(self, station_id: str, kind: str, detail: JsonObject, at: datetime) -> None: ...
    async def station_events(self, station_id: str, limit: int = 100, offset: int = 0) -> list[StationEvent]:
        """Newest first."""
        ...


class TransactionRepo(Protocol):
    """Transactions, the seqNos applied to them and their meter values: the charger message path."""

    async def transaction(self, key: str) -> Transaction | None: ...
    async def transaction_by_charger_id(self, station_id: str, charger_tx_id: str) -> Transaction | None: ...
    async def transaction_and_seq_seen(self, station_id: str, charger_tx_id: str, seq_no: int
                                       ) -> tuple[Transaction | None, bool]:
        """The transaction and whether `seq_no` was applied to it already (False when there is none)."""
        ...
    async def transaction_by_fingerprint(self, fingerprint: str) -> Transaction | None:
        """The 1.6 transaction inserted with this start fingerprint (insert_v16_transaction)."""
        ...
    async def active_transactions(self, station_id: str | None = None) -> list[Transaction]:
        """Open transactions, oldest insert first."""
        ...
    async def site_active_transactions(self, site_id: str) -> list[Transaction]:
        """Open transactions at the site's stations, oldest insert first."""
        ...
    async def active_transaction_on(self, station_id: str, evse_id: int) -> Transaction | None:
        """The newest open transaction on the EVSE."""
        ...
    async def transactions(self, *, since: datetime | None = None, until: datetime | None = None,
                           station_id: str | None = None, id_tokens: Iterable[str] | None = None,
                           offset: int = 0, limit: int = 100) -> list[Transaction]:
        """By start (since <= started_at < until), newest first."""
        ...
    async def insert_v16_transaction(self, tx: Transaction, fingerprint: str) -> Transaction:
        """Insert a 1.6 transaction; its transactionId (charger_tx_id) is assigned here, unique in the store."""
        ...
    async def save_transaction(self, tx: Transaction) -> None:
        """Insert or replace by key."""
        ...
    async def seq_seen(self, tx_key: str, seq_no: int) -> bool: ...
    async def record_seq(self, tx_key: str, seq_no: int, kind: str, at: datetime) -> None:
        """Remember that `seq_no` was applied to `tx_key` (applying one twice fails the transaction)."""
        ...
    async def add_samples(self, station_id: str, evse_id: int | None, tx_key: str | None,
                          samples: Iterable[MeterSample]) -> None:
        """Store sampled values; a value already stored (tx, instant, measurand, phase) is skipped."""
        ...
    async def samples_stored(self, tx_key: str, samples: Iterable[MeterSample]) -> bool:
        """Whether every value of `samples` is already stored for `tx_key` (a replayed MeterValues)."""
        ...
    async def samples(self, tx_key: str, *, offset: int = 0, limit: int | None = None) -> list[StoredValue]:
        """A transaction's sampled values in time order, then insertion order."""
        ...
    async def session_durations_s(self, id_token: str, limit: int = 50) -> list[float]:
        """Durations (s) of the token's latest ended sessions, newest start first."""
        ...
    async def ended_sessions_since(self, station_ids: Iterable[str], since: datetime
                                   ) -> list[tuple[datetime, datetime, float]]:
        """(start, end, energy Wh) of the stations' ended sessions that started at or after `since`."""
        ...
    async def stated_departures_since(self, station_ids: Iterable[str], since: datetime
                                      ) -> list[tuple[datetime, datetime]]:
        """(last departure stated while it ran, end) of the stations' ended sessions that started at or after
        `since` and had one stated (charging needs from 2 minutes before the start to the end)."""
        ...
    async def ended_transactions_without_invoice(self, since: datetime) -> list[Transaction]:
        """Transactions ended at or after `since` that have no invoice, by end."""
        ...


class TokenRepo(Protocol):
    """Id tokens and driver groups."""

    async def id_token(self, value: str) -> IdToken | None: ...
    async def id_tokens(self) -> list[IdToken]:
        """By value."""
        ...
    async def upsert_id_token(self, t: IdToken) -> None: ...
    async def delete_id_token(self, value: str) -> bool: ...
    async def groups(self) -> dict[str, float]:
        """Group name -> priority."""
        ...
    async def upsert_group(self, name: str, priority: float) -> None: ...
    async def delete_group(self, name: str) -> bool: ...


class ChargingNeedsRepo(Protocol):
    """What EVs and drivers said they need (the planner merges them)."""

    async def add_charging_needs(self, n: ChargingNeeds) -> None: ...
    async def latest_charging_needs(self, station_id: str, evse_id: int, since: datetime
                                    ) -> ChargingNeeds | None: ...
    async def charging_needs_since(self, station_id: str, evse_id: int, since: datetime) -> list[ChargingNeeds]:
        """Oldest first."""
        ...
    async def site_charging_needs_since(self, site_id: str, since: datetime) -> list[ChargingNeeds]:
        """Every need stated at the site's stations since `since`, oldest first (one read per plan)."""
        ...


class BookingRepo(Protocol):
    async def add_booking(self, b: Booking) -> Booking:
        """Store `b` (its id is ignored) and return it with the id assigned."""
        ...
    async def booking(self, booking_id: int) -> Booking | None: ...
    async def set_booking(self, booking_id: int, status: str, *, transaction_key: str | None = None,
                          only_if: Iterable[str] | None = None) -> bool:
        """Set the status (and the transaction, if given); with `only_if`, only while the status is one of
        those (compare-and-set). True if the booking changed."""
        ...
    async def bookings(self, *, site_id: str | None = None, station_id: str | None = None,
                       evse_id: int | None = None, overlapping: tuple[datetime, datetime] | None = None,
                       statuses: Iterable[str] | None = None, id_tokens: Iterable[str] | None = None,
                       offset: int = 0, limit: int = 1000) -> list[Booking]:
        """By start, then id; `overlapping` (a, b): start < b and end > a."""
        ...


class BillingRepo(Protocol):
    """Billing's per-session state and the invoices (one per transaction)."""

    async def billing_session(self, tx_key: str) -> BillingSession | None: ...
    async def open_billing_sessions(self) -> list[BillingSession]:
        """Not finalised, oldest start first."""
        ...
    async def save_billing_session(self, b: BillingSession) -> None:
        """Insert or replace by tx_key."""
        ...
    async def invoice(self, tx_key: str) -> InvoiceRecord | None: ...
    async def add_invoice(self, inv: InvoiceRecord) -> bool:
        """False (and nothing written) when the transaction already has an invoice."""
        ...
    async def invoices(self, *, since: datetime | None = None, until: datetime | None = None,
                       station_id: str | None = None, site_id: str | None = None,
                       id_tokens: Iterable[str] | None = None, offset: int = 0,
                       limit: int | None = 100) -> list[InvoiceRecord]:
        """By session end (since <= session_end < until), newest first."""
        ...


class SiteRepo(Protocol):
    """A site's stations, their power, measured load and connector occupancy (billing's demand and busy inputs)."""

    async def station_ids_of_site(self, site_id: str) -> list[str]:
        """Sorted."""
        ...
    async def station_power(self, station_id: str) -> StationPower | None: ...
    async def add_site_load(self, site_id: str, start: datetime, end: datetime, mean_power_w: float,
                            limit_w: float | None) -> None:
        """Insert or replace the bucket starting at `start`."""
        ...
    async def site_load(self, site_id: str, since: datetime, until: datetime, *, offset: int = 0,
                        limit: int | None = None) -> list[SiteLoadBucket]:
        """Buckets overlapping [since, until), by start."""
        ...
    async def status_changes(self, station_ids: Sequence[str], since: datetime, until: datetime
                             ) -> list[StatusChange]:
        """Connector status changes of these stations in [since, until), preceded by each connector's last
        one before `since` (its state at `since`), in time order."""
        ...


class StoreSession(StationRepo, TransactionRepo, TokenRepo, ChargingNeedsRepo, BookingRepo, BillingRepo, SiteRepo,
                   Protocol):
    """One database transaction with every repository."""


class StorePort(Protocol):
    """`async with store.session() as s`: one transaction. `await store.write(work)`: `work(s)` in a
    transaction shared with other writes (group commit), its result once committed. Charger messages write
    through `write`: their answers wait for the commit, but not for each other's. A unit of work may run
    twice (a batch that failed is re-run unit by unit), so it does nothing but database work."""

    def session(self) -> AbstractAsyncContextManager[StoreSession]: ...

    async def write(self, work: Callable[[StoreSession], Awaitable[T]]) -> T: ...

    async def station_access(self, station_id: str) -> StationAccessRecord | None:
        """StationRepo.station_access as committed, without a transaction where the store keeps it in
        memory (the handshake and the ready check of every connect)."""
        ...
