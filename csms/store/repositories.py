"""Repositories: rows <-> domain values. One `StoreSession` is one database transaction.

Services use it as:

    async with store.session() as s:      # commits on normal exit, rolls back on error
        tx = await s.transaction_by_charger_id(station, "abc")
        ...

so that everything a charger message changes is committed together, before the charger is answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields as dc_fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Integer, bindparam, case, delete, exists, func, insert, literal_column, select, update
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from csms.domain.enums import (
    AuthorizationStatus,
    ChargingState,
    ConnectorStatus,
    ProtocolVersion,
    RegistrationStatus,
)
from csms.domain.errors import StoreUnavailable
from csms.domain.ids import EvseRef, StationId, TransactionKey, transaction_key
from csms.domain.model import (
    NEEDS_BEFORE_START,
    Booking,
    ChargingNeeds,
    ConnectorState,
    IdToken,
    MeterSample,
    Station,
    StationInfo,
    Transaction,
)
from csms.domain.records import (
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
from csms.domain.store_ports import StorePort

from . import pg_batch, sqlite_onehop
from .pg_batch import PgBatch
from .group_commit import GroupCommit
from .tables import (
    BookingRow,
    ChargingNeedsRow,
    ConnectorRow,
    GroupRow,
    IdTokenRow,
    MeterSampleRow,
    StationEventRow,
    StationRow,
    StatusHistoryRow,
    TransactionMessageRow,
    TransactionRow,
)
from .health import StoreHealth
from .tables import BillingSessionRow, InvoiceRow, SiteLoadRow


T = TypeVar("T")
_T = TransactionRow.__table__
_B = BillingSessionRow.__table__
_M = TransactionMessageRow.__table__
# The message path's statements, built once: building a select() per call (coercions, bind parameters)
# and generating its cache key cost about as much as running it (issue 10 profile). Parameters are
# named b_* so that they do not clash with the column names an UPDATE's SET takes from the parameters.
_TX_BY_CHARGER_ID = select(_T).where(_T.c.station_id == bindparam("b_station_id"),
                                     _T.c.charger_tx_id == bindparam("b_charger_tx_id"))
# The transaction and whether this seqNo of it was applied already, in one statement (a 2.0.1
# TransactionEvent asked both, one round trip each).
_TX_AND_SEQ = select(_T, exists().where(_M.c.tx_key == _T.c.key, _M.c.seq_no == bindparam("b_seq_no"))
                     .label("b_seq_seen")).where(_T.c.station_id == bindparam("b_station_id"),
                                                 _T.c.charger_tx_id == bindparam("b_charger_tx_id"))
_TX_UPDATE = update(_T).where(_T.c.key == bindparam("b_key"))
_SEQ_SEEN = (select(_M.c.id).where(_M.c.tx_key == bindparam("b_tx_key"), _M.c.seq_no == bindparam("b_seq_no"))
             .limit(1))
_SEQ_INSERT = insert(_M)
_S = MeterSampleRow.__table__
_ST = StationRow.__table__
_C = ConnectorRow.__table__
_H = StatusHistoryRow.__table__
# Stations and connectors on the connect/boot/status path as Core statements on the tables: the ORM's
# get() and ORM-enabled UPDATEs grew the group commit's identity map (hundreds of units per commit in a
# boot storm) and scanned it on every statement (autoflush's check, UPDATE's synchronize_session).
_STATION_BY_ID = select(_ST).where(_ST.c.id == bindparam("b_id"))
# A plan's snapshot reads its own site only, as Core rows: reading every station and every open transaction
# as ORM objects per plan was a third of the CSMS's CPU with 3,000 chargers (py-spy, issue 10).
_SITE_IDS = select(_ST.c.id).where(_ST.c.site_id == bindparam("b_site")).scalar_subquery()
_SITE_STATIONS = select(_ST).where(_ST.c.site_id == bindparam("b_site")).order_by(_ST.c.id)
_SITE_ACTIVE_TX = select(_T).where(_T.c.station_id.in_(_SITE_IDS), _T.c.ended_at.is_(None)).order_by(_T.c.id)
_ALL_ACCESS = select(_ST.c.id, _ST.c.password_hash, _ST.c.security_profile, _ST.c.registration, _ST.c.site_id)
_CONNECTOR_FIELDS = ("station_id", "evse_id", "connector_id", "status", "error_code", "at")
_HISTORY_FIELDS = ("station_id", "evse_id", "connector_id", "status", "charging_state", "error_code", "at")
_TX_FIELDS = ("station_id", "charger_tx_id", "evse_id", "connector_id", "id_token", "group", "started_at", "ended_at",
              "meter_start_wh", "meter_stop_wh", "energy_wh", "power_w", "soc_pct", "charging_state", "stop_reason",
              "last_seq_no", "ev_phases")  # what _tx_fields returns
_SAMPLE_FIELDS = ("station_id", "evse_id", "tx_key", "at", "measurand", "phase", "value", "context")
_SEQ_FIELDS = ("tx_key", "seq_no", "kind", "at")


def _access(r: Any) -> StationAccessRecord:
    return StationAccessRecord(r.password_hash, r.security_profile, RegistrationStatus(r.registration), r.site_id)


def _p(c: Any) -> Any:
    return bindparam("p_" + c.name, type_=c.type)


def _dialect_insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert


def _connector_upsert(dialect: str) -> Any:
    """A connector's latest status in one statement: inserted, or updated unless what is stored is newer
    (a late, queued notification must not overwrite a newer status). Bind names p_<column>."""
    ins = _dialect_insert(dialect)(_C).values({_C.c[n]: _p(_C.c[n]) for n in _CONNECTOR_FIELDS})
    return ins.on_conflict_do_update(
        index_elements=[_C.c.station_id, _C.c.evse_id, _C.c.connector_id],
        set_={"status": ins.excluded.status, "error_code": ins.excluded.error_code, "at": ins.excluded.at},
        where=_C.c.at <= ins.excluded.at)


def _billing_upsert(dialect: str) -> Any:
    """A billing session's row, inserted or replaced whole (save_billing_session). Bind names p_<column>."""
    ins = _dialect_insert(dialect)(_B).values({_B.c[n]: _p(_B.c[n]) for n in _BILLING_FIELDS})
    return ins.on_conflict_do_update(index_elements=[_B.c.tx_key],
                                     set_={n: ins.excluded[n] for n in _BILLING_FIELDS if n != "tx_key"})


_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert_for(table: str, dialect: str) -> Any:
    if (table, dialect) not in _UPSERTS:
        _UPSERTS[table, dialect] = (_connector_upsert if table == "connectors" else _billing_upsert)(dialect)
    return _UPSERTS[table, dialect]


#: A station's online flag and last contact (set_online), or what it reported at a boot (record_boot): one
#: statement for both, so that a station's updates of one batch run in the order they were made.
#: p_online None: the flag is kept (a boot); p_boot 0: the boot's fields are kept, and so is the protocol
#: if p_protocol is None (set_online without one).
_BOOT = bindparam("p_boot", type_=Integer)


def _on_boot(c: Any) -> Any:
    return case((_BOOT == literal_column("1"), _p(c)), else_=c)


