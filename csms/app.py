"""Composition root: builds the engine, adapters and services, runs them in one event loop, stops cleanly.

    async with CsmsApp(cfg) as app:       # tests and the simulator's --with-csms use this
        app.ocpp_port, app.api_port

`run(cfg)` is the process entry: it owns SIGINT/SIGTERM (and SIGHUP for a config reload), so that
uvicorn embedded in the same loop does not re-raise SIGTERM before our cleanup has run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from csms.api.app import create_app
from csms.api.metrics import Metrics
from csms.config import Config, ConfigError, load_config, require_credentials
from csms.domain.certificates import PkiBackend
from csms.domain.clock import AcceleratedClock, Clock, SystemClock
from csms.domain.errors import StoreUnavailable
from csms.heap_keeper import HeapKeeper
from csms.ocpp.registry import ConnectionRegistry
from csms.ocpp.server import OcppServer
from csms.pki import LocalCA
from csms.services.bus import EventBus
from csms.services.billing import BillingService
from csms.services.bookings import BookingService
from csms.services.certificates import CertificateService
from csms.services.charging import ChargingService
from csms.services.provisioning import seed_from_config
from csms.services.site_status import current_load
from csms.services.open_bookings import OpenBookings
from csms.services.smart import SmartChargingService, make_planners
from csms.services.smart.overrides import SiteOverrides
from csms.services.stations import StationService
from csms.stall_watch import StallWatch
from csms.services.tokens import TokenService
from csms.store.db import create_engine, migrate
from csms.store.repositories import Store
from csms.telemetry import MqttTelemetry

log = logging.getLogger("csms.app")
STOP_TIMEOUT_S = 10.0


class EmbeddedServer(uvicorn.Server):
    """uvicorn in our event loop. uvicorn >= 0.29 re-raises a captured SIGTERM after serve(), which would
    kill the process before the OCPP server is closed and the database disposed: we own the signals."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def, override]
        yield


def _warn_insecure(cfg: Config) -> None:
    """Profile 0 is an explicit opt-out; say at every start who connects without authentication."""
    open_ids = [c.id for c in cfg.chargers if cfg.security_profile(c) == 0]
    if open_ids:
        log.warning("%d charger(s) connect without authentication (security_profile 0): %s%s", len(open_ids),
                    ", ".join(open_ids[:5]), " ..." if len(open_ids) > 5 else "")
    if cfg.server.allow_unknown_chargers:
        log.warning("allow_unknown_chargers: unknown identities connect (Pending) without a password")


def load_pki_backend(spec: str) -> PkiBackend:
    """certificates.pki_backend "package.module:factory": the factory, called without arguments, returns the
    backend. Resolved here, in the composition root, the only place that wires plug-ins."""
    import importlib

    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
        return factory()  # type: ignore[no-any-return]
    except Exception as e:  # noqa: BLE001 - any failure is the operator's setting: name it
        raise ConfigError(f"certificates.pki_backend: cannot load {spec!r}: {type(e).__name__}: {e}") from e


def make_certificates(cfg: Config, registry: ConnectionRegistry, clock: Clock,
                      pki_backend: PkiBackend | None) -> CertificateService:
    c = cfg.certificates
    try:
        ca = LocalCA(cert_file=c.ca_cert_file, key_file=c.ca_key_file, local_dir=c.local_ca_dir,
                     validity_days=c.validity_days)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if pki_backend is None and c.pki_backend is not None:
        pki_backend = load_pki_backend(c.pki_backend)
    return CertificateService(ca, registry, clock, pki_backend)


def make_clock(cfg: Config) -> Clock:
    if cfg.clock.speedup != 1.0 or cfg.clock.start is not None:
        from datetime import UTC, datetime

        start = cfg.clock.start or datetime.now(UTC)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        return AcceleratedClock(start, cfg.clock.speedup)
    return SystemClock()


