"""One simulated charging station: connection lifecycle, EV physics loop and the awaitable test API.

The protocol-specific wire work is delegated to an adapter (:mod:`simulator.ocpp.v16` or
:mod:`simulator.ocpp.v201`); this module is version-neutral. State changes come from the pure
:mod:`simulator.station`, limits from the pure :mod:`simulator.profiles`, energy from :mod:`simulator.ev`.

Outbound messages (except BootNotification and Heartbeat) go through one ordered outbox worker, so
StatusNotification / transaction / meter messages reach the CSMS in the order they happened.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import websockets

from simulator import profiles as pf
from simulator.certificates import CertificateStore
from simulator.clock import SimClock
from simulator.commands import CsmsCommandsMixin
from simulator.ev import EV, amps_from_watts
from simulator.ocpp.base import ChargerOffline, MeterSample
from simulator.recorder import PowerSample, ProfileRecord, Recorder, SessionRecord
from simulator.station import Evse, Status, StatusChanged, Transaction, TransitionError


class AuthorizationRejected(RuntimeError):
    """The CSMS did not accept the id token (Authorize or transaction start)."""


@dataclass(slots=True)
class ChargerConfig:
    """Static configuration of one simulated station. Times are simulated seconds unless ``_real_``."""

    charger_id: str
    url: str = "ws://127.0.0.1:9000/ocpp"      # the charger connects to f"{url}/{charger_id}"
    protocol: str = "1.6"                      # "1.6" | "2.0.1"
    password: str | None = None                # HTTP Basic auth (username = charger_id)
    ssl_context: Any = None                    # ssl.SSLContext for wss:// (CA to trust, client certificate)
    vendor: str = "GridChargeSim"
    model: str = "SimAC22"
    firmware: str = "sim-0.1"
    evse_count: int = 1
    max_current_a: float = 32.0                # hardware limit per phase
    phases: int = 3
    voltage_v: float = 230.0
    meter_interval_s: int = 60                 # MeterValueSampleInterval / SampledDataTxUpdatedInterval
    heartbeat_interval_s: int = 300            # until the CSMS sets one in BootNotification
    physics_tick_s: float = 10.0               # EV physics step (re-evaluated earlier on profile changes)
    min_real_tick_s: float = 0.02              # never step faster than this in real time
    min_heartbeat_real_s: float = 1.0          # heartbeats no more often than this in real time
    min_boot_retry_real_s: float = 0.5
    response_timeout_s: float = 10.0           # real seconds to wait for a CALLRESULT
    reconnect_initial_real_s: float = 0.5
    reconnect_max_real_s: float = 30.0
    authorize_remote_start: bool = False       # AuthorizeRemoteTxRequests
    send_charging_needs: bool = True           # 2.0.1 NotifyEVChargingNeeds after the transaction starts
    reject_profiles: bool = False              # fault injection: reject every SetChargingProfile
    max_stack_level: int = 8
    max_schedule_periods: int = 48
    rate_units: tuple[str, ...] = ("A", "W")   # ChargingScheduleAllowedChargingRateUnit
    keep_messages: bool = True                 # record every frame (turn off for very large fleets)

    @property
    def max_power_w(self) -> float:
        return self.max_current_a * self.voltage_v * self.phases

    @property
    def endpoint(self) -> str:
        return f"{self.url.rstrip('/')}/{self.charger_id}"


@dataclass(slots=True)
class _OutItem:
    make: Callable[[], Awaitable[Any]]
    future: asyncio.Future[Any]
    persistent: bool
    what: str
    queued_at: datetime | None = None     # simulated time it was queued (for the outbox delay statistic)


@dataclass(slots=True)
class _EvseRuntime:
    last_t: datetime
    limit: pf.EffectiveLimit | None = None
    power_w: float = 0.0
    pending_remote: tuple[str, int | None] | None = None   # (id_token, remote_start_id) before plug-in
    session: SessionRecord | None = None
    last_meter_at: datetime | None = None


def _make_adapter(charger: Charger) -> Any:
    if charger.config.protocol in ("1.6", "ocpp1.6", "16"):
        from simulator.ocpp.v16 import V16Adapter
        return V16Adapter(charger)
    if charger.config.protocol in ("2.0.1", "ocpp2.0.1", "201"):
        from simulator.ocpp.v201 import V201Adapter
        return V201Adapter(charger)
    raise ValueError(f"unknown protocol {charger.config.protocol!r}")


class Charger(CsmsCommandsMixin):
    """A simulated OCPP charging station (one connection, ``evse_count`` EVSEs with one connector each).

    Typical test use::

        cp = Charger(ChargerConfig("SIM-0001", url=url, protocol="2.0.1"), SimClock(speedup=60))
        await cp.connect()                       # start + wait for BootNotification Accepted
        await cp.plug_in(EV(soc=0.2, energy_need_wh=20_000), "TAG1")
        await cp.start_charging()                # Authorize, then StartTransaction / TransactionEvent
        await cp.wait_for(lambda: cp.received_profiles)
        assert cp.power_w <= cp.effective_limit_w
        await cp.stop(); await cp.unplug(); await cp.close()
    """

    def __init__(self, config: ChargerConfig, clock: SimClock | None = None,
                 recorder: Recorder | None = None) -> None:
        self.config = config
        self.clock = clock or SimClock()
        self.recorder = recorder or Recorder(config.charger_id, keep_messages=config.keep_messages)
        #: Its own certificate (SignCertificate -> CertificateSigned) and installed roots.
        self.certificates = CertificateStore(config.charger_id, config.vendor)
        self.adapter = _make_adapter(self)
        now = self.clock.now()
        self.evses: dict[int, Evse] = {i: Evse(i) for i in range(1, config.evse_count + 1)}
        self._rt: dict[int, _EvseRuntime] = {i: _EvseRuntime(last_t=now) for i in self.evses}
        self.installed_profiles: list[pf.ChargingProfile] = []
        self.heartbeat_interval_s = config.heartbeat_interval_s
        self.meter_interval_s = config.meter_interval_s
        self.registration_status: str | None = None
        self.boot_count = 0
        self.reject_profiles = config.reject_profiles
        self._booted = asyncio.Event()
        self._boot_now = asyncio.Event()  # TriggerMessage(BootNotification) while not yet Accepted
        self._outbox: asyncio.Queue[_OutItem] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._conn_tasks: list[asyncio.Task[Any]] = []
        self._ws: Any = None
        self._closing = False
        self._drop = asyncio.Event()
        self._offline_until: datetime | None = None
        self._boot_reason = "PowerUp"
        self._inflight_at: datetime | None = None      # queued_at of the outbox item being sent

    # ================================================================== lifecycle
    async def start(self) -> None:
        """Start the connection supervisor, outbox worker and physics loop (returns immediately)."""
        if self._tasks:
            return
        self._closing = False
        for coro in (self._supervise(), self._outbox_worker(), self._physics_loop(), self._meter_loop()):
            self._tasks.append(asyncio.create_task(coro))

    async def connect(self, timeout: float = 10.0) -> None:
        """Start and wait (real seconds) until the CSMS accepted the BootNotification."""
        await self.start()
        await self.wait_booted(timeout)

    async def wait_booted(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._booted.wait(), timeout)

    @property
    def online(self) -> bool:
        """Connected and BootNotification accepted."""
        return self._booted.is_set()

    async def close(self) -> None:
        """Stop everything and close the connection (no StopTransaction is sent)."""
        self._closing = True
        self._drop.set()
        tasks = self._tasks + self._conn_tasks
        for t in tasks:
            t.cancel()
        if tasks:  # bounded: a task that swallows its cancellation must not hang the caller
            await asyncio.wait(tasks, timeout=5.0)
        self._tasks.clear()
        self._conn_tasks.clear()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5.0)
        self._booted.clear()

    async def __aenter__(self) -> Charger:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def disconnect(self, offline_s: float = 0.0) -> None:
        """Fault injection: drop the connection; reconnect (and boot) after ``offline_s`` simulated s."""
        self._offline_until = self.clock.now() + timedelta(seconds=offline_s)
        self._drop.set()

    async def reboot(self, reason: str = "HardReset") -> None:
        """Reset: end running transactions (``reason``), drop TxProfiles, reconnect and boot again."""
        for evse_id, evse in self.evses.items():
            if evse.tx is not None:
                with contextlib.suppress(Exception):
                    await self.stop(reason, evse_id=evse_id)
        await self.flush()
        self.installed_profiles = [p for p in self.installed_profiles if p.purpose is not pf.Purpose.TX]
        self._boot_reason = "RemoteReset"
        self._offline_until = None
        self._drop.set()

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait (real seconds) until every queued outbound message has been handled."""
        async def _wait() -> None:
            while not self._outbox.empty() or getattr(self, "_busy", False):
                await asyncio.sleep(0.005)
        await asyncio.wait_for(_wait(), timeout)

    def note_disconnect(self, exc: BaseException) -> None:
        if not self._closing:
            self.recorder.error(self.clock.now(), "connection", f"{type(exc).__name__}: {exc}")

    async def _open(self) -> Any:
        headers = {}
        if self.config.password is not None:
            token = base64.b64encode(f"{self.config.charger_id}:{self.config.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return await websockets.connect(
            self.config.endpoint, subprotocols=[self.adapter.subprotocol],  # type: ignore[list-item]
            additional_headers=headers or None, open_timeout=10, max_size=4 * 2**20,
            **({"ssl": self.config.ssl_context} if self.config.ssl_context is not None else {}))

    async def _supervise(self) -> None:
        backoff = self.config.reconnect_initial_real_s
        while not self._closing:
            if self._offline_until is not None:
                await self.clock.sleep_until(self._offline_until)
                self._offline_until = None
            try:
                ws = await self._open()
            except Exception as exc:
                self.recorder.error(self.clock.now(), "connect", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.reconnect_max_real_s)
                continue
            backoff = self.config.reconnect_initial_real_s
            await self._run_connection(ws)

    async def _run_connection(self, ws: Any) -> None:
        self._ws = ws
        self._drop.clear()
        link = self.adapter.attach(ws)
        reader = asyncio.create_task(link.serve())
        booter = asyncio.create_task(self._boot_and_heartbeat())
        dropper = asyncio.create_task(self._drop.wait())
        self._conn_tasks = [reader, booter, dropper]
        try:
            await asyncio.wait({reader, dropper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._booted.clear()
            for t in (booter, dropper):
                t.cancel()
            with contextlib.suppress(Exception):
                await ws.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            if not link.closed.done():
                link.closed.set_result(None)
            self._conn_tasks = []
            self._ws = None
        self._notify()

    async def _boot_and_heartbeat(self) -> None:
        while True:
            try:
                status, interval = await self.adapter.boot(self._boot_reason)
            except Exception as exc:
                self.recorder.error(self.clock.now(), "BootNotification", f"{type(exc).__name__}: {exc}")
                status, interval = "Error", 30
            self.registration_status = status
            if status == "Accepted":
                break
            # Pending/Rejected: boot again after the interval, or at once when the CSMS triggers it.
            self._boot_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._boot_now.wait(), max(self.config.min_boot_retry_real_s,
                                                                  self.clock.real_seconds(interval or 30)))
        if interval > 0:
            self.heartbeat_interval_s = interval
        self.boot_count += 1
        self._boot_reason = "PowerUp"
        await self.adapter.after_boot()
        self._booted.set()
        self._notify()
        while True:
            await asyncio.sleep(max(self.config.min_heartbeat_real_s,
                                    self.clock.real_seconds(self.heartbeat_interval_s)))
            try:
                await self.adapter.heartbeat()
            except Exception as exc:
                self.recorder.error(self.clock.now(), "Heartbeat", f"{type(exc).__name__}: {exc}")

    # ================================================================== outbox
    def enqueue(self, make: Callable[[], Awaitable[Any]], what: str, *, persistent: bool = False
                ) -> asyncio.Future[Any]:
        """Queue an outbound exchange. Non-persistent items fail with ChargerOffline when offline;
        persistent ones (transaction end) wait for the next boot."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._outbox.put_nowait(_OutItem(make, fut, persistent, what, self.clock.now()))
        return fut

    async def _outbox_worker(self) -> None:
        self._busy = False
        while True:
            item = await self._outbox.get()
            self._busy = True
            if self.online and item.queued_at is not None:
                # How long it waited behind earlier messages (simulated s). Large values mean the CSMS answers
                # too slowly for this speed-up: it then sees every event late (see report "outbox delay").
                self.recorder.outbox_delays_s.append((self.clock.now() - item.queued_at).total_seconds())
            self._inflight_at = item.queued_at
            try:
                while True:
                    if not self.online and not item.persistent:
                        raise ChargerOffline(f"{self.config.charger_id} offline: {item.what} dropped")
                    if not self.online:
                        await self._booted.wait()
                    try:
                        result = await item.make()
                        break
                    except ChargerOffline:
                        if not item.persistent:
                            raise
                if not item.future.done():
                    item.future.set_result(result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.recorder.error(self.clock.now(), item.what, f"{type(exc).__name__}: {exc}")
                if not item.future.done():
                    item.future.set_exception(exc)
                    item.future.exception()  # mark retrieved: fire-and-forget items must not warn
            finally:
                self._busy = False
                self._inflight_at = None

    def backlog_since(self) -> datetime | None:
        """When the oldest message the CSMS has not answered yet was queued (the one in flight, or the oldest
        waiting); None when the outbox is empty or the charger is offline (offline messages wait for the
        reconnection, which is not the CSMS being slow)."""
        if not self.online:
            return None
        waiting = getattr(self._outbox, "_queue", None)      # asyncio.Queue's deque, oldest first
        oldest = waiting[0].queued_at if waiting else None
        times = [t for t in (self._inflight_at, oldest) if t is not None]
        return min(times) if times else None

    def _dispatch(self, intents: list[StatusChanged]) -> None:
        """Turn station intents into queued status messages (consecutive changes collapse)."""
        last: dict[int, StatusChanged] = {}
        for ch in intents:
            last[ch.evse_id] = ch
            self.recorder.statuses.append((ch.at, ch.evse_id, str(ch.status)))
        for ch in last.values():
            evse = self.evses[ch.evse_id]
            self.enqueue(lambda ch=ch, evse=evse: self.adapter.send_status(evse, ch), f"status {ch.status}")
        if intents:
            self._notify()

    # ================================================================== physics
    def phases_in_use(self, evse: Evse) -> int:
        """Phases the plugged-in EV draws on: min(station phases, EV phases); the station's without an EV."""
        return min(self.config.phases, evse.ev.model.phases) if evse.ev else self.config.phases

    _phases = phases_in_use

    def _limit_at(self, evse: Evse, t: datetime) -> pf.EffectiveLimit:
        tx = evse.tx
        eff = pf.effective_limit(
            self.installed_profiles, evse_id=evse.evse_id, now=t, station_max_w=self.config.max_power_w,
            transaction_id=tx.transaction_id if tx else None, tx_start=tx.started_at if tx else None,
            voltage_v=self.config.voltage_v, phases=self._phases(evse))
        if len(self.evses) > 1:
            # A station-wide cap (ChargingStationMaxProfile) is shared equally by the EVSEs in a transaction.
            n = max(1, sum(1 for e in self.evses.values() if e.tx is not None))
            station = pf.effective_limit(self.installed_profiles, evse_id=0, now=t,
                                         station_max_w=self.config.max_power_w * len(self.evses),
                                         voltage_v=self.config.voltage_v, phases=self._phases(evse))
            share = station.limit_w / n
            if share < eff.limit_w:
                nxt = min((x for x in (eff.next_change, station.next_change) if x), default=None)
                eff = pf.EffectiveLimit(t, share, share / (self.config.voltage_v * eff.phases), eff.phases,
                                        nxt, station.sources)
        return eff

    def advance(self) -> None:
        """Integrate every EVSE's energy up to the simulated now (exact at limit changes), update
        statuses and record samples. Synchronous: call before installing or clearing profiles."""
        now = self.clock.now()
        intents: list[StatusChanged] = []
        for evse_id, evse in self.evses.items():
            rt = self._rt[evse_id]
            t = rt.last_t
            while t < now:
                eff = self._limit_at(evse, t)
                end = eff.next_change if eff.next_change is not None and t < eff.next_change < now else now
                if t > rt.last_t and evse.tx is not None and evse.ev is not None:
                    # A profile step passed while the loop slept: record it at the instant it took effect,
                    # so the recorded site load is exact even when this loop wakes late (CPU load).
                    self.recorder.sample(PowerSample(t, evse_id, eff.limit_w, evse.ev.power_for_limit(eff.limit_w),
                                                     evse.meter_wh, evse.ev.soc, str(evse.status)))
                if evse.tx is not None and evse.ev is not None:
                    evse.meter_wh += evse.ev.step(eff.limit_w, (end - t).total_seconds())
                t = end
            rt.last_t = max(rt.last_t, now)
            eff = self._limit_at(evse, now)
            rt.limit = eff
            active = evse.tx is not None and evse.ev is not None and evse.status is not Status.UNAVAILABLE
            rt.power_w = evse.ev.power_for_limit(eff.limit_w) if active and evse.ev else 0.0
            intents += evse.update_power(eff.limit_w, rt.power_w, now)
            for ch in evse.expire_reservation(now):
                intents.append(ch)
            self.recorder.sample(PowerSample(now, evse_id, eff.limit_w, rt.power_w, evse.meter_wh,
                                             evse.ev.soc if evse.ev else None, str(evse.status)))
        self._dispatch(intents)

    def wake(self) -> None:
        """Re-evaluate limits and physics now (e.g. after a profile arrived)."""
        self._wake.set()

    async def _physics_loop(self) -> None:
        while True:
            self.advance()
            wait_s = self.config.physics_tick_s
            now = self.clock.now()
            for rt in self._rt.values():
                if rt.limit and rt.limit.next_change:
                    wait_s = min(wait_s, (rt.limit.next_change - now).total_seconds())
            real = max(self.config.min_real_tick_s, self.clock.real_seconds(wait_s))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), real)
            self._wake.clear()

    async def _meter_loop(self) -> None:
        while True:
            # the interval in simulated time (a paused clock must not produce extra samples), but never more
            # often than min_real_tick_s of real time
            await asyncio.gather(self.clock.sleep(self.meter_interval_s), asyncio.sleep(self.config.min_real_tick_s))
            if not self.online:
                continue
            self.advance()
            for evse_id, evse in self.evses.items():
                if evse.tx is not None:
                    sample = self.meter_sample(evse_id)
                    self._rt[evse_id].last_meter_at = sample.at
                    self.enqueue(lambda e=evse, s=sample: self.adapter.send_meter_values(e, s), "MeterValues")

    def meter_sample(self, evse_id: int = 1) -> MeterSample:
        evse, rt = self.evses[evse_id], self._rt[evse_id]
        phases = self._phases(evse)
        return MeterSample(self.clock.now(), evse.meter_wh, rt.power_w,
                           amps_from_watts(rt.power_w, self.config.voltage_v, phases),
                           round(evse.ev.soc * 100, 1) if evse.ev else None, phases, self.config.phases)

    # ================================================================== driver API
    def _evse(self, evse_id: int) -> Evse:
        try:
            return self.evses[evse_id]
        except KeyError:
            raise ValueError(f"{self.config.charger_id} has no EVSE {evse_id}") from None

    async def plug_in(self, ev: EV, id_token: str | None = None, evse_id: int = 1) -> None:
        """Plug ``ev`` in (status Preparing). ``id_token`` is remembered for :meth:`start_charging`.
        If the CSMS already sent a remote start for this EVSE, the transaction starts now."""
        evse = self._evse(evse_id)
        self.advance()
        self._dispatch(evse.plug_in(ev, self.clock.now(), id_token))
        pending = self._rt[evse_id].pending_remote
        if pending is not None:
            self._rt[evse_id].pending_remote = None
            await self._start_tx(evse, pending[0], remote_start_id=pending[1], trigger="RemoteStart")

    async def start_charging(self, evse_id: int = 1, id_token: str | None = None, *,
                             authorize: bool = True) -> str:
        """Authorize ``id_token`` (default: the one given at plug-in), then start the transaction.
        Returns the transaction id; raises :class:`AuthorizationRejected` if the CSMS refuses."""
        evse = self._evse(evse_id)
        token = id_token or evse.id_token
        if token is None:
            raise ValueError("no id token")
        if not evse.plugged:
            raise TransitionError("plug in an EV first")
        ok, why = evse.may_start(token)
        if not ok:
            raise TransitionError(why)
        if authorize:
            accepted = await self.enqueue(lambda: self.adapter.authorize(token), "Authorize")
            if not accepted:
                raise AuthorizationRejected(f"{token} not accepted")
        return await self._start_tx(evse, token, trigger="Authorized")

    async def _start_tx(self, evse: Evse, token: str, *, remote_start_id: int | None = None,
                        trigger: str = "Authorized") -> str:
        self.advance()
        now = self.clock.now()
        tx = Transaction(transaction_id=str(uuid.uuid4()), id_token=token, started_at=now,
                         meter_start_wh=evse.meter_wh, remote_start_id=remote_start_id)
        if evse.reservation is not None:
            tx.reservation_id = evse.reservation.reservation_id
        accepted = await self.enqueue(lambda: self.adapter.start_transaction(evse, tx, trigger),
                                      "StartTransaction")
        tx.started_at = self.clock.now()
        intents = evse.start_transaction(tx, tx.started_at)
        self._rt[evse.evse_id].last_t = tx.started_at
        rt = self._rt[evse.evse_id]
        rt.session = SessionRecord(evse.evse_id, tx.transaction_id, token, tx.started_at)
        self.recorder.sessions.append(rt.session)
        eff = self._limit_at(evse, tx.started_at)
        power = evse.ev.power_for_limit(eff.limit_w) if evse.ev else 0.0
        intents += evse.update_power(eff.limit_w, power, tx.started_at)
        self._dispatch(intents)
        if not accepted:
            await self.stop("DeAuthorized", evse_id=evse.evse_id)
            raise AuthorizationRejected(f"{token} rejected at transaction start")
        if self.config.send_charging_needs and evse.ev is not None:
            need_wh = evse.ev.remaining_need_wh    # as stated at the start, not when the frame leaves
            self.enqueue(lambda: self.adapter.send_charging_needs(evse, need_wh), "NotifyEVChargingNeeds")
        self.wake()
        return tx.transaction_id

    async def stop(self, reason: str = "Local", evse_id: int = 1) -> None:
        """End the running transaction (1.6 Reason vocabulary: Local, Remote, EVDisconnected,
        DeAuthorized, HardReset, SoftReset, PowerLoss, Reboot, Other ...). Waits until it was sent
        (or queued for after a reconnect if offline)."""
        evse = self._evse(evse_id)
        self.advance()
        now = self.clock.now()
        tx, intents = evse.stop_transaction(now)
        rt = self._rt[evse_id]
        rt.power_w = 0.0
        if rt.session is not None:
            rt.session.stopped_at = now
            rt.session.energy_wh = evse.meter_wh - tx.meter_start_wh
            rt.session.stop_reason = reason
            rt.session = None
        self.installed_profiles = [p for p in self.installed_profiles
                                   if not (p.purpose is pf.Purpose.TX and p.evse_id == evse_id)]
        meter = self.meter_sample(evse_id)
        fut = self.enqueue(lambda: self.adapter.stop_transaction(evse, tx, reason, meter), "StopTransaction",
                           persistent=True)
        self._dispatch(intents)
        if self.online:
            with contextlib.suppress(Exception):
                await fut

    async def unplug(self, evse_id: int = 1) -> None:
        """Unplug the EV (ends a running transaction with reason EVDisconnected first)."""
        evse = self._evse(evse_id)
        if evse.tx is not None:
            await self.stop("EVDisconnected", evse_id=evse_id)
        self.advance()
        self._dispatch(evse.unplug(self.clock.now()))

    def trigger_boot(self) -> None:
        """TriggerMessage(BootNotification): a charger still waiting for acceptance boots now, in its boot
        loop (which then goes on as after any accepted boot); an accepted one sends one more."""
        self._boot_reason = "Triggered"
        if self._booted.is_set():
            self.spawn(self.adapter.boot("Triggered"))
        else:
            self._boot_now.set()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task (never await a CALL inside an ``@on`` handler: the library deadlocks)."""
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(self._spawned_done)
        return task

    def _spawned_done(self, task: asyncio.Task[Any]) -> None:
        """A spawned task ended: forget it, and record a failure (nobody awaits it, so asyncio would only
        log "Task exception was never retrieved")."""
        if task in self._tasks:
            self._tasks.remove(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not (self._closing and isinstance(exc, ChargerOffline | ConnectionError)):
            self.recorder.error(self.clock.now(), "task", f"{type(exc).__name__}: {exc}")

    # ================================================================== observation
    def _notify(self) -> None:
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, poll_real_s: float = 0.01
                       ) -> Any:
        """Wait (real seconds) until ``predicate()`` is truthy; returns its value."""
        async def _loop() -> Any:
            while True:
                value = predicate()
                if value:
                    return value
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), poll_real_s)
        return await asyncio.wait_for(_loop(), timeout)

    def evse_power_w(self, evse_id: int = 1) -> float:
        return self._rt[evse_id].power_w

    def evse_limit(self, evse_id: int = 1) -> pf.EffectiveLimit:
        return self._rt[evse_id].limit or self._limit_at(self.evses[evse_id], self.clock.now())

    @property
    def power_w(self) -> float:
        """Current measured power of EVSE 1 (W). Use :meth:`evse_power_w` for others."""
        return self.evse_power_w(1)

    @property
    def total_power_w(self) -> float:
        return sum(rt.power_w for rt in self._rt.values())

    @property
    def effective_limit_w(self) -> float:
        """Limit currently applied on EVSE 1 (W), from the installed profiles or the hardware max."""
        return self.evse_limit(1).limit_w

    @property
    def effective_limit_a(self) -> float:
        return self.evse_limit(1).limit_a

    @property
    def energy_wh(self) -> float:
        """Energy register of EVSE 1 (Wh, cumulative over sessions)."""
        return self.evses[1].meter_wh

    @property
    def status(self) -> Status:
        return self.evses[1].status

    @property
    def transaction_id(self) -> str | None:
        return self.active_tx_id(1)

    @property
    def ev(self) -> EV | None:
        return self.evses[1].ev

    @property
    def received_profiles(self) -> list[ProfileRecord]:
        """Every SetChargingProfile (and RemoteStart profile) received, accepted or not."""
        return [p for p in self.recorder.profiles if p.action != "ClearChargingProfile"]