_STATION_SEEN = update(_ST).where(_ST.c.id == bindparam("p_sid", type_=_ST.c.id.type)).values({
    _ST.c.online: func.coalesce(_p(_ST.c.online), _ST.c.online),
    _ST.c.last_seen: _p(_ST.c.last_seen),
    _ST.c.protocol: case((_BOOT == literal_column("1"), _p(_ST.c.protocol)), else_=func.coalesce(_p(_ST.c.protocol), _ST.c.protocol)),
    _ST.c.vendor: _on_boot(_ST.c.vendor),
    _ST.c.model: _on_boot(_ST.c.model),
    _ST.c.serial_number: _on_boot(_ST.c.serial_number),
    _ST.c.firmware_version: _on_boot(_ST.c.firmware_version),
    _ST.c.last_boot: _on_boot(_ST.c.last_boot),
})


class _SqliteBatch:
    """The group commit's own writes on SQLite's one-hop adapter (sqlite_onehop.run_batch): the
    transaction UPDATEs, sample and seqNo INSERTs of a batch and its COMMIT in one hop to aiosqlite's
    thread, statements compiled once."""

    def __init__(self, dialect: Any) -> None:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        C = sqlite_onehop.Compiled
        self.tx_update = C(update(_T).where(_T.c.key == bindparam("p_b_key", type_=_T.c.key.type))
                           .values({_T.c[n]: _p(_T.c[n]) for n in _TX_FIELDS}), dialect)
        self.samples = C(sqlite_insert(_S).values({_S.c[n]: _p(_S.c[n]) for n in _SAMPLE_FIELDS})
                         .on_conflict_do_nothing(), dialect)
        self.seqs = C(insert(_M).values({_M.c[n]: _p(_M.c[n]) for n in _SEQ_FIELDS}), dialect)
        self.history = C(insert(_H).values({_H.c[n]: _p(_H.c[n]) for n in _HISTORY_FIELDS}), dialect)
        self.connectors = C(_connector_upsert("sqlite"), dialect)
        self.billing = C(_billing_upsert("sqlite"), dialect)
        self.stations = C(_STATION_SEEN, dialect)


def _unavailable(e: BaseException) -> bool:
    """What a database that cannot be used raises: server down, connection lost, file unreadable, locked."""
    return isinstance(e, (OperationalError, InterfaceError, DisconnectionError, OSError, TimeoutError)) or (
        isinstance(e, DBAPIError) and e.connection_invalidated)


def _station(r: StationRow) -> Station:
    info = StationInfo(r.vendor, r.model or "", r.serial_number, r.firmware_version) if r.vendor else None
    return Station(
        id=StationId(r.id),
        site_id=r.site_id,
        registration=RegistrationStatus(r.registration),
        info=info,
        protocol=ProtocolVersion(r.protocol) if r.protocol else None,
        online=r.online,
        last_seen=r.last_seen,
        max_current_a=r.max_current_a,
        phases=r.phases,
        voltage_v=r.voltage_v,
    )


def _tx(r: Any) -> Transaction:
    """A transactions row (Core Row or ORM object) as the domain value."""
    return Transaction(
        key=TransactionKey(r.key),
        station_id=StationId(r.station_id),
        charger_tx_id=r.charger_tx_id,
        evse=EvseRef(r.evse_id, r.connector_id),
        id_token=r.id_token,
        started_at=r.started_at,
        ended_at=r.ended_at,
        meter_start_wh=r.meter_start_wh,
        meter_stop_wh=r.meter_stop_wh,
        energy_wh=r.energy_wh,
        power_w=r.power_w,
        soc_pct=r.soc_pct,
        charging_state=ChargingState(r.charging_state) if r.charging_state else None,
        stop_reason=r.stop_reason,
        last_seq_no=r.last_seq_no,
        group=r.group,
        ev_phases=r.ev_phases,
    )


def _tx_fields(t: Transaction) -> dict[str, Any]:
    return dict(
        station_id=t.station_id,
        charger_tx_id=t.charger_tx_id,
        evse_id=t.evse.evse_id,
        connector_id=t.evse.connector_id,
        id_token=t.id_token,
        group=t.group,
        started_at=t.started_at,
        ended_at=t.ended_at,
        meter_start_wh=t.meter_start_wh,
        meter_stop_wh=t.meter_stop_wh,
        energy_wh=t.energy_wh,
        power_w=t.power_w,
        soc_pct=t.soc_pct,
        charging_state=t.charging_state.value if t.charging_state else None,
        stop_reason=t.stop_reason,
        last_seq_no=t.last_seq_no,
        ev_phases=t.ev_phases,
    )


def _needs(r: ChargingNeedsRow) -> ChargingNeeds:
    return ChargingNeeds(
        station_id=StationId(r.station_id),
        evse=EvseRef(r.evse_id, 1),
        received_at=r.received_at,
        energy_amount_wh=r.energy_amount_wh,
        departure_time=r.departure_time,
        ev_max_current_a=r.ev_max_current_a,
        ev_min_current_a=r.ev_min_current_a,
        ev_max_power_w=r.ev_max_power_w,
        source=r.source,
        ev_phases=r.ev_phases,
    )


def _booking(r: BookingRow) -> Booking:
    return Booking(r.id, r.site_id, r.station_id, r.evse_id, r.id_token, r.start, r.end, r.energy_wh,
                   r.guaranteed_energy_wh, r.status, r.created_at, r.transaction_key)


def _status_change(r: StatusHistoryRow) -> StatusChange:
    return StatusChange(r.station_id, r.evse_id, r.connector_id, ConnectorStatus(r.status),
                        ChargingState(r.charging_state) if r.charging_state else None, r.error_code, r.at)


_BILLING_FIELDS = tuple(f.name for f in dc_fields(BillingSession))
_INVOICE_FIELDS = tuple(f.name for f in dc_fields(InvoiceRecord) if f.name not in ("lines", "anomalies", "data"))


def _billing_session(r: Any) -> BillingSession:
    return BillingSession(**{name: getattr(r, name) for name in _BILLING_FIELDS})


def _invoice(r: InvoiceRow) -> InvoiceRecord:
    return InvoiceRecord(**{name: getattr(r, name) for name in _INVOICE_FIELDS},
                         lines=tuple(r.lines or ()), anomalies=tuple(r.anomalies or ()), data=r.data or {})


class BookingRepo:
    """Bookings (mixed into StoreSession)."""

    s: AsyncSession

    async def add_booking(self, b: Booking) -> Booking:
        row = BookingRow(site_id=b.site_id, station_id=b.station_id, evse_id=b.evse_id, id_token=b.id_token,
                         start=b.start, end=b.end, energy_wh=b.energy_wh, guaranteed_energy_wh=b.guaranteed_energy_wh,
                         status=b.status, created_at=b.created_at)
        self.s.add(row)
        await self.s.flush()
        return _booking(row)

    async def booking(self, booking_id: int) -> Booking | None:
        r = await self.s.get(BookingRow, booking_id)
        return _booking(r) if r else None

    async def set_booking(self, booking_id: int, status: str, *, transaction_key: str | None = None,
                          only_if: Iterable[str] | None = None) -> bool:
        """Set a booking's status (and transaction); with `only_if`, only while its status is one of those
        (compare-and-set, so a booking that became Active meanwhile is not expired or cancelled). True if
        a row changed."""
        q = update(BookingRow).where(BookingRow.id == booking_id)
        if only_if is not None:
            q = q.where(BookingRow.status.in_(list(only_if)))
        values: dict[str, Any] = {"status": status}
        if transaction_key is not None:
            values["transaction_key"] = transaction_key
        res = await self.s.execute(q.values(**values))
        return bool(res.rowcount)

    async def bookings(self, *, site_id: str | None = None, station_id: str | None = None,
                       evse_id: int | None = None, overlapping: tuple[datetime, datetime] | None = None,
                       statuses: Iterable[str] | None = None, id_tokens: Iterable[str] | None = None,
                       offset: int = 0, limit: int = 1000) -> list[Booking]:
        q = select(BookingRow).order_by(BookingRow.start, BookingRow.id)
        if site_id is not None:
            q = q.where(BookingRow.site_id == site_id)
        if station_id is not None:
            q = q.where(BookingRow.station_id == station_id)
        if evse_id is not None:
            q = q.where(BookingRow.evse_id == evse_id)
        if overlapping is not None:
            q = q.where(BookingRow.start < overlapping[1], BookingRow.end > overlapping[0])
        if statuses is not None:
            q = q.where(BookingRow.status.in_(list(statuses)))
        if id_tokens is not None:
            q = q.where(BookingRow.id_token.in_(list(id_tokens)))
        return [_booking(r) for r in (await self.s.scalars(q.offset(offset).limit(limit))).all()]


