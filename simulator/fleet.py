"""Asyncio orchestration of N simulated chargers driven by one plain data object (:class:`FleetConfig`).

A later scenario loader (YAML: site, fleet, arrivals incl. CSV replay, EV models, driver behaviour,
faults) only has to build a :class:`FleetConfig` (optionally with explicit ``charger_configs`` and
``sessions``); reports can be built from :class:`RunSummary` and each charger's :class:`Recorder`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.arrivals import ArrivalConfig, SessionPlan, plan_sessions
from simulator.charger import AuthorizationRejected, Charger, ChargerConfig
from simulator.clock import SimClock
from simulator.ev import EV
from simulator.ocpp.base import ChargerOffline
from simulator.recorder import Recorder


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A fault injected ``at_s`` simulated seconds after the start.

    ``kind``: ``disconnect`` (offline for ``duration_s``), ``reboot`` (like a Reset), ``reject_profiles``
    (reject SetChargingProfile for ``duration_s``; 0 = until the end). ``chargers``: indexes (empty = all).
    """

    at_s: float
    kind: str
    chargers: tuple[int, ...] = ()
    duration_s: float = 0.0


@dataclass(slots=True)
class FleetConfig:
    url: str = "ws://127.0.0.1:9000/ocpp"
    chargers: int = 10
    protocol: str = "1.6"                   # "1.6" | "2.0.1" | "mixed" (alternating, 1.6 first)
    id_prefix: str = "SIM"
    seed: int = 1
    speedup: float = 60.0
    duration_s: float = 3600.0              # simulated run length
    start: datetime | None = None           # simulated start (default: now, UTC)
    password: str | None = None
    id_token: str | None = None             # one token for every session (default: per-charger tokens)
    arrivals: ArrivalConfig = field(default_factory=ArrivalConfig)
    idle_chargers: int = 0                  # the last N chargers get no cars (free for a booking, a test)
    charger_template: dict[str, Any] = field(default_factory=dict)   # ChargerConfig overrides
    charger_configs: list[ChargerConfig] | None = None               # explicit, overrides the above
    sessions: list[list[SessionPlan]] | None = None                  # explicit (e.g. CSV replay)
    faults: list[FaultSpec] = field(default_factory=list)
    boot_timeout_s: float = 20.0            # real seconds to wait for all BootNotifications
    stop_sessions_at_end: bool = True

    def build_charger_configs(self) -> list[ChargerConfig]:
        if self.charger_configs is not None:
            return list(self.charger_configs)
        out = []
        for i in range(self.chargers):
            proto = self.protocol
            if proto == "mixed":
                proto = "1.6" if i % 2 == 0 else "2.0.1"
            base = ChargerConfig(charger_id=f"{self.id_prefix}-{i + 1:04d}", url=self.url, protocol=proto,
                                 password=self.password)
            out.append(replace(base, **self.charger_template))
        return out


@dataclass(slots=True)
class SessionResult:
    charger_id: str
    transaction_id: str | None
    id_token: str
    arrival: datetime
    departure: datetime
    requested_wh: float
    delivered_wh: float
    started: bool
    error: str | None = None


@dataclass(slots=True)
class RunSummary:
    started_at: datetime
    ended_at: datetime
    chargers: int
    booted: int
    sessions: list[SessionResult]
    peak_site_power_w: float
    energy_wh: float
    messages_sent: dict[str, int]
    messages_received: dict[str, int]
    errors: int
    errors_by_charger: dict[str, int]
    limit_violations: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["started_at"], d["ended_at"] = self.started_at.isoformat(), self.ended_at.isoformat()
        for s in d["sessions"]:
            s["arrival"], s["departure"] = s["arrival"].isoformat(), s["departure"].isoformat()
        return d