class CsmsApp:
    """The whole central system in one object. Start with `await app.start()` or `async with`."""

    def __init__(self, cfg: Config, *, clock: Clock | None = None, config_path: Path | None = None,
                 pki_backend: PkiBackend | None = None) -> None:
        self.cfg = cfg
        #: Overrides certificates.pki_backend (tests pass their own backend).
        self.pki_backend = pki_backend
        self.config_path = config_path
        self.clock = clock or make_clock(cfg)
        self.bus = EventBus()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stoppers: list[Callable[[], Any]] = []
        self.ocpp_port: int | None = None
        self.api_port: int | None = None
        # Filled as the services start; the API reads them through app.state.ctx.
        self.smart: Any = None
        self.billing: Any = None
        self.bookings: Any = None
        self.metrics = Metrics()
        self.reloads = 0
        self._reload_lock = asyncio.Lock()
        self.site_load_w: dict[str, float] = {}

    async def start(self) -> None:
        cfg = self.cfg
        require_credentials(cfg)
        _warn_insecure(cfg)
        registry = ConnectionRegistry()
        # Before anything is opened: a bad CA or backend setting is a ConfigError with nothing to undo.
        self.certificates = make_certificates(cfg, registry, self.clock, self.pki_backend)
        # The planner workers import the solver while the database migrates (smart charging waits for them).
        sc = cfg.smart_charging
        self.planners = make_planners(sc.planner_processes, sc.planner_warm_evses, sc.planner_dormant_evses)
        self._stoppers.append(self.planners.shutdown)
        if cfg.smart_charging.enabled:
            await self.planners.start()
        self.engine = create_engine(cfg.database.url, cfg.database.echo)
        await migrate(self.engine)
        self.store = Store(self.engine)
        async with self.store.session() as s:
            await s.mark_all_offline()  # whatever a previous process left behind
        await seed_from_config(self.store, cfg)

        self.charging = ChargingService(
            self.store, self.bus, self.clock, heartbeat_interval_s=cfg.server.heartbeat_interval_s,
            allow_unknown_chargers=cfg.server.allow_unknown_chargers,
            default_security_profile=cfg.server.security_profile,
            pending_interval_s=cfg.server.pending_interval_s,
        )
        self.ocpp = OcppServer(cfg.server, self.charging, self.charging, self.clock, observer=self.metrics,
                               registry=registry, certificates=self.certificates)
        self.gateway: ConnectionRegistry = self.ocpp.registry
        # What the API writes goes through these (and the services below), never straight to the store.
        self.stations = StationService(cfg, self.store, self.bus, self.gateway, self.clock)
        self.tokens = TokenService(self.store, self.bus, self.clock)
        await self.ocpp.start()
        self.ocpp_port = self.ocpp.port
        self._stoppers.append(self.ocpp.stop)
        self._tasks.append(asyncio.create_task(self._flush_loop(), name="flush-last-seen"))
        self._tasks.append(asyncio.create_task(self.metrics.probe_loop(), name="loop-lag-probe"))
        self._tasks.append(asyncio.create_task(StallWatch().run(), name="stall-watch"))
        self._tasks.append(asyncio.create_task(HeapKeeper().run(), name="heap-keeper"))
        # The ports smart charging plans with exist before it: the external site caps (billing reads them
        # too), open bookings, prices (billing) and the plan listener (MQTT). Bookings then ask smart
        # charging for what-if plans.
        overrides = SiteOverrides()
        open_bookings = OpenBookings(self.store, self.clock)
        if cfg.billing.enabled:
            self.billing = BillingService(cfg, self.store, self.bus, self.clock, external_limits=overrides)
            self.charging.cost_query = self.billing.live_cost
            self.billing.booking_end_fn = lambda tx: open_bookings.booking_end(tx.station_id, tx.id_token)
        self._make_telemetry()
        self.smart = SmartChargingService(
            cfg, self.store, self.bus, self.gateway, self.clock, prices=self.billing, bookings=open_bookings,
            listeners=[self.telemetry] if self.telemetry is not None else [], overrides=overrides,
            planners=self.planners)
        self.smart.planning.solve_times_s = self.metrics.plan_times()  # plan times also go to the histogram
        await self.smart.start()
        self._stoppers.append(self.smart.stop)
        self.bookings = BookingService(cfg, self.store, self.bus, self.gateway, self.clock, self.smart,
                                       open_bookings)
        await self.bookings.start()
        self._stoppers.append(self.bookings.stop)
        if self.billing is not None:
            await self.billing.start()
            self._stoppers.append(self.billing.stop)
        await self._start_telemetry()
        if cfg.api.enabled:
            await self._start_api()
        if self.config_path is not None:
            self._tasks.append(asyncio.create_task(self._watch_config(), name="config-watch"))
        log.info("csms started ocpp=ws://%s:%s%s/{id}", cfg.server.host, self.ocpp_port, cfg.server.path_prefix)

    def _make_telemetry(self) -> None:
        self.telemetry: MqttTelemetry | None = None
        if not self.cfg.mqtt.enabled:
            return

        async def on_limit_set(site_id: str, limit_kw: float | None) -> None:
            if self.cfg.site(site_id) is None:
                raise LookupError(f"unknown site {site_id!r}")  # logged and counted as rejected
            await self.smart.set_site_limit(site_id, limit_kw)

        self.telemetry = MqttTelemetry(self.cfg.mqtt, on_limit_set)
        self.telemetry.attach(self.bus)

    async def _start_telemetry(self) -> None:
        tel = self.telemetry
        if tel is None:
            return
        await tel.start()
        self._stoppers.append(tel.stop)
        self._tasks.append(asyncio.create_task(self._publish_load_loop(), name="site-load"))

    async def _publish_load_loop(self) -> None:
        """Site load against the limit, every 10 clock-seconds."""
        while True:
            await self.clock.sleep(10.0)
            for site in self.cfg.sites:
                try:
                    view = await current_load(self.cfg, self.store, self.smart, site.id,
                                              now=self.clock.now())
                except Exception:  # noqa: BLE001 - telemetry must never take the CSMS down
                    log.exception("site load telemetry failed site=%s", site.id)
                    continue
                self.site_load_w[site.id] = view["load_w"]
                if self.telemetry is not None:
                    self.telemetry.site_load(site.id, view["load_w"], view["limit_w"], self.clock.now())

    async def _start_api(self) -> None:
        cfg = self.cfg.api
        if not cfg.keys:
            log.warning("REST API has no keys configured: every caller is admin (listening on %s)", cfg.host)
        self.api = create_app(self)
        # An open live-events stream (the dashboard) would hold a graceful shutdown forever: the streams end
        # when `stopping` is set, and whatever is left is cut after a few seconds.
        server = EmbeddedServer(uvicorn.Config(self.api, host=cfg.host, port=cfg.port, log_level="warning",
                                               lifespan="off", timeout_graceful_shutdown=3))
        task = asyncio.create_task(server.serve(), name="rest-api")
        while not server.started:
            if task.done():
                task.result()  # raises the bind error
                raise RuntimeError("REST API server stopped during startup")
            await asyncio.sleep(0.01)
        self.api_port = server.servers[0].sockets[0].getsockname()[1]

        async def stop_api() -> None:
            self.api.state.stopping = True
            server.should_exit = True
            await task

        self._stoppers.append(stop_api)
        log.info("REST API on http://%s:%s/api/v1 (docs at /docs)", cfg.host, self.api_port)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            try:
                await self.charging.flush_last_seen()
            except StoreUnavailable:
                pass  # the store logs the outage once; the next round writes again
            except Exception:  # noqa: BLE001 - a failed flush is retried on the next round
                log.exception("flushing last_seen failed")

    async def stop(self) -> None:
        """Stop everything, bounded: a part that does not stop within its timeout is logged and left behind,
        so shutdown can never hang (SIGTERM must end the process)."""
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
            for t in stuck:
                log.error("task did not stop in time: %s", t.get_name())
        for stop in reversed(self._stoppers):
            try:
                res = stop()
                if asyncio.iscoroutine(res):
                    await asyncio.wait_for(res, STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("did not stop within %s s: %s", STOP_TIMEOUT_S, getattr(stop, "__qualname__", stop))
            except Exception:  # noqa: BLE001 - keep stopping the rest
                log.exception("error while stopping %s", getattr(stop, "__qualname__", stop))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.charging.flush_last_seen(), STOP_TIMEOUT_S)
        self.charging.close()
        await self.engine.dispose()
        log.info("csms stopped")

    async def __aenter__(self) -> "CsmsApp":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- live reload ----------------------------------------------------------------------------
    async def reload(self) -> bool:
        """Re-read config.yaml; apply it if valid, else keep running the old one. Returns success.

        Chargers, id tokens, groups, site limits, smart-charging and booking settings and API keys apply
        live, without dropping connections. Server, database and API listener settings need a restart.
        """
        if self.config_path is None:
            return False
        async with self._reload_lock:  # SIGHUP and the file watch must not apply two configs at once
            return await self._reload()

    async def _reload(self) -> bool:
        assert self.config_path is not None
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as e:
            log.error("config reload refused, keeping the running configuration: %s", e)
            return False
        for section in ("server", "database", "clock"):
            if getattr(new, section) != getattr(self.cfg, section):
                log.warning("config reload: changes to %r apply after a restart", section)
        if (new.api.host, new.api.port, new.api.enabled) != (self.cfg.api.host, self.cfg.api.port, self.cfg.api.enabled):
            log.warning("config reload: changes to the API listener apply after a restart")
        await seed_from_config(self.store, new)
        self.cfg = new
        for svc in (self.smart, self.bookings, self.billing, self.stations):
            if svc is not None and hasattr(svc, "reconfigure"):
                svc.reconfigure(new)
        self.reloads += 1
        log.info("config reloaded from %s", self.config_path)
        return True

    async def _watch_config(self, interval_s: float = 1.0) -> None:
        """Poll the file's mtime and size: portable, and editors that replace the file are seen too."""
        assert self.config_path is not None

        def stamp() -> tuple[float, int] | None:
            try:
                st = self.config_path.stat()  # type: ignore[union-attr]
                return (st.st_mtime, st.st_size)
            except OSError:
                return None

        last = stamp()
        while True:
            await asyncio.sleep(interval_s)
            now = stamp()
            if now is not None and now != last:
                last = now
                await self.reload()


async def run(cfg: Config, config_path: Path | None = None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    app = CsmsApp(cfg, config_path=config_path)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(app.reload()))
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()
    return 0