class OpenTransactions:
    """The open transactions as this process last committed them, by station and charger's transaction id.

    A charger's transaction message used to start with a SELECT of its transaction (and of whether its
    seqNo was applied). Every write of a transaction goes through StoreSession.save_transaction or
    insert_v16_transaction, and Store.session records what they wrote here once it is committed, so
    the message path reads the transaction from memory (issue 10). A station's entries are dropped when
    it connects or disconnects (set_online): while it is connected here no other process writes its
    transactions (a second node would hold the connection, and with it the writes). A miss is a
    database read as before.

    Beside each transaction: the instant of its newest stored meter sample, when this process knows it
    (None: known to have none). A 1.6 MeterValues carries no seqNo; it is a replay when its samples are
    stored already, and samples strictly newer than the newest stored one cannot be: no SELECT then."""

    def __init__(self) -> None:
        self._by_station: dict[str, dict[str, Transaction]] = {}
        self._newest_sample: dict[str, datetime | None] = {}

    def get(self, station_id: str, charger_tx_id: str) -> Transaction | None:
        txs = self._by_station.get(station_id)
        return txs.get(charger_tx_id) if txs else None

    def newest_sample(self, tx_key: str) -> tuple[bool, datetime | None]:
        """(known, instant of the newest stored sample or None if there is none)."""
        if tx_key in self._newest_sample:
            return True, self._newest_sample[tx_key]
        return False, None

    def committed(self, txs: Iterable[Transaction], newest_sample: dict[str, datetime | None] | None = None
                  ) -> None:
        opened: set[str] = set()
        for tx in txs:
            if tx.ended_at is None:
                self._by_station.setdefault(tx.station_id, {})[tx.charger_tx_id] = tx
                opened.add(tx.key)
            else:
                self._by_station.get(tx.station_id, {}).pop(tx.charger_tx_id, None)
                self._newest_sample.pop(tx.key, None)
        # A session knows a newest instant only where it was known before it or read from the database,
        # and moves it on with every sample it adds: it is never older than what was committed.
        for key, at in (newest_sample or {}).items():
            if key in opened or key in self._newest_sample:
                self._newest_sample[key] = at

    def forget_station(self, station_id: str) -> None:
        for tx in self._by_station.pop(station_id, {}).values():
            self._newest_sample.pop(tx.key, None)

    def __len__(self) -> int:
        return sum(len(t) for t in self._by_station.values())