def peak_site_power_w(recorders: list[Recorder]) -> float:
    """Exact peak of the summed measured power (samples are piecewise constant per EVSE)."""
    events = sorted(((s.at, r.charger_id, s.evse_id, s.power_w) for r in recorders for s in r.samples),
                    key=lambda e: e[0])
    current: dict[tuple[str, int], float] = {}
    peak, i = 0.0, 0
    while i < len(events):
        t = events[i][0]
        while i < len(events) and events[i][0] == t:
            current[(events[i][1], events[i][2])] = events[i][3]
            i += 1
        peak = max(peak, sum(current.values()))
    return peak


class Fleet:
    """Runs a fleet: connect all chargers, drive the planned sessions, inject faults, summarize."""

    def __init__(self, config: FleetConfig, *, on_event: Callable[[dict[str, Any]], None] | None = None,
                 clock: SimClock | None = None) -> None:
        self.config = config
        start = config.start or datetime.now(UTC).replace(microsecond=0)
        # ``clock``: a clock shared with others (e.g. an in-process CSMS); its start wins over config.start
        self.clock = clock or SimClock(start, config.speedup)
        start = self.clock.start
        self.chargers = [Charger(c, self.clock) for c in config.build_charger_configs()]
        self.sessions = config.sessions if config.sessions is not None else plan_sessions(
            config.arrivals, config.seed, start, config.duration_s, len(self.chargers))
        if config.idle_chargers > 0:
            keep = max(0, len(self.sessions) - config.idle_chargers)
            self.sessions = [ss if i < keep else [] for i, ss in enumerate(self.sessions)]
        if config.id_token:
            self.sessions = [[replace(s, id_token=config.id_token) for s in ss] for ss in self.sessions]
        self.results: list[SessionResult] = []
        self._on_event = on_event or (lambda e: None)

    def emit(self, event: str, **fields: Any) -> None:
        self._on_event({"t": self.clock.now().isoformat(timespec="seconds"), "event": event, **fields})

    async def run(self) -> RunSummary:
        cfg = self.config
        started = self.clock.now()
        for cp in self.chargers:
            await cp.start()
        booted = await self._wait_booted()
        self.emit("booted", booted=booted, chargers=len(self.chargers))
        tasks = [asyncio.create_task(self._drive(cp, plans))
                 for cp, plans in zip(self.chargers, self.sessions, strict=False)]
        tasks += [asyncio.create_task(self._fault(f)) for f in cfg.faults]
        end = started + timedelta(seconds=cfg.duration_s)
        try:
            await self.clock.sleep_until(end)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            if cfg.stop_sessions_at_end:
                await self._stop_all()
            for cp in self.chargers:
                await cp.close()
        return self.summary(started, booted)

    async def _wait_booted(self) -> int:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(cp.wait_booted(self.config.boot_timeout_s)
                                                    for cp in self.chargers), return_exceptions=True),
                                   self.config.boot_timeout_s)
        return sum(cp.online for cp in self.chargers)

    async def _stop_all(self) -> None:
        async def stop_one(cp: Charger) -> None:
            for evse_id, evse in cp.evses.items():
                with contextlib.suppress(Exception):
                    if evse.tx is not None:
                        await asyncio.wait_for(cp.stop("Local", evse_id=evse_id), 5)
                    if evse.plugged:
                        await cp.unplug(evse_id)
            with contextlib.suppress(Exception):
                await cp.flush(5)

        # concurrently: a slow CSMS costs at most ~10 s in total, not 10 s per charger
        await asyncio.gather(*(stop_one(cp) for cp in self.chargers))

    async def _drive(self, cp: Charger, plans: list[SessionPlan]) -> None:
        for plan in plans:
            await self.clock.sleep_until(plan.arrival)
            result = SessionResult(cp.config.charger_id, None, plan.id_token, plan.arrival, plan.departure,
                                   plan.energy_wh, 0.0, False)
            self.results.append(result)
            try:
                await self._session(cp, plan, result)
            except asyncio.CancelledError:
                self._finish(cp, result)
                raise
            except Exception as exc:
                result.error = f"{type(exc).__name__}: {exc}"
                self.emit("session_error", charger=cp.config.charger_id, error=result.error)
            self._finish(cp, result)

    def _finish(self, cp: Charger, result: SessionResult) -> None:
        for s in cp.recorder.sessions:
            if s.transaction_id == result.transaction_id:
                result.delivered_wh = round(s.energy_wh if s.stopped_at else
                                            cp.evses[s.evse_id].meter_wh - _start_wh(cp, s.evse_id), 1)

    async def _session(self, cp: Charger, plan: SessionPlan, result: SessionResult) -> None:
        ev = EV(plan.ev_model, soc=plan.initial_soc, energy_need_wh=plan.energy_wh,
                departure=plan.stated_departure)
        await cp.plug_in(ev, plan.id_token)
        self.emit("plug_in", charger=cp.config.charger_id, ev=plan.ev_model.name, need_wh=plan.energy_wh,
                  departure=plan.departure.isoformat(timespec="seconds"))
        while cp.transaction_id is None and self.clock.now() < plan.departure:
            try:
                result.transaction_id = await cp.start_charging()
                result.started = True
                self.emit("started", charger=cp.config.charger_id, tx=result.transaction_id)
            except ChargerOffline:
                await self.clock.sleep(60)
            except AuthorizationRejected as exc:
                result.error = str(exc)
                self.emit("rejected", charger=cp.config.charger_id, token=plan.id_token)
                break
        await self.clock.sleep_until(plan.departure)
        if cp.transaction_id is not None:
            await cp.stop("Local")
        await cp.unplug()
        self.emit("departed", charger=cp.config.charger_id, tx=result.transaction_id,
                  delivered_wh=round(ev.delivered_wh, 1))

    async def _fault(self, f: FaultSpec) -> None:
        await self.clock.sleep(f.at_s)
        targets = [self.chargers[i] for i in f.chargers] if f.chargers else self.chargers
        self.emit("fault", kind=f.kind, chargers=[cp.config.charger_id for cp in targets])
        if f.kind == "disconnect":
            for cp in targets:
                await cp.disconnect(f.duration_s)
        elif f.kind == "reboot":
            for cp in targets:
                cp.spawn(cp.reboot("HardReset"))
        elif f.kind == "reject_profiles":
            for cp in targets:
                cp.reject_profiles = True
            if f.duration_s > 0:
                await self.clock.sleep(f.duration_s)
                for cp in targets:
                    cp.reject_profiles = cp.config.reject_profiles
        else:
            raise ValueError(f"unknown fault kind {f.kind!r}")

    def summary(self, started: datetime, booted: int) -> RunSummary:
        recs = [cp.recorder for cp in self.chargers]
        by_id = {cp.config.charger_id: cp for cp in self.chargers}
        for res in self.results:
            self._finish(by_id[res.charger_id], res)
        sent: Counter[str] = Counter()
        received: Counter[str] = Counter()
        for r in recs:
            for m in r.messages:
                if m.kind == "CALL" and m.action:
                    (sent if m.direction == "out" else received)[m.action] += 1
        return RunSummary(
            started_at=started, ended_at=self.clock.now(), chargers=len(self.chargers), booted=booted,
            sessions=self.results, peak_site_power_w=round(peak_site_power_w(recs), 1),
            energy_wh=round(sum(cp.evses[i].meter_wh for cp in self.chargers for i in cp.evses), 1),
            messages_sent=dict(sent), messages_received=dict(received),
            errors=sum(len(r.errors) for r in recs),
            errors_by_charger={r.charger_id: len(r.errors) for r in recs if r.errors},
            limit_violations=sum(1 for r in recs for s in r.samples if s.power_w > s.limit_w + 0.5))


def _start_wh(cp: Charger, evse_id: int) -> float:
    tx = cp.evses[evse_id].tx
    return tx.meter_start_wh if tx else cp.evses[evse_id].meter_wh
