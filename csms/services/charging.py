"""Implements the ChargerEvents port: everything chargers report, persisted before it is acknowledged.

Each handler is: look up state, apply pure domain rules, commit, publish the committed fact on the
bus, and return the answer. Nothing here knows an OCPP version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from csms.domain import transactions
from csms.domain.clock import Clock
from csms.domain.enums import (
    AuthorizationStatus,
    ChargingState,
    ConnectorStatus,
    Measurand,
    RateUnit,
    RegistrationStatus,
    TxEventKind,
)
from csms.domain.errors import StoreUnavailable, UnknownStation, UnknownTransaction
from csms.domain.events import (
    ChargingNeedsChanged,
    ExternalLimitChanged,
    MeterSampled,
    StationOnline,
    StationReady,
    StatusChanged,
    TransactionChanged,
)
from csms.domain.ids import EvseRef, StationId, transaction_key
from csms.domain.model import (
    AuthorizationResult,
    ChargingNeeds,
    MeterSample,
    StationInfo,
    Transaction,
    TxEvent,
    TxReply,
)
from csms.domain.ports import BootReply, StationAccess
from csms.domain.records import StationSettings
from csms.domain.store_ports import StorePort, StoreSession

from .bus import EventBus

log = logging.getLogger("csms.charging")


CostQuery = Callable[[Transaction], Awaitable[float | None]]

#: How long (real seconds) a connect's "online" may wait to be written with the station's BootNotification
#: (one unit of work and, unbatched, one commit fewer per reconnect in a boot storm, issue 10). A station
#: that has not booted by then (a reconnect without a reboot, or a boot still queued) is marked online by
#: one write for every station waiting, well before the server's ready grace (1 s) asks for its profiles.
ONLINE_DEFER_S = 0.25
#: After a failed write (the database unavailable), the waiting stations are tried again this much later.
ONLINE_RETRY_S = 1.0


class ChargingService:
    def __init__(
        self, store: StorePort, bus: EventBus, clock: Clock, *, heartbeat_interval_s: int,
        allow_unknown_chargers: bool = False, default_security_profile: int = 1, pending_interval_s: int = 30,
    ) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.heartbeat_interval_s = heartbeat_interval_s
        self.allow_unknown_chargers = allow_unknown_chargers
        self.default_security_profile = default_security_profile
        #: BootNotification interval while Pending: short, so an accepted charger is back soon even if the
        #: TriggerMessage(BootNotification) sent on acceptance is lost.
        self.pending_interval_s = pending_interval_s
        #: Set to billing's live cost (the invoice if the session ended now): asked by the 2.0.1 adapter
        #: for totalCost through `live_cost`, never on the message path of a version that has no use for it.
        self.cost_query: CostQuery | None = None
        # Heartbeats only move last_seen: kept in memory and flushed periodically, so that thousands
        # of idle chargers do not each cost a database write every interval.
        self._last_seen: dict[str, datetime] = {}
        self._protocol: dict[str, str] = {}
        #: Known stations connected but not written online yet: (when, protocol). See ONLINE_DEFER_S.
        self._online_pending: dict[str, tuple[datetime, str]] = {}
        self._online_flush: asyncio.Task[None] | None = None

    # --- handshake ------------------------------------------------------------------------------
    async def access(self, station_id: str) -> StationAccess | None:
        a = await self.store.station_access(station_id)  # in memory (the SQL store's StationDirectory)
        if a is None:
            return None
        return StationAccess(True, a.password_hash,
                             self.default_security_profile if a.security_profile is None else a.security_profile,
                             a.registration)

    # --- connection lifecycle -------------------------------------------------------------------
    async def connected(self, station_id: str, protocol: str) -> None:
        now = self.clock.now()
        self._protocol[station_id] = protocol
        if await self.store.station_access(station_id) is not None:  # in memory (the StationDirectory)
            # Written with its BootNotification, or by flush_online: StationOnline is published then, once
            # committed, as before. Nothing is acknowledged to the charger on it.
            self._online_pending[station_id] = (now, protocol)
            self._schedule_online_flush(ONLINE_DEFER_S)
            log.info("station connected station=%s protocol=%s", station_id, protocol)
            return

        async def work(s: StoreSession) -> None:
            # station_access, not station(): the access record is in memory (the store's StationDirectory)
            if await s.station_access(station_id) is None:
                # Only reachable with allow_unknown_chargers: registered, Pending until an operator accepts.
                await s.save_station_settings(station_id, StationSettings(registration=RegistrationStatus.PENDING))
            await s.set_online(station_id, True, now, protocol)

        await self.store.write(work)
        log.info("station connected station=%s protocol=%s", station_id, protocol)
        self.bus.publish(StationOnline(station_id, True, now))

    def close(self) -> None:
        """At shutdown, after the server closed every connection (whose ends dropped what was waiting)."""
        if self._online_flush is not None:
            self._online_flush.cancel()
            self._online_flush = None

    def _schedule_online_flush(self, delay_s: float) -> None:
        if self._online_flush is None:
            self._online_flush = asyncio.get_running_loop().create_task(self._flush_online_later(delay_s))

    async def _flush_online_later(self, delay_s: float) -> None:
        try:
            await asyncio.sleep(delay_s)
        finally:
            self._online_flush = None
        try:
            await self.flush_online()
        except StoreUnavailable:  # the store logged the outage (once); the stations were put back
            self._schedule_online_flush(ONLINE_RETRY_S)
        except Exception:  # noqa: BLE001 - put back: tried again later, or by the station's boot
            log.exception("marking stations online failed")
            self._schedule_online_flush(ONLINE_RETRY_S)

    async def flush_online(self) -> None:
        """Write "online" for every connected station still waiting for it (one unit of work for all)."""
        pending, self._online_pending = self._online_pending, {}
        if not pending:
            return

        async def work(s: StoreSession) -> None:
            for sid, (at, protocol) in pending.items():
                await s.set_online(sid, True, at, protocol)

        try:
            await self.store.write(work)
        except BaseException:
            for sid, v in pending.items():
                self._online_pending.setdefault(sid, v)
            raise
        for sid, (at, _) in pending.items():
            self.bus.publish(StationOnline(sid, True, at))

    async def disconnected(self, station_id: str) -> None:
        now = self.clock.now()
        self._last_seen.pop(station_id, None)
        self._online_pending.pop(station_id, None)  # its offline is written below, in order
        await self.store.write(lambda s: s.set_online(station_id, False, now))
        log.info("station disconnected station=%s", station_id)
        self.bus.publish(StationOnline(station_id, False, now))

    async def ready(self, station_id: str) -> None:
        st = await self.store.station_access(station_id)  # in memory, see access()
        if st is not None and st.registration is RegistrationStatus.ACCEPTED:
            self.bus.publish(StationReady(station_id, self.clock.now()))

    async def flush_last_seen(self) -> None:
        if not self._last_seen:
            return
        seen, self._last_seen = self._last_seen, {}
        await self.store.write(lambda s: s.touch(seen))

    # --- core messages --------------------------------------------------------------------------
    async def booted(self, station_id: str, info: StationInfo, reason: str | None) -> BootReply:
        now = self.clock.now()
        online = self._online_pending.pop(station_id, None)  # the connect's write joins this unit

        async def work(s: StoreSession) -> RegistrationStatus:
            st = await s.station_access(station_id)  # in memory, see connected()
            if st is None:
                if not self.allow_unknown_chargers:
                    raise UnknownStation(station_id)
                await s.save_station_settings(station_id, StationSettings(registration=RegistrationStatus.PENDING))
                registration = RegistrationStatus.PENDING
            else:
                registration = st.registration
            if online is not None:
                await s.set_online(station_id, True, *online)
            await s.record_boot(station_id, info, self._protocol.get(station_id), now)
            return registration

        try:
            registration = await self.store.write(work)
        except BaseException:
            if online is not None:
                self._online_pending.setdefault(station_id, online)
                self._schedule_online_flush(ONLINE_RETRY_S)
            raise
        if online is not None:
            self.bus.publish(StationOnline(station_id, True, online[0]))
        log.info("boot station=%s vendor=%s model=%s serial=%s firmware=%s reason=%s status=%s", station_id,
                 info.vendor, info.model, info.serial_number, info.firmware_version, reason, registration.value)
        interval = self.pending_interval_s if registration is RegistrationStatus.PENDING else self.heartbeat_interval_s
        return BootReply(registration, interval)

    async def heartbeat(self, station_id: str) -> datetime:
        now = self.clock.now()
        self._last_seen[station_id] = now
        return now

    async def status_changed(
        self, station_id: str, evse: EvseRef | None, status: ConnectorStatus, at: datetime,
        error_code: str | None, charging_state: ChargingState | None = None,
    ) -> None:
        async def work(s: Any) -> None:
            await s.record_status(station_id, evse, status, at, error_code, charging_state)
            if evse is not None and charging_state is not None:
                tx = await s.active_transaction_on(station_id, evse.evse_id)
                if tx is not None and tx.charging_state != charging_state:
                    await s.save_transaction(replace(tx, charging_state=charging_state))

        await self.store.write(work)
        log.info("status station=%s evse=%s status=%s charging_state=%s error=%s", station_id,
                 evse.evse_id if evse else 0, status.value, charging_state.value if charging_state else None,
                 error_code)
        self.bus.publish(StatusChanged(station_id, evse, status, charging_state, at))

    async def authorize(self, station_id: str, id_token: str) -> AuthorizationResult:
        async with self.store.session() as s:
            return await self._authorize(s, id_token)

    async def _authorize(self, s: Any, id_token: str) -> AuthorizationResult:
        tok = await s.id_token(id_token)
        if tok is None:
            return AuthorizationResult(AuthorizationStatus.INVALID)
        if tok.expires_at is not None and tok.expires_at <= self.clock.now():
            return AuthorizationResult(AuthorizationStatus.EXPIRED, tok.expires_at, tok.group)
        return AuthorizationResult(tok.status, tok.expires_at, tok.group)

    # --- transactions ---------------------------------------------------------------------------
    async def transaction(self, event: TxEvent) -> TxReply:
        async def work(s: Any) -> tuple[AuthorizationResult | None, Transaction, transactions.TxOutcome | None]:
            auth = await self._authorize(s, event.id_token) if event.id_token else None
            return (auth, *await self._apply_tx(s, event, auth))

        auth, tx, outcome = await self.store.write(work)
        if outcome is not None and outcome.changed:
            t = outcome.transaction
            # Starts and ends at INFO; every meter reading at DEBUG (at 10,000 chargers, ~170 lines a second)
            log.log(logging.INFO if outcome.started or outcome.ended else logging.DEBUG,
                    "transaction %s station=%s tx=%s evse=%s token=%s energy_wh=%.0f", event.kind.value.lower(),
                    t.station_id, t.charger_tx_id, t.evse.evse_id, t.id_token, t.energy_wh)
            self.bus.publish(TransactionChanged(t, outcome.started, outcome.ended, event.at))
        return TxReply(tx.key, tx.charger_tx_id, auth, transaction=tx)

    async def live_cost(self, tx_key: str, tx: Transaction | None = None) -> float | None:
        """What the session would cost if it ended now, incl. tax (its invoice total once invoiced).
        `tx`: the transaction as just committed (TxReply.transaction), else it is read."""
        if self.cost_query is None:
            return None
        if tx is None or tx.key != tx_key:
            async with self.store.session() as s:
                tx = await s.transaction(tx_key)
        return None if tx is None else await self.cost_query(tx)

    async def _apply_tx(
        self, s: Any, ev: TxEvent, auth: AuthorizationResult | None
    ) -> tuple[Transaction, transactions.TxOutcome | None]:
        group = auth.group if auth else None
        if ev.charger_tx_id is None:  # 1.6 StartTransaction: the CSMS assigns the id
            fp = transactions.start_fingerprint(ev)
            existing = await s.transaction_by_fingerprint(fp)
            if existing is not None:
                return existing, transactions.TxOutcome(existing, changed=False)
            tx = await s.insert_v16_transaction(transactions.new_transaction(ev, "", "", group), fp)  # type: ignore[arg-type]
            await self._store_samples(s, ev, tx)
            return tx, transactions.TxOutcome(tx, changed=True, started=True)

        seen = False
        if ev.seq_no is not None:
            tx, seen = await s.transaction_and_seq_seen(ev.station_id, ev.charger_tx_id, ev.seq_no)
        else:
            tx = await s.transaction_by_charger_id(ev.station_id, ev.charger_tx_id)
        created = False
        if tx is None:
            if ev.kind is not TxEventKind.STARTED and ev.seq_no is None:
                # 1.6 StopTransaction/MeterValues for an id we never issued.
                raise UnknownTransaction(f"{ev.station_id}/{ev.charger_tx_id}")
            # 2.0.1: the charger owns the id. An Updated/Ended whose Started was lost still opens one,
            # so that energy is not lost (the spec lets queued messages arrive in any order).
            key = transaction_key(ev.station_id, ev.charger_tx_id)
            tx = transactions.new_transaction(ev, key, ev.charger_tx_id, group)
            created = True
            seen = ev.seq_no is not None and await s.seq_seen(tx.key, ev.seq_no)
        if (not created and ev.seq_no is None and ev.kind is TxEventKind.UPDATED and ev.samples
                and await s.samples_stored(tx.key, ev.samples)):
            seen = True  # 1.6 MeterValues replayed (no seqNo; resent after a reconnect): changes nothing
        outcome = transactions.apply(tx, ev, seen)
        if created:
            outcome = transactions.TxOutcome(outcome.transaction, True, started=True, ended=outcome.ended)
        if not outcome.changed:
            return tx, outcome
        await s.save_transaction(outcome.transaction)
        if ev.seq_no is not None:
            await s.record_seq(tx.key, ev.seq_no, ev.kind.value, ev.at)
        await self._store_samples(s, ev, outcome.transaction)
        return outcome.transaction, outcome

    async def _store_samples(self, s: Any, ev: TxEvent, tx: Transaction) -> None:
        if ev.samples:
            await s.add_samples(ev.station_id, tx.evse.evse_id, tx.key, ev.samples)

    async def meter_values(
        self, station_id: str, evse: EvseRef | None, charger_tx_id: str | None, samples: tuple[MeterSample, ...]
    ) -> None:
        if charger_tx_id is not None:
            await self.transaction(TxEvent(TxEventKind.UPDATED, StationId(station_id), samples[-1].at if samples
                                           else self.clock.now(), charger_tx_id, evse, samples=samples))
            return

        async def work(s: Any) -> None:
            tx_key = None
            if evse is not None:
                tx = await s.active_transaction_on(station_id, evse.evse_id)
                tx_key = tx.key if tx else None
            await s.add_samples(station_id, evse.evse_id if evse else None, tx_key, samples)

        await self.store.write(work)
        for smp in samples:
            self.bus.publish(MeterSampled(station_id, evse, smp.get(Measurand.POWER_IMPORT_W),
                                          smp.get(Measurand.ENERGY_IMPORT_WH), smp.at))

    async def charging_needs(self, needs: ChargingNeeds) -> None:
        await self.store.write(lambda s: s.add_charging_needs(needs))
        log.info("charging needs station=%s evse=%s energy_wh=%s departure=%s source=%s", needs.station_id,
                 needs.evse.evse_id, needs.energy_amount_wh, needs.departure_time, needs.source)
        self.bus.publish(ChargingNeedsChanged(needs))

    async def charging_limit(
        self, station_id: str, evse: EvseRef | None, source: str, limit: float | None, unit: RateUnit | None
    ) -> None:
        now = self.clock.now()
        detail = {"evse_id": evse.evse_id if evse else None, "source": source, "limit": limit,
                  "unit": unit.value if unit else None}
        await self.store.write(lambda s: s.add_station_event(station_id, "ChargingLimit", detail, now))
        self.bus.publish(ExternalLimitChanged(station_id, evse, source, limit, unit, now))

    async def notice(self, station_id: str, kind: str, detail: dict[str, object]) -> None:
        detail_json, now = _jsonable(detail), self.clock.now()
        await self.store.write(lambda s: s.add_station_event(station_id, kind, detail_json, now))
        log.info("notice station=%s kind=%s", station_id, kind)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, datetime):
        return v.isoformat()
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)