class StationDirectory:
    """The stations' access records (password hash, security profile, registration, site), as committed, in
    memory: what the handshake, the connect, the boot and the ready check read for every charger that
    connects. Each was a database read (a session and a statement: ~10 % of the CSMS's CPU per
    connect in a boot ramp, issue 10); in a storm after a restart thousands of them at once.

    Filled from the database: all stations with the first lookup (one SELECT), then one station per miss
    (a station created since). The access fields change only through StoreSession.save_station_settings
    and delete_station; each drops the station's entry when it runs and again once its session has
    committed (`changed`), and bumps `gen`: a read that began before a change does not store what it
    read (it may be the old row). Unknown stations are not remembered (each is read again).
    The store is this process's: another process writing the stations table directly would not be seen.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, StationAccessRecord] = {}
        self.loaded = False
        self.gen = 0

    def get(self, station_id: str) -> StationAccessRecord | None:
        return self._by_id.get(station_id)

    def put(self, station_id: str, rec: StationAccessRecord, gen: int) -> None:
        if gen == self.gen:
            self._by_id[station_id] = rec

    def load(self, recs: dict[str, StationAccessRecord], gen: int) -> bool:
        if gen != self.gen:
            return False
        self._by_id = recs
        self.loaded = True
        return True

    def changed(self, station_ids: Iterable[str]) -> None:
        for sid in station_ids:
            self._by_id.pop(sid, None)
        self.gen += 1


class StoreSession(BookingRepo):
    def __init__(self, s: AsyncSession, open_txs: OpenTransactions | None = None,
                 batch: _SqliteBatch | None = None, directory: StationDirectory | None = None,
                 pg: PgBatch | None = None) -> None:
        self.s = s
        self._batch = batch
        self._pg = pg
        self._directory = directory if directory is not None else StationDirectory()
        #: Stations whose settings this session wrote: read from the database here (the uncommitted
        #: write), dropped from the directory again after the commit.
        self.stations_written: set[str] = set()
        self._open = open_txs if open_txs is not None else OpenTransactions()
        #: Transactions written in this session, by (station, charger tx id): read from the database
        #: (which sees the uncommitted write), not from memory; handed to `_open` after the commit.
        self.written: dict[tuple[str, str], Transaction] = {}
        # Append-only rows (meter samples, applied seqNos) are collected and inserted with one
        # executemany per table when the transaction ends (`flush_later`, called by Store.session before
        # its commit): the units of a group commit then share one INSERT per table instead of one
        # round trip each (issue 10). Nothing reads these tables but the methods below, and each of
        # them inserts what is pending first when it concerns the rows it reads.
        self._later_samples: list[dict[str, Any]] = []
        self._later_seqs: list[dict[str, Any]] = []
        self._later_keys: set[str | None] = set()  # tx keys with rows pending in either list
        self._later_status: list[dict[str, Any]] = []  # status_history rows, read only by status_* below
        # Connector upserts and station contact/boot updates (record_status, set_online, record_boot): their
        # results are not read, so they wait for the batch's one hop too (they were 2-3 round trips per
        # StatusNotification and BootNotification inside the group commit, each waiting for its turn in a
        # busy event loop: the writer, not the CPU, then bounded a boot ramp; issue 10). Every read of
        # these rows in this session runs them first (_flush_deferred).
        self._later_connectors: list[dict[str, Any]] = []
        self._later_stations: list[dict[str, Any]] = []
        # Billing sessions' rows by key (the last state wins: each is written whole), the same way.
        self._later_billing: dict[str, dict[str, Any]] = {}
        # UPDATEs of transactions known to exist, by key (the last one wins): one executemany before the
        # commit too. Every read of the transactions table in this session runs them first (_flush_tx).
        self._later_tx: dict[str, dict[str, Any]] = {}
        #: Transaction keys known to have a row (read, inserted or committed): their save can wait.
        self._exists: set[str] = set()
        #: Newest stored sample instant per transaction key, where known (see OpenTransactions); handed to
        #: the open transactions with `written` after the commit.
        self.newest_sample: dict[str, datetime | None] = {}

    async def flush_later(self, commit: bool = False) -> None:
        """Write the pending rows (before a commit, or before a read that needs them). `commit`: the
        transaction ends here (Store.session); on SQLite's one-hop adapter the rows and the COMMIT then
        go to the database thread together, and the session's own commit has nothing left to do."""
        if commit and self._batch is not None:
            await self._flush_and_commit(self._batch)
            return
        if commit and self._pg is not None and (self._later_tx or self._later_status or self._later_samples
                                                or self._later_seqs):
            await self._flush_pg(self._pg)
            return
        await self._flush_deferred()
        await self._flush_tx()
        await self._flush_status()
        samples, seqs = self._later_samples, self._later_seqs
        self._later_samples, self._later_seqs, self._later_keys = [], [], set()
        if samples:
            # A value already stored under the natural key (tx, instant, measurand, phase; unique index
            # uq_samples_natural) is a replay: skipped, not an error.
            await self.s.execute(_insert_ignoring_duplicates(self.s.get_bind().dialect.name, _S), samples)
        if seqs:  # a seqNo applied twice raises here: the group commit then re-runs each unit alone
            await self.s.execute(_SEQ_INSERT, seqs)

    async def _pending(self, tx_key: str | None) -> None:
        if tx_key in self._later_keys:
            await self.flush_later()

    async def _flush_tx(self) -> None:
        if not self._later_tx:
            return
        rows = list(self._later_tx.values())
        self._later_tx = {}
        res = await self.s.execute(_TX_UPDATE, rows)
        if 0 <= res.rowcount < len(rows):  # a row went away meanwhile (-1: the driver does not say)
            await self._upsert_each(rows)

    async def _flush_deferred(self) -> None:
        """The pending station updates, connector and billing upserts, in one executemany each (order kept
        per table)."""
        stations, connectors, billing = self._take_deferred()
        dialect = self.s.get_bind().dialect.name
        for stmt, rows in ((_STATION_SEEN, stations), (_upsert_for("connectors", dialect), connectors),
                           (_upsert_for("billing", dialect), billing)):
            if rows:
                await self.s.execute(stmt, [{"p_" + k: v for k, v in r.items()} for r in rows])

    def _take_deferred(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        taken = (self._later_stations, self._later_connectors, list(self._later_billing.values()))
        self._later_stations, self._later_connectors, self._later_billing = [], [], {}
        return taken

    async def _flush_status(self) -> None:
        if self._later_status:
            rows, self._later_status = self._later_status, []
            await self.s.execute(insert(_H), rows)

    async def _upsert_each(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if not (await self.s.execute(_TX_UPDATE, row)).rowcount:
                fields = {k: v for k, v in row.items() if k != "b_key"}
                await self.s.execute(insert(_T).values(key=row["b_key"], **fields))

    async def _take_later(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]],
                                         list[dict[str, Any]]]:
        """For a batch's one-hop write: ORM rows of this transaction flushed first, then the pending
        transaction UPDATEs, status history, samples and seqNos, taken (the session holds none after)."""
        if self.s.new or self.s.dirty or self.s.deleted:
            await self.s.flush()
        later = (list(self._later_tx.values()), self._later_status, self._later_samples, self._later_seqs)
        self._later_tx, self._later_status, self._later_samples, self._later_seqs = {}, [], [], []
        self._later_keys = set()
        return later

    async def _flush_and_commit(self, b: _SqliteBatch) -> None:
        txs, status, samples, seqs = await self._take_later()
        stations, connectors, billing = self._take_deferred()
        # (statement, rows, whether each row must change exactly one row); a seqNo applied twice raises in
        # its step: the group commit then re-runs each unit alone
        steps: list[tuple[sqlite_onehop.Compiled, Any, bool]] = [step for step in (
            (b.stations, stations, False), (b.connectors, connectors, False), (b.billing, billing, False),
            (b.tx_update, txs, True), (b.history, status, False), (b.samples, samples, False),
            (b.seqs, seqs, False)) if step[1]]
        _, committed = await sqlite_onehop.run_batch(self.s, steps, commit=True)
        if not committed:  # a transaction row went away meanwhile: update-or-insert each; the session commits
            await self._upsert_each(txs)

    async def _flush_pg(self, b: PgBatch) -> None:
        """PostgreSQL: the pending rows in one statement, the transaction too if nothing ran before it
        (pg_batch.py); the session's commit then has nothing left to send. Pending station updates,
        connector and billing upserts go first, one executemany each (then the transaction commits as usual)."""
        await self._flush_deferred()
        await b.run(self.s, *await self._take_later())

    # --- stations -------------------------------------------------------------------------------
    async def station(self, station_id: str) -> Station | None:
        await self._flush_deferred()
        if self.s.new or self.s.dirty:  # an ORM station added or changed in this session
            await self.s.flush()        # (save_station_settings): a Core statement does not autoflush
        r = (await self.s.execute(_STATION_BY_ID, {"b_id": station_id})).first()
        return _station(r) if r else None

    async def station_access(self, station_id: str) -> StationAccessRecord | None:
        """The handshake's read (also the connect's, the boot's and the ready check's): from the
        StationDirectory when this session changed no station, else one primary-key lookup."""
        d = self._directory
        if self.stations_written or self.s.new or self.s.dirty:
            await self.s.flush()  # an ORM station added or changed here: a Core statement does not autoflush
            r = (await self.s.execute(_STATION_BY_ID, {"b_id": station_id})).first()
            return _access(r) if r is not None else None
        rec = d.get(station_id)
        if rec is not None:
            return rec
        gen = d.gen
        if not d.loaded:  # the first lookup reads them all: a storm after a restart then reads nothing more
            rows = (await self.s.execute(_ALL_ACCESS)).all()
            recs = {r.id: _access(r) for r in rows}
            d.load(recs, gen)  # not remembered if a station changed meanwhile (the next lookup reads again)
            return recs.get(station_id)
        r = (await self.s.execute(_STATION_BY_ID, {"b_id": station_id})).first()
        if r is None:
            return None
        rec = _access(r)
        d.put(station_id, rec, gen)
        return rec

    async def stations(self) -> list[Station]:
        await self._flush_deferred()
        rows = (await self.s.scalars(select(StationRow).order_by(StationRow.id))).all()
        return [_station(r) for r in rows]

    async def site_stations(self, site_id: str) -> list[Station]:
        await self._flush_deferred()
        if self.s.new or self.s.dirty:  # an ORM station added or changed in this session: Core does not autoflush
            await self.s.flush()
        return [_station(r) for r in (await self.s.execute(_SITE_STATIONS, {"b_site": site_id})).all()]

    async def station_settings(self, station_id: str) -> StationSettings | None:
        r = await self.s.get(StationRow, station_id)
        if r is None:
            return None
        return StationSettings(
            site_id=r.site_id, registration=RegistrationStatus(r.registration),
            registration_by_operator=bool(r.registration_by_operator), password_hash=r.password_hash,
            security_profile=r.security_profile, max_current_a=r.max_current_a, max_power_w=r.max_power_w,
            min_current_a=r.min_current_a, phases=r.phases, voltage_v=r.voltage_v, from_config=r.from_config)

    async def save_station_settings(self, station_id: str, settings: StationSettings) -> None:
        fields = dict(
            site_id=settings.site_id, registration=settings.registration.value,
            registration_by_operator=settings.registration_by_operator, password_hash=settings.password_hash,
            security_profile=settings.security_profile, max_current_a=settings.max_current_a,
            max_power_w=settings.max_power_w, min_current_a=settings.min_current_a, phases=settings.phases,
            voltage_v=settings.voltage_v, from_config=settings.from_config)
        self._station_changed(station_id)
        r = await self.s.get(StationRow, station_id)
        if r is None:
            self.s.add(StationRow(id=station_id, **fields))
        else:
            for k, v in fields.items():
                setattr(r, k, v)

    async def delete_station(self, station_id: str) -> bool:
        await self._flush_deferred()  # a status recorded before the delete must not re-insert a connector after it
        self._station_changed(station_id)
        res = await self.s.execute(delete(StationRow).where(StationRow.id == station_id))
        return bool(res.rowcount)

    def _station_changed(self, station_id: str) -> None:
        self.stations_written.add(station_id)
        self._directory.changed((station_id,))  # and again after the commit (Store.session)

    async def record_boot(self, station_id: str, info: StationInfo, protocol: str | None, at: datetime) -> None:
        self._later_stations.append({
            "sid": station_id, "boot": 1, "online": None, "last_seen": at, "protocol": protocol,
            "vendor": info.vendor, "model": info.model, "serial_number": info.serial_number,
            "firmware_version": info.firmware_version, "last_boot": at})

    async def set_online(self, station_id: str, online: bool, at: datetime, protocol: str | None = None) -> None:
        self._later_stations.append({
            "sid": station_id, "boot": 0, "online": online, "last_seen": at, "protocol": protocol or None,
            "vendor": None, "model": None, "serial_number": None, "firmware_version": None, "last_boot": None})
        self._open.forget_station(station_id)  # see OpenTransactions

    async def touch(self, last_seen: Mapping[str, datetime]) -> None:
        await self._flush_deferred()  # in order with the contacts recorded before it
        if last_seen:  # one executemany, not a statement per station; a station deleted meanwhile is skipped
            q = update(StationRow.__table__).where(StationRow.__table__.c.id == bindparam("sid")).values(
                last_seen=bindparam("at"))
            await self.s.execute(q, [{"sid": sid, "at": at} for sid, at in last_seen.items()])

    async def mark_all_offline(self) -> None:
        await self._flush_deferred()
        await self.s.execute(update(StationRow).values(online=False))

    # --- connectors -------------------------------------------------------------------------------
    async def record_status(
        self, station_id: str, evse: EvseRef | None, status: ConnectorStatus, at: datetime,
        error_code: str | None, charging_state: ChargingState | None,
    ) -> None:
        # History: inserted with the batch's others before the commit (read only by status_history and
        # status_changes, which insert what is pending first). Core, not ORM objects (see _STATION_BY_ID).
        self._later_status.append(dict(
            station_id=station_id, evse_id=evse.evse_id if evse else None,
            connector_id=evse.connector_id if evse else None, status=status.value,
            charging_state=charging_state.value if charging_state else None, error_code=error_code, at=at,
        ))
        if evse is None:
            return
        # upserted with the batch (_connector_upsert: a late, queued notification does not overwrite a newer one)
        self._later_connectors.append(dict(station_id=station_id, evse_id=evse.evse_id,
                                           connector_id=evse.connector_id, status=status.value,
                                           error_code=error_code, at=at))

    async def connectors(self, station_id: str | None = None) -> list[ConnectorState]:
        await self._flush_deferred()
        # populate_existing: record_status writes with Core, which does not refresh ORM objects of the session
        q = (select(ConnectorRow).order_by(ConnectorRow.station_id, ConnectorRow.evse_id, ConnectorRow.connector_id)
             .execution_options(populate_existing=True))
        if station_id is not None:
            q = q.where(ConnectorRow.station_id == station_id)
        rows = (await self.s.scalars(q)).all()
        return [ConnectorState(StationId(r.station_id), EvseRef(r.evse_id, r.connector_id),
                               ConnectorStatus(r.status), r.at, r.error_code) for r in rows]

    async def status_history(self, station_id: str, limit: int = 100, offset: int = 0) -> list[StatusChange]:
        """Newest first."""
        await self._flush_status()
        rows = (await self.s.scalars(
            select(StatusHistoryRow).where(StatusHistoryRow.station_id == station_id)
            .order_by(StatusHistoryRow.id.desc()).offset(offset).limit(limit))).all()
        return [_status_change(r) for r in rows]

    # --- transactions -----------------------------------------------------------------------------
    # Core statements on the table, no ORM objects: these run for nearly every charger message, where
    # ORM instances, identity-map bookkeeping and flushes cost more than the SQL (issue 10 profile).
    # Every read and write of transactions here is Core, so no stale ORM copy can exist in a session.
    async def _one_tx(self, q: Any) -> Transaction | None:
        await self._flush_tx()
        r = (await self.s.execute(q)).first()
        if r is None:
            return None
        self._exists.add(r.key)
        return _tx(r)

    async def transaction(self, key: str) -> Transaction | None:
        return await self._one_tx(select(_T).where(_T.c.key == key))

    async def transaction_by_charger_id(self, station_id: str, charger_tx_id: str) -> Transaction | None:
        tx = self.written.get((station_id, charger_tx_id)) or self._open.get(station_id, charger_tx_id)
        if tx is not None:  # what this session wrote, else what was last committed here
            return tx
        return await self._one_tx_by_charger_id(station_id, charger_tx_id)

    async def _one_tx_by_charger_id(self, station_id: str, charger_tx_id: str) -> Transaction | None:
        await self._flush_tx()
        r = (await self.s.execute(_TX_BY_CHARGER_ID, {"b_station_id": station_id,
                                                      "b_charger_tx_id": charger_tx_id})).first()
        if r is None:
            return None
        self._exists.add(r.key)
        return _tx(r)

    async def transaction_and_seq_seen(self, station_id: str, charger_tx_id: str, seq_no: int
                                       ) -> tuple[Transaction | None, bool]:
        """transaction_by_charger_id and, if it exists, seq_seen(its key, seq_no): from memory when the
        transaction is open and seq_no is above every seqNo applied to it (last_seq_no is their maximum,
        written with them), else one round trip."""
        if (station_id, charger_tx_id) not in self.written:
            tx = self._open.get(station_id, charger_tx_id)
            if tx is not None and seq_no > (tx.last_seq_no if tx.last_seq_no is not None else -1):
                return tx, False
        await self._pending(transaction_key(station_id, charger_tx_id))
        await self._flush_tx()
        r = (await self.s.execute(_TX_AND_SEQ, {"b_station_id": station_id, "b_charger_tx_id": charger_tx_id,
                                                "b_seq_no": seq_no})).first()
        if r is None:
            return None, False
        self._exists.add(r.key)
        return _tx(r), bool(r.b_seq_seen)

    async def transaction_by_fingerprint(self, fingerprint: str) -> Transaction | None:
        return await self._one_tx(select(_T).where(_T.c.start_fingerprint == fingerprint))

    async def active_transactions(self, station_id: str | None = None) -> list[Transaction]:
        await self._flush_tx()
        q = select(_T).where(_T.c.ended_at.is_(None)).order_by(_T.c.id)
        if station_id is not None:
            q = q.where(_T.c.station_id == station_id)
        return [_tx(r) for r in (await self.s.execute(q)).all()]

    async def site_active_transactions(self, site_id: str) -> list[Transaction]:
        await self._flush_tx()
        if self.s.new or self.s.dirty:
            await self.s.flush()
        return [_tx(r) for r in (await self.s.execute(_SITE_ACTIVE_TX, {"b_site": site_id})).all()]

    async def active_transaction_on(self, station_id: str, evse_id: int) -> Transaction | None:
        return await self._one_tx(select(_T).where(
            _T.c.station_id == station_id, _T.c.evse_id == evse_id,
            _T.c.ended_at.is_(None)).order_by(_T.c.id.desc()).limit(1))

    async def transactions(
        self, *, since: datetime | None = None, until: datetime | None = None, station_id: str | None = None,
        id_tokens: Iterable[str] | None = None, offset: int = 0, limit: int = 100,
    ) -> list[Transaction]:
        await self._flush_tx()
        q = select(_T).order_by(_T.c.started_at.desc(), _T.c.id.desc())
        if since is not None:
            q = q.where(_T.c.started_at >= since)
        if until is not None:
            q = q.where(_T.c.started_at < until)
        if station_id is not None:
            q = q.where(_T.c.station_id == station_id)
        if id_tokens is not None:
            q = q.where(_T.c.id_token.in_(list(id_tokens)))
        rows = (await self.s.execute(q.offset(offset).limit(limit))).all()
        return [_tx(r) for r in rows]

    async def insert_v16_transaction(self, tx: Transaction, fingerprint: str) -> Transaction:
        """Insert a 1.6 transaction; its transactionId is our row id, known only after the insert."""
        fields = _tx_fields(tx)
        fields["charger_tx_id"] = f"pending-{fingerprint}"[:64]
        res = await self.s.execute(insert(_T).values(key=f"pending/{fingerprint}"[:100],
                                                     start_fingerprint=fingerprint, **fields))
        row_id = res.inserted_primary_key[0]
        charger_tx_id = str(row_id)
        key = transaction_key(tx.station_id, charger_tx_id)
        await self.s.execute(update(_T).where(_T.c.id == row_id).values(charger_tx_id=charger_tx_id, key=key))
        tx = replace(tx, key=TransactionKey(key), charger_tx_id=charger_tx_id)
        self.written[(tx.station_id, charger_tx_id)] = tx
        self._exists.add(key)
        self.newest_sample[key] = None  # just created: no samples yet
        return tx

    async def save_transaction(self, tx: Transaction) -> None:
        fields = _tx_fields(tx)
        if tx.key in self._exists or self._open.get(tx.station_id, tx.charger_tx_id) is not None:
            # The row exists (read or written here, or committed by this process and still open): the
            # UPDATE waits for the batch's executemany (issue 10: one UPDATE per message was a round trip).
            self._later_tx[tx.key] = {**fields, "b_key": tx.key}
        else:
            res = await self.s.execute(_TX_UPDATE, {**fields, "b_key": tx.key})
            if not res.rowcount:
                await self.s.execute(insert(_T).values(key=tx.key, **fields))
                self.newest_sample[tx.key] = None  # created here: no samples yet
            self._exists.add(tx.key)
        self.written[(tx.station_id, tx.charger_tx_id)] = tx

    async def seq_seen(self, tx_key: str, seq_no: int) -> bool:
        await self._pending(tx_key)
        return (await self.s.execute(_SEQ_SEEN, {"b_tx_key": tx_key, "b_seq_no": seq_no})).first() is not None

    async def record_seq(self, tx_key: str, seq_no: int, kind: str, at: datetime) -> None:
        # Core, not session.add(): an ORM add costs a unit-of-work flush at commit (7 % of the CSMS's
        # CPU under bench/load.py with the billing row's flush, issue 10 profile). Inserted with the
        # others of this transaction (flush_later).
        self._later_seqs.append({"tx_key": tx_key, "seq_no": seq_no, "kind": kind, "at": at})
        self._later_keys.add(tx_key)

    # --- meter samples ----------------------------------------------------------------------------
    async def add_samples(self, station_id: str, evse_id: int | None, tx_key: str | None,
                          samples: Iterable[MeterSample]) -> None:
        rows = [
            dict(station_id=station_id, evse_id=evse_id, tx_key=tx_key, at=s.at, measurand=v.measurand.value,
                 phase=v.phase, value=v.value, context=v.context)
            for s in samples for v in s.values
        ]
        if rows:  # Core executemany (ORM objects cost more than the insert), with the others of this
            # transaction (flush_later)
            self._later_samples.extend(rows)
            self._later_keys.add(tx_key)
            if tx_key is not None:
                known, newest = self._newest_sample(tx_key)
                if known:
                    latest = max(r["at"] for r in rows)
                    self.newest_sample[tx_key] = latest if newest is None else max(newest, latest)

    def _newest_sample(self, tx_key: str) -> tuple[bool, datetime | None]:
        if tx_key in self.newest_sample:
            return True, self.newest_sample[tx_key]
        return self._open.newest_sample(tx_key)

    async def samples_stored(self, tx_key: str, samples: Iterable[MeterSample]) -> bool:
        """Whether every value of `samples` is already stored for `tx_key` (a replayed MeterValues).
        From memory when every sample is newer than the newest one stored (see OpenTransactions)."""
        want = {(s.at, v.measurand.value, v.phase or "") for s in samples for v in s.values}
        if not want:
            return False
        known, newest = self._newest_sample(tx_key)
        if known and (newest is None or min(at for at, _, _ in want) > newest):
            return False
        await self._pending(tx_key)
        t = MeterSampleRow.__table__
        rows = await self.s.execute(select(t.c.at, t.c.measurand, t.c.phase).where(
            t.c.tx_key == tx_key, t.c.at.in_({at for at, _, _ in want})))
        have = {(at, m, p or "") for at, m, p in rows}
        # From here on this session knows the newest stored instant (the samples it adds move it on).
        self.newest_sample[tx_key] = (await self.s.execute(
            select(func.max(t.c.at)).where(t.c.tx_key == tx_key))).scalar()
        return want <= have

    async def samples(self, tx_key: str, *, offset: int = 0, limit: int | None = None) -> list[StoredValue]:
        """A transaction's sampled values in time order (all of them by default: pricing reads every one)."""
        await self._pending(tx_key)
        q = (select(MeterSampleRow).where(MeterSampleRow.tx_key == tx_key)
             .order_by(MeterSampleRow.at, MeterSampleRow.id).offset(offset))
        if limit is not None:
            q = q.limit(limit)
        rows = (await self.s.scalars(q)).all()
        return [StoredValue(r.at, r.measurand, r.phase, r.value, r.context) for r in rows]

    # --- tokens and groups --------------------------------------------------------------------------
    async def id_token(self, value: str) -> IdToken | None:
        r = await self.s.get(IdTokenRow, value)
        if r is None:
            return None
        return IdToken(r.value, r.type, AuthorizationStatus(r.status), r.expires_at, r.group)

    async def id_tokens(self) -> list[IdToken]:
        rows = (await self.s.scalars(select(IdTokenRow).order_by(IdTokenRow.value))).all()
        return [IdToken(r.value, r.type, AuthorizationStatus(r.status), r.expires_at, r.group) for r in rows]

    async def upsert_id_token(self, t: IdToken) -> None:
        await self.s.merge(IdTokenRow(value=t.value, type=t.type, status=t.status.value,
                                      expires_at=t.expires_at, group=t.group))

    async def delete_id_token(self, value: str) -> bool:
        res = await self.s.execute(delete(IdTokenRow).where(IdTokenRow.value == value))
        return bool(res.rowcount)

    async def groups(self) -> dict[str, float]:
        rows = (await self.s.scalars(select(GroupRow))).all()
        return {r.name: r.priority for r in rows}

    async def upsert_group(self, name: str, priority: float) -> None:
        await self.s.merge(GroupRow(name=name, priority=priority))

    async def delete_group(self, name: str) -> bool:
        res = await self.s.execute(delete(GroupRow).where(GroupRow.name == name))
        return bool(res.rowcount)

    # --- charging needs ---------------------------------------------------------------------------
    async def add_charging_needs(self, n: ChargingNeeds) -> None:
        self.s.add(ChargingNeedsRow(
            station_id=n.station_id, evse_id=n.evse.evse_id, received_at=n.received_at,
            energy_amount_wh=n.energy_amount_wh, departure_time=n.departure_time,
            ev_max_current_a=n.ev_max_current_a, ev_min_current_a=n.ev_min_current_a,
            ev_max_power_w=n.ev_max_power_w, source=n.source, ev_phases=n.ev_phases))

    async def latest_charging_needs(self, station_id: str, evse_id: int, since: datetime) -> ChargingNeeds | None:
        r = await self.s.scalar(select(ChargingNeedsRow).where(
            ChargingNeedsRow.station_id == station_id, ChargingNeedsRow.evse_id == evse_id,
            ChargingNeedsRow.received_at >= since).order_by(ChargingNeedsRow.id.desc()).limit(1))
        return _needs(r) if r else None

    async def charging_needs_since(self, station_id: str, evse_id: int, since: datetime) -> list[ChargingNeeds]:
        """Every need stated for the EVSE since `since`, oldest first (the planner merges them field by field)."""
        rows = (await self.s.scalars(select(ChargingNeedsRow).where(
            ChargingNeedsRow.station_id == station_id, ChargingNeedsRow.evse_id == evse_id,
            ChargingNeedsRow.received_at >= since).order_by(ChargingNeedsRow.id))).all()
        return [_needs(r) for r in rows]

    async def site_charging_needs_since(self, site_id: str, since: datetime) -> list[ChargingNeeds]:
        if self.s.new:
            await self.s.flush()
        t = ChargingNeedsRow.__table__
        rows = (await self.s.execute(select(t).where(
            t.c.station_id.in_(_SITE_IDS), t.c.received_at >= since).order_by(t.c.id), {"b_site": site_id})).all()
        return [_needs(r) for r in rows]

    async def session_durations_s(self, id_token: str, limit: int = 50) -> list[float]:
        """Durations (seconds) of the token's latest ended sessions, newest first."""
        await self._flush_tx()
        rows = (await self.s.execute(
            select(TransactionRow.started_at, TransactionRow.ended_at)
            .where(TransactionRow.id_token == id_token, TransactionRow.ended_at.is_not(None))
            .order_by(TransactionRow.started_at.desc()).limit(limit))).all()
        return [(end - start).total_seconds() for start, end in rows]

    async def ended_sessions_since(self, station_ids: Iterable[str], since: datetime
                                   ) -> list[tuple[datetime, datetime, float]]:
        """(start, end, energy Wh) of the stations' sessions that started at or after `since` and ended."""
        await self._flush_tx()
        rows = (await self.s.execute(
            select(TransactionRow.started_at, TransactionRow.ended_at, TransactionRow.energy_wh)
            .where(TransactionRow.station_id.in_(list(station_ids)), TransactionRow.started_at >= since,
                   TransactionRow.ended_at.is_not(None)))).all()
        return [(start, end, float(energy or 0.0)) for start, end, energy in rows]

    async def stated_departures_since(self, station_ids: Iterable[str], since: datetime
                                      ) -> list[tuple[datetime, datetime]]:
        """(last stated departure, end) of the stations' sessions that started at or after `since`, ended,
        and had a departure stated (EV or driver) while they ran. Paired here rather than in SQL: date
        arithmetic differs between SQLite and PostgreSQL, and this runs once an hour per site."""
        ids = list(station_ids)
        txs = (await self.s.execute(
            select(TransactionRow.station_id, TransactionRow.evse_id, TransactionRow.started_at,
                   TransactionRow.ended_at)
            .where(TransactionRow.station_id.in_(ids), TransactionRow.started_at >= since,
                   TransactionRow.ended_at.is_not(None)))).all()
        needs = (await self.s.execute(
            select(ChargingNeedsRow.station_id, ChargingNeedsRow.evse_id, ChargingNeedsRow.received_at,
                   ChargingNeedsRow.departure_time)
            .where(ChargingNeedsRow.station_id.in_(ids), ChargingNeedsRow.received_at >= since - NEEDS_BEFORE_START,
                   ChargingNeedsRow.departure_time.is_not(None))
            .order_by(ChargingNeedsRow.id))).all()
        by_evse: dict[tuple[str, int], list[tuple[datetime, datetime]]] = {}
        for station, evse, received, departure in needs:
            by_evse.setdefault((station, evse), []).append((received, departure))
        out: list[tuple[datetime, datetime]] = []
        for station, evse, started, ended in txs:
            stated = [d for r, d in by_evse.get((station, evse), ()) if started - NEEDS_BEFORE_START <= r <= ended]
            if stated:
                out.append((stated[-1], ended))
        return out

    # --- notices ----------------------------------------------------------------------------------
    async def add_station_event(self, station_id: str, kind: str, detail: JsonObject, at: datetime) -> None:
        self.s.add(StationEventRow(station_id=station_id, kind=kind, detail=dict(detail), at=at))

    async def station_events(self, station_id: str, limit: int = 100, offset: int = 0) -> list[StationEvent]:
        """Newest first."""
        rows = (await self.s.scalars(select(StationEventRow).where(StationEventRow.station_id == station_id)
                                     .order_by(StationEventRow.id.desc()).offset(offset).limit(limit))).all()
        return [StationEvent(r.kind, r.detail, r.at) for r in rows]


    # --- billing (csms.services.billing) -------------------------------------------------------------
    async def billing_session(self, tx_key: str) -> BillingSession | None:
        # Core like save_billing_session: no ORM copy of the row can go stale in a shared session.
        await self._flush_deferred()
        r = (await self.s.execute(select(_B).where(_B.c.tx_key == tx_key))).first()
        return _billing_session(r) if r else None

    async def open_billing_sessions(self) -> list[BillingSession]:
        """Sessions not invoiced yet, oldest first."""
        await self._flush_deferred()
        rows = (await self.s.execute(select(_B).where(_B.c.finalised.is_(False)).order_by(_B.c.started_at))).all()
        return [_billing_session(r) for r in rows]

    async def save_billing_session(self, b: BillingSession) -> None:
        """Insert or replace by tx_key, with the batch's other writes (one upsert, see _later_billing): this
        runs when a running session's state changes, and an UPDATE (+ INSERT the first time) per unit was
        1-2 round trips of the group commit's writer each (issue 10)."""
        self._later_billing[b.tx_key] = {name: getattr(b, name) for name in _BILLING_FIELDS}

    async def invoice(self, tx_key: str) -> InvoiceRecord | None:
        r = await self.s.scalar(select(InvoiceRow).where(InvoiceRow.tx_key == tx_key))
        return _invoice(r) if r else None

    async def add_invoice(self, inv: InvoiceRecord) -> bool:
        """Store a transaction's invoice. False (and nothing written) when it already has one; the unique
        tx_key also refuses a concurrent second insert at commit."""
        if await self.s.scalar(select(InvoiceRow.id).where(InvoiceRow.tx_key == inv.tx_key)) is not None:
            return False
        fields = {name: getattr(inv, name) for name in _INVOICE_FIELDS}
        self.s.add(InvoiceRow(**fields, lines=[dict(x) for x in inv.lines],
                              anomalies=[dict(x) for x in inv.anomalies], data=dict(inv.data)))
        await self.s.flush()
        return True

    async def invoices(
        self, *, since: datetime | None = None, until: datetime | None = None, station_id: str | None = None,
        site_id: str | None = None, id_tokens: Iterable[str] | None = None, offset: int = 0,
        limit: int | None = 100,
    ) -> list[InvoiceRecord]:
        """Invoices by session end (since <= session_end < until), newest first."""
        q = select(InvoiceRow).order_by(InvoiceRow.session_end.desc(), InvoiceRow.id.desc())
        if since is not None:
            q = q.where(InvoiceRow.session_end >= since)
        if until is not None:
            q = q.where(InvoiceRow.session_end < until)
        if station_id is not None:
            q = q.where(InvoiceRow.station_id == station_id)
        if site_id is not None:
            q = q.where(InvoiceRow.site_id == site_id)
        if id_tokens is not None:
            q = q.where(InvoiceRow.id_token.in_(list(id_tokens)))
        q = q.offset(offset)
        if limit is not None:
            q = q.limit(limit)
        return [_invoice(r) for r in (await self.s.scalars(q)).all()]

    async def add_site_load(self, site_id: str, start: datetime, end: datetime, mean_power_w: float,
                            limit_w: float | None) -> None:
        await self.s.merge(SiteLoadRow(site_id=site_id, start=start, end=end, mean_power_w=mean_power_w,
                                       limit_w=limit_w))

    async def site_load(self, site_id: str, since: datetime, until: datetime, *, offset: int = 0,
                        limit: int | None = None) -> list[SiteLoadBucket]:
        """Load buckets overlapping [since, until), in time order."""
        q = (select(SiteLoadRow).where(SiteLoadRow.site_id == site_id, SiteLoadRow.end > since,
                                       SiteLoadRow.start < until).order_by(SiteLoadRow.start).offset(offset))
        if limit is not None:
            q = q.limit(limit)
        rows = (await self.s.scalars(q)).all()
        return [SiteLoadBucket(r.site_id, r.start, r.end, r.mean_power_w, r.limit_w) for r in rows]

    async def status_changes(self, station_ids: Sequence[str], since: datetime, until: datetime
                             ) -> list[StatusChange]:
        """Connector status rows of these stations in [since, until), preceded by each connector's last
        row before `since` (its state at `since`), in time order."""
        await self._flush_status()
        ids = list(station_ids)
        keyed = (StatusHistoryRow.station_id, StatusHistoryRow.evse_id, StatusHistoryRow.connector_id)
        last_before = (select(func.max(StatusHistoryRow.id)).where(
            StatusHistoryRow.station_id.in_(ids), StatusHistoryRow.evse_id.is_not(None),
            StatusHistoryRow.at < since).group_by(*keyed))
        within = select(StatusHistoryRow).where(
            StatusHistoryRow.station_id.in_(ids), StatusHistoryRow.evse_id.is_not(None),
            StatusHistoryRow.at >= since, StatusHistoryRow.at < until)
        first = (await self.s.scalars(select(StatusHistoryRow).where(StatusHistoryRow.id.in_(last_before)))).all()
        rest = (await self.s.scalars(within)).all()
        rows = sorted([*first, *rest], key=lambda r: (r.at, r.id))
        return [_status_change(r) for r in rows]

    async def station_power(self, station_id: str) -> StationPower | None:
        """Site and maximum power (W) of a station: max_power_w if configured, else A x V x phases."""
        r = await self.s.get(StationRow, station_id)
        if r is None:
            return None
        return StationPower(r.site_id, r.max_power_w or r.max_current_a * r.voltage_v * r.phases)

    async def station_ids_of_site(self, site_id: str) -> list[str]:
        return list((await self.s.scalars(select(StationRow.id).where(StationRow.site_id == site_id)
                                          .order_by(StationRow.id))).all())

    async def ended_transactions_without_invoice(self, since: datetime) -> list[Transaction]:
        """Transactions ended at or after `since` that have no invoice (for billing's start-up catch-up)."""
        await self._flush_tx()
        q = (select(_T).where(_T.c.ended_at >= since, _T.c.key.not_in(select(InvoiceRow.tx_key)))
             .order_by(_T.c.ended_at))
        return [_tx(r) for r in (await self.s.execute(q)).all()]


