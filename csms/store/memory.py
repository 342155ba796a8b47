"""An in-memory store: the StorePort of csms.domain.store_ports without a database, for service tests
that test service logic rather than SQL.

It keeps the same promises as the SQL store (tests/contract runs one suite against both): a session is
a transaction (what it wrote is visible to others only after a normal exit, nothing of it after an
error), ids come from sequences that a rollback does not rewind, and every value handed out is frozen.
Concurrent sessions behave like READ COMMITTED with row-level last-writer-wins: each session works on a
copy of the tables taken when it begins and, at commit, writes back only the rows it changed.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from csms.domain.enums import ChargingState, ConnectorStatus, ProtocolVersion
from csms.domain.ids import EvseRef, StationId, transaction_key
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


T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _StationRow:
    settings: StationSettings
    info: StationInfo | None = None
    protocol: str | None = None
    online: bool = False
    last_seen: datetime | None = None
    last_boot: datetime | None = None


@dataclass(frozen=True, slots=True)
class _TxRow:
    id: int
    tx: Transaction
    fingerprint: str | None


@dataclass(frozen=True, slots=True)
class _SampleRow:
    id: int
    station_id: str
    evse_id: int | None
    tx_key: str | None
    value: StoredValue


class _Tables:
    """Every table as a dict by primary key (append-only tables by a sequence id)."""

    NAMES = ("stations", "connectors", "status_history", "station_events", "transactions", "seqs", "samples",
             "id_tokens", "groups", "needs", "bookings", "billing", "invoices", "site_load")

    def __init__(self) -> None:
        self.stations: dict[str, _StationRow] = {}
        self.connectors: dict[tuple[str, int, int], ConnectorState] = {}
        self.status_history: dict[int, StatusChange] = {}
        self.station_events: dict[int, tuple[str, StationEvent]] = {}
        self.transactions: dict[str, _TxRow] = {}  # by key
        self.seqs: dict[tuple[str, int], tuple[str, datetime]] = {}
        #: by natural key (tx, instant, measurand, phase): a replayed value is not stored twice
        self.samples: dict[tuple[str | None, datetime, str, str], _SampleRow] = {}
        self.id_tokens: dict[str, IdToken] = {}
        self.groups: dict[str, float] = {}
        self.needs: dict[int, ChargingNeeds] = {}
        self.bookings: dict[int, Booking] = {}
        self.billing: dict[str, BillingSession] = {}
        self.invoices: dict[str, tuple[int, InvoiceRecord]] = {}
        self.site_load: dict[tuple[str, datetime], SiteLoadBucket] = {}

    def copy(self) -> _Tables:
        c = _Tables()
        for name in self.NAMES:
            setattr(c, name, dict(getattr(self, name)))
        return c


class MemoryStore:
    """`session()` and `write(work)` as csms.store.repositories.Store (without group commit: a write is
    its own transaction, which is what a group of one is)."""

    def __init__(self) -> None:
        self._tables = _Tables()
        self._ids = itertools.count(1)  # one sequence for every table: ids are unique, increasing, never reused

    @asynccontextmanager
    async def session(self) -> AsyncIterator[MemorySession]:
        s = MemorySession(self._tables.copy(), self._ids)
        yield s
        s.commit_into(self._tables)

    async def write(self, work: Callable[[MemorySession], Awaitable[T]]) -> T:
        async with self.session() as s:
            return await work(s)

    async def station_access(self, station_id: str) -> StationAccessRecord | None:
        async with self.session() as s:
            return await s.station_access(station_id)


class MemorySession:
    """One transaction over a private copy of the tables; `commit_into` writes back the rows it changed."""

    def __init__(self, tables: _Tables, ids: Iterable[int]) -> None:
        self._t = tables
        self._ids = iter(ids)
        self._dirty: dict[str, set[Hashable]] = {name: set() for name in _Tables.NAMES}

    def _set(self, table: str, key: K, value: V) -> None:
        getattr(self._t, table)[key] = value
        self._dirty[table].add(key)

    def _del(self, table: str, key: Hashable) -> bool:
        self._dirty[table].add(key)
        return getattr(self._t, table).pop(key, None) is not None

    def _next_id(self) -> int:
        return next(self._ids)

    def commit_into(self, base: _Tables) -> None:
        for table, keys in self._dirty.items():
            mine, theirs = getattr(self._t, table), getattr(base, table)
            for k in keys:
                if k in mine:
                    theirs[k] = mine[k]
                else:
                    theirs.pop(k, None)

    # --- stations -----------------------------------------------------------------------------------
    async def station(self, station_id: str) -> Station | None:
        r = self._t.stations.get(station_id)
        return _station(station_id, r) if r else None

    async def stations(self) -> list[Station]:
        return [_station(sid, r) for sid, r in sorted(self._t.stations.items())]

    async def site_stations(self, site_id: str) -> list[Station]:
        return [_station(sid, r) for sid, r in sorted(self._t.stations.items()) if r.settings.site_id == site_id]

    async def station_access(self, station_id: str) -> StationAccessRecord | None:
        r = self._t.stations.get(station_id)
        if r is None:
            return None
        return StationAccessRecord(r.settings.password_hash, r.settings.security_profile, r.settings.registration,
                                   r.settings.site_id)

    async def station_settings(self, station_id: str) -> StationSettings | None:
        r = self._t.stations.get(station_id)
        return r.settings if r else None

    async def save_station_settings(self, station_id: str, settings: StationSettings) -> None:
        r = self._t.stations.get(station_id)
        self._set("stations", station_id, replace(r, settings=settings) if r else _StationRow(settings))

    async def delete_station(self, station_id: str) -> bool:
        for k in [k for k in self._t.connectors if k[0] == station_id]:  # ON DELETE CASCADE
            self._del("connectors", k)
        return self._del("stations", station_id)

    async def record_boot(self, station_id: str, info: StationInfo, protocol: str | None, at: datetime) -> None:
        r = self._t.stations.get(station_id)
        if r is not None:
            self._set("stations", station_id, replace(r, info=info, protocol=protocol, last_boot=at, last_seen=at))

    async def set_online(self, station_id: str, online: bool, at: datetime, protocol: str | None = None) -> None:
        r = self._t.stations.get(station_id)
        if r is not None:
            self._set("stations", station_id, replace(r, online=online, last_seen=at,
                                                      protocol=protocol or r.protocol))

    async def touch(self, last_seen: Mapping[str, datetime]) -> None:
        for sid, at in last_seen.items():
            r = self._t.stations.get(sid)
            if r is not None:
                self._set("stations", sid, replace(r, last_seen=at))

    async def mark_all_offline(self) -> None:
        for sid, r in list(self._t.stations.items()):
            self._set("stations", sid, replace(r, online=False))

    async def record_status(self, station_id: str, evse: EvseRef | None, status: ConnectorStatus, at: datetime,
                            error_code: str | None, charging_state: ChargingState | None) -> None:
        self._set("status_history", self._next_id(), StatusChange(
            station_id, evse.evse_id if evse else None, evse.connector_id if evse else None, status,
            charging_state, error_code, at))
        if evse is None:
            return
        key = (station_id, evse.evse_id, evse.connector_id)
        current = self._t.connectors.get(key)
        if current is None or current.at <= at:  # a late, queued notification must not overwrite a newer one
            self._set("connectors", key, ConnectorState(StationId(station_id), evse, status, at, error_code))

    async def connectors(self, station_id: str | None = None) -> list[ConnectorState]:
        return [c for k, c in sorted(self._t.connectors.items()) if station_id in (None, k[0])]

    async def status_history(self, station_id: str, limit: int = 100, offset: int = 0) -> list[StatusChange]:
        rows = [r for _, r in sorted(self._t.status_history.items(), reverse=True) if r.station_id == station_id]
        return rows[offset:offset + limit]

    async def add_station_event(self, station_id: str, kind: str, detail: JsonObject, at: datetime) -> None:
        self._set("station_events", self._next_id(), (station_id, StationEvent(kind, dict(detail), at)))

    async def station_events(self, station_id: str, limit: int = 100, offset: int = 0) -> list[StationEvent]:
        rows = [e for _, (sid, e) in sorted(self._t.station_events.items(), reverse=True) if sid == station_id]
        return rows[offset:offset + limit]

    # --- transactions -------------------------------------------------------------------------------
    def _txs(self) -> list[_TxRow]:
        return sorted(self._t.transactions.values(), key=lambda r: r.id)

    async def transaction(self, key: str) -> Transaction | None:
        r = self._t.transactions.get(key)
        return r.tx if r else None

    async def transaction_by_charger_id(self, station_id: str, charger_tx_id: str) -> Transaction | None:
        return await self.transaction(transaction_key(station_id, charger_tx_id))

    async def transaction_and_seq_seen(self, station_id: str, charger_tx_id: str, seq_no: int
                                       ) -> tuple[Transaction | None, bool]:
        tx = await self.transaction_by_charger_id(station_id, charger_tx_id)
        return (tx, (tx.key, seq_no) in self._t.seqs) if tx else (None, False)

    async def transaction_by_fingerprint(self, fingerprint: str) -> Transaction | None:
        return next((r.tx for r in self._txs() if r.fingerprint == fingerprint), None)

    async def active_transactions(self, station_id: str | None = None) -> list[Transaction]:
        return [r.tx for r in self._txs() if r.tx.active and station_id in (None, r.tx.station_id)]

    async def site_active_transactions(self, site_id: str) -> list[Transaction]:
        ids = {sid for sid, r in self._t.stations.items() if r.settings.site_id == site_id}
        return [r.tx for r in self._txs() if r.tx.active and r.tx.station_id in ids]

    async def active_transaction_on(self, station_id: str, evse_id: int) -> Transaction | None:
        txs = [tx for tx in await self.active_transactions(station_id) if tx.evse.evse_id == evse_id]
        return txs[-1] if txs else None

    async def transactions(self, *, since: datetime | None = None, until: datetime | None = None,
                           station_id: str | None = None, id_tokens: Iterable[str] | None = None,
                           offset: int = 0, limit: int = 100) -> list[Transaction]:
        tokens = None if id_tokens is None else set(id_tokens)
        rows = sorted(self._t.transactions.values(), key=lambda r: (r.tx.started_at, r.id), reverse=True)
        txs = [r.tx for r in rows if (since is None or r.tx.started_at >= since)
               and (until is None or r.tx.started_at < until) and station_id in (None, r.tx.station_id)
               and (tokens is None or r.tx.id_token in tokens)]
        return txs[offset:offset + limit]

    async def insert_v16_transaction(self, tx: Transaction, fingerprint: str) -> Transaction:
        row_id = self._next_id()
        key = transaction_key(tx.station_id, str(row_id))
        tx = replace(tx, key=key, charger_tx_id=str(row_id))
        self._set("transactions", key, _TxRow(row_id, tx, fingerprint))
        return tx

    async def save_transaction(self, tx: Transaction) -> None:
        r = self._t.transactions.get(tx.key)
        self._set("transactions", tx.key, _TxRow(r.id, tx, r.fingerprint) if r else _TxRow(self._next_id(), tx, None))

    async def seq_seen(self, tx_key: str, seq_no: int) -> bool:
        return (tx_key, seq_no) in self._t.seqs

    async def record_seq(self, tx_key: str, seq_no: int, kind: str, at: datetime) -> None:
        if (tx_key, seq_no) in self._t.seqs:  # the unique (tx_key, seq_no) of the SQL store
            raise ValueError(f"seqNo {seq_no} of {tx_key} was applied already")
        self._set("seqs", (tx_key, seq_no), (kind, at))

    async def add_samples(self, station_id: str, evse_id: int | None, tx_key: str | None,
                          samples: Iterable[MeterSample]) -> None:
        for s in samples:
            for v in s.values:
                key = (tx_key, s.at, v.measurand.value, v.phase or "")
                if key not in self._t.samples:
                    self._set("samples", key, _SampleRow(self._next_id(), station_id, evse_id, tx_key, StoredValue(
                        s.at, v.measurand.value, v.phase, v.value, v.context)))

    async def samples_stored(self, tx_key: str, samples: Iterable[MeterSample]) -> bool:
        want = {(tx_key, s.at, v.measurand.value, v.phase or "") for s in samples for v in s.values}
        return bool(want) and all(k in self._t.samples for k in want)

    async def samples(self, tx_key: str, *, offset: int = 0, limit: int | None = None) -> list[StoredValue]:
        rows = sorted((r for r in self._t.samples.values() if r.tx_key == tx_key), key=lambda r: (r.value.at, r.id))
        rows = rows[offset:] if limit is None else rows[offset:offset + limit]
        return [r.value for r in rows]

    async def session_durations_s(self, id_token: str, limit: int = 50) -> list[float]:
        ended = sorted((r.tx for r in self._t.transactions.values()
                        if r.tx.id_token == id_token and r.tx.ended_at is not None),
                       key=lambda t: t.started_at, reverse=True)
        return [(t.ended_at - t.started_at).total_seconds() for t in ended[:limit] if t.ended_at is not None]

    async def ended_sessions_since(self, station_ids: Iterable[str], since: datetime
                                   ) -> list[tuple[datetime, datetime, float]]:
        ids = set(station_ids)
        return [(r.tx.started_at, r.tx.ended_at, float(r.tx.energy_wh or 0.0)) for r in self._txs()
                if r.tx.station_id in ids and r.tx.started_at >= since and r.tx.ended_at is not None]

    async def stated_departures_since(self, station_ids: Iterable[str], since: datetime
                                      ) -> list[tuple[datetime, datetime]]:
        ids = set(station_ids)
        out: list[tuple[datetime, datetime]] = []
        for r in self._txs():
            t = r.tx
            if t.station_id not in ids or t.started_at < since or t.ended_at is None:
                continue
            stated = [n.departure_time for _, n in sorted(self._t.needs.items())
                      if n.station_id == t.station_id and n.evse.evse_id == t.evse.evse_id
                      and n.departure_time is not None
                      and t.started_at - NEEDS_BEFORE_START <= n.received_at <= t.ended_at]
            if stated and stated[-1] is not None:
                out.append((stated[-1], t.ended_at))
        return out

    async def ended_transactions_without_invoice(self, since: datetime) -> list[Transaction]:
        txs = [r.tx for r in self._txs() if r.tx.ended_at is not None and r.tx.ended_at >= since
               and r.tx.key not in self._t.invoices]
        return sorted(txs, key=lambda t: t.ended_at or since)

    # --- tokens and groups --------------------------------------------------------------------------
    async def id_token(self, value: str) -> IdToken | None:
        return self._t.id_tokens.get(value)

    async def id_tokens(self) -> list[IdToken]:
        return [t for _, t in sorted(self._t.id_tokens.items())]

    async def upsert_id_token(self, t: IdToken) -> None:
        self._set("id_tokens", t.value, t)

    async def delete_id_token(self, value: str) -> bool:
        return self._del("id_tokens", value)

    async def groups(self) -> dict[str, float]:
        return dict(self._t.groups)

    async def upsert_group(self, name: str, priority: float) -> None:
        self._set("groups", name, priority)

    async def delete_group(self, name: str) -> bool:
        return self._del("groups", name)

    # --- charging needs -----------------------------------------------------------------------------
    async def add_charging_needs(self, n: ChargingNeeds) -> None:
        # Stored per EVSE: the SQL row has no connector, so it reads back as connector 1.
        self._set("needs", self._next_id(), replace(n, evse=EvseRef(n.evse.evse_id, 1)))

    async def charging_needs_since(self, station_id: str, evse_id: int, since: datetime) -> list[ChargingNeeds]:
        return [n for _, n in sorted(self._t.needs.items()) if n.station_id == station_id
                and n.evse.evse_id == evse_id and n.received_at >= since]

    async def site_charging_needs_since(self, site_id: str, since: datetime) -> list[ChargingNeeds]:
        ids = {sid for sid, r in self._t.stations.items() if r.settings.site_id == site_id}
        return [n for _, n in sorted(self._t.needs.items()) if n.station_id in ids and n.received_at >= since]

    async def latest_charging_needs(self, station_id: str, evse_id: int, since: datetime
                                    ) -> ChargingNeeds | None:
        needs = await self.charging_needs_since(station_id, evse_id, since)
        return needs[-1] if needs else None

    # --- bookings -----------------------------------------------------------------------------------
    async def add_booking(self, b: Booking) -> Booking:
        b = replace(b, id=self._next_id(), transaction_key=None)
        self._set("bookings", b.id, b)
        return b

    async def booking(self, booking_id: int) -> Booking | None:
        return self._t.bookings.get(booking_id)

    async def set_booking(self, booking_id: int, status: str, *, transaction_key: str | None = None,
                          only_if: Iterable[str] | None = None) -> bool:
        b = self._t.bookings.get(booking_id)
        if b is None or (only_if is not None and b.status not in set(only_if)):
            return False
        self._set("bookings", booking_id, replace(b, status=status, transaction_key=transaction_key or b.transaction_key))
        return True

    async def bookings(self, *, site_id: str | None = None, station_id: str | None = None,
                       evse_id: int | None = None, overlapping: tuple[datetime, datetime] | None = None,
                       statuses: Iterable[str] | None = None, id_tokens: Iterable[str] | None = None,
                       offset: int = 0, limit: int = 1000) -> list[Booking]:
        sts = None if statuses is None else set(statuses)
        tokens = None if id_tokens is None else set(id_tokens)
        rows = sorted(self._t.bookings.values(), key=lambda b: (b.start, b.id))
        out = [b for b in rows if site_id in (None, b.site_id) and station_id in (None, b.station_id)
               and evse_id in (None, b.evse_id)
               and (overlapping is None or (b.start < overlapping[1] and b.end > overlapping[0]))
               and (sts is None or b.status in sts) and (tokens is None or b.id_token in tokens)]
        return out[offset:offset + limit]

    # --- billing ------------------------------------------------------------------------------------
    async def billing_session(self, tx_key: str) -> BillingSession | None:
        return self._t.billing.get(tx_key)

    async def open_billing_sessions(self) -> list[BillingSession]:
        return sorted((b for b in self._t.billing.values() if not b.finalised), key=lambda b: b.started_at)

    async def save_billing_session(self, b: BillingSession) -> None:
        self._set("billing", b.tx_key, b)

    async def invoice(self, tx_key: str) -> InvoiceRecord | None:
        r = self._t.invoices.get(tx_key)
        return r[1] if r else None

    async def add_invoice(self, inv: InvoiceRecord) -> bool:
        if inv.tx_key in self._t.invoices:
            return False
        self._set("invoices", inv.tx_key, (self._next_id(), inv))
        return True

    async def invoices(self, *, since: datetime | None = None, until: datetime | None = None,
                       station_id: str | None = None, site_id: str | None = None,
                       id_tokens: Iterable[str] | None = None, offset: int = 0,
                       limit: int | None = 100) -> list[InvoiceRecord]:
        tokens = None if id_tokens is None else set(id_tokens)
        rows = sorted(self._t.invoices.values(), key=lambda r: (r[1].session_end, r[0]), reverse=True)
        out = [i for _, i in rows if (since is None or i.session_end >= since)
               and (until is None or i.session_end < until) and station_id in (None, i.station_id)
               and site_id in (None, i.site_id) and (tokens is None or i.id_token in tokens)]
        return out[offset:] if limit is None else out[offset:offset + limit]

    # --- sites --------------------------------------------------------------------------------------
    async def station_ids_of_site(self, site_id: str) -> list[str]:
        return sorted(sid for sid, r in self._t.stations.items() if r.settings.site_id == site_id)

    async def station_power(self, station_id: str) -> StationPower | None:
        r = self._t.stations.get(station_id)
        if r is None:
            return None
        st = r.settings
        return StationPower(st.site_id, st.max_power_w or st.max_current_a * st.voltage_v * st.phases)

    async def add_site_load(self, site_id: str, start: datetime, end: datetime, mean_power_w: float,
                            limit_w: float | None) -> None:
        self._set("site_load", (site_id, start), SiteLoadBucket(site_id, start, end, mean_power_w, limit_w))

    async def site_load(self, site_id: str, since: datetime, until: datetime, *, offset: int = 0,
                        limit: int | None = None) -> list[SiteLoadBucket]:
        rows = [b for k, b in sorted(self._t.site_load.items())
                if k[0] == site_id and b.end > since and b.start < until]
        return rows[offset:] if limit is None else rows[offset:offset + limit]

    async def status_changes(self, station_ids: Sequence[str], since: datetime, until: datetime
                             ) -> list[StatusChange]:
        ids = set(station_ids)
        rows = [(i, r) for i, r in sorted(self._t.status_history.items()) if r.station_id in ids
                and r.evse_id is not None]
        last_before: dict[tuple[str, int | None, int | None], tuple[int, StatusChange]] = {}
        for i, r in rows:
            if r.at < since:
                last_before[(r.station_id, r.evse_id, r.connector_id)] = (i, r)
        within = [(i, r) for i, r in rows if since <= r.at < until]
        return [r for _, r in sorted([*last_before.values(), *within], key=lambda ir: (ir[1].at, ir[0]))]


def _station(station_id: str, r: _StationRow) -> Station:
    st = r.settings
    return Station(id=StationId(station_id), site_id=st.site_id, registration=st.registration, info=r.info,
                   protocol=ProtocolVersion(r.protocol) if r.protocol else None, online=r.online,
                   last_seen=r.last_seen, max_current_a=st.max_current_a, phases=st.phases, voltage_v=st.voltage_v)




if TYPE_CHECKING:  # mypy holds the fake to the port (tests/unit/test_static_gates.py)
    _port: StorePort = MemoryStore()