class Store:
    """Owns the sessionmaker. `session()` is one database transaction; `write(work)` runs `work(session)`
    in a transaction shared with the other writes queued meanwhile (group commit, see group_commit.py)
    and returns once it is committed: the charger message path writes through it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._maker = async_sessionmaker(engine, expire_on_commit=False)
        self.open_transactions = OpenTransactions()
        self.stations = StationDirectory()
        self.group_commit: GroupCommit[StoreSession] = GroupCommit(self.session)
        self._batch = _SqliteBatch(engine.dialect) if sqlite_onehop.is_onehop(engine) else None
        self._pg = (PgBatch(engine.dialect, _T, _TX_FIELDS, _H, _HISTORY_FIELDS, _S, _SAMPLE_FIELDS, _M, _SEQ_FIELDS)
                    if engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg"
                    and pg_batch.available() else None)
        self.health = StoreHealth()

    async def write(self, work: Callable[[StoreSession], Awaitable[T]]) -> T:
        return await self.group_commit.write(work)

    async def station_access(self, station_id: str) -> StationAccessRecord | None:
        """From the StationDirectory; a miss opens a session (which loads or reads it). Even a session
        without a statement costs its setup and commit through SQLAlchemy's greenlet bridge."""
        rec = self.stations.get(station_id)
        if rec is not None:
            return rec
        async with self.session() as s:
            return await s.station_access(station_id)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[StoreSession]:
        """One transaction. A database that cannot be reached raises StoreUnavailable (logged once per
        outage by `health`, not per call)."""
        try:
            async with self._maker() as s:
                ss = StoreSession(s, self.open_transactions, self._batch, self.stations, self._pg)
                try:
                    async with s.begin():
                        yield ss
                        await ss.flush_later(commit=True)  # what a unit wrote is in the commit
                finally:
                    if ss.stations_written:  # dropped when written, and again now: committed or rolled back
                        self.stations.changed(ss.stations_written)
                if ss.written or ss.newest_sample:  # committed: the message path may read these from memory now
                    self.open_transactions.committed(ss.written.values(), ss.newest_sample)
        except Exception as e:
            if not _unavailable(e):
                raise
            self.health.failed(e)
            raise StoreUnavailable(f"database unavailable: {type(e).__name__}") from e
        if not self.health.up:
            self.health.succeeded()


def _insert_ignoring_duplicates(dialect: str, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING in the store's dialect (SQLite and PostgreSQL both have it)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert(table).on_conflict_do_nothing()


if TYPE_CHECKING:  # mypy holds the SQL store to the port (tests/unit/test_static_gates.py)
    def _port(engine: AsyncEngine) -> StorePort:
        return Store(engine)
