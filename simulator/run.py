"""Scenario runner: drive a :class:`~simulator.scenario.RunPlan` against a CSMS (a black box over OCPP and
its REST API), then build, write and check the report.

``python -m simulator run scenarios/office.yaml --url ws://127.0.0.1:9000/ocpp`` uses a running CSMS;
``--with-csms`` starts one in-process: the function registered under the ``simulator.in_process_csms`` entry
point (``sim_harness:run_with_csms``, installed with this project). Found through the entry point, not by name,
so that this package never imports ``csms``, statically or dynamically.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TextIO

from simulator.clock import SimClock
from simulator.fleet import Fleet, FleetConfig, RunSummary
from simulator.recorder import Recorder
from simulator.replay import ReplayError
from simulator.report import build_report, parse_threshold, write_report
from simulator.scenario import BookingPlan, RunPlan, ScenarioError, expand, load_scenario

HARNESS_GROUP = "simulator.in_process_csms"   # the entry point group --with-csms runs


def in_process_csms() -> Any:
    """`run_with_csms(plan, speedup=, progress=, on_event=)` of the installed in-process CSMS (an entry point)."""
    found = list(entry_points(group=HARNESS_GROUP))
    if not found:
        raise ScenarioError(f"--with-csms: no in-process CSMS is installed (entry point group {HARNESS_GROUP!r}); "
                            f"reinstall the project: pip install -e .")
    return found[0].load()


# ----------------------------------------------------------------------------------------------- clock
class StartGate:
    """A monotonic source that stands still until :meth:`release`: the shared simulated clock does not run
    while an in-process CSMS starts up (migrations, binding ports), so both sides begin at the scenario start."""

    def __init__(self) -> None:
        self.base = time.monotonic()
        self.released_at: float | None = None

    def __call__(self) -> float:
        return self.base if self.released_at is None else self.base + time.monotonic() - self.released_at

    def release(self) -> None:
        if self.released_at is None:
            self.released_at = time.monotonic()


def gated_clock(plan: RunPlan, speedup: float) -> tuple[SimClock, StartGate]:
    gate = StartGate()
    return SimClock(plan.start, speedup, monotonic=gate), gate


# ------------------------------------------------------------------------------------------- governor
#: Default for runs whose clock is shared with an in-process CSMS (``--with-csms``): see :class:`Governor`.
DEFAULT_MAX_LAG_S = 60.0


class Governor:
    """Keeps the simulated world from running ahead of the CSMS.

    The fleet and an in-process CSMS share one accelerated clock. When the CSMS answers more slowly than the
    speed-up allows (a busy machine, a slow handler), every charger's messages queue up and the CSMS learns of
    arrivals, meter values and departures minutes or hours of simulated time late: it then plans for cars that
    left and does not know the ones that came, and the report measures that artefact instead of the CSMS.
    So while any online charger has a message that has waited more than ``max_lag_s`` simulated seconds for
    the CSMS's answer, the shared clock is paused (both sides' time stands still), and it runs on once the
    CSMS has caught up to ``max_lag_s / 2``. The run then takes longer in real time; the report gives the time
    spent paused. Only for a clock shared with the CSMS: an external CSMS keeps its own time.
    """

    def __init__(self, clock: SimClock, chargers: list[Any], max_lag_s: float, poll_real_s: float = 0.01) -> None:
        self.clock = clock
        self.chargers = chargers
        self.max_lag_s = max_lag_s
        self.poll_real_s = poll_real_s
        self.max_seen_lag_s = 0.0

    def lag_s(self) -> float:
        """Simulated seconds the oldest unanswered message of any online charger has waited."""
        now = self.clock.now()
        oldest = min((t for t in (cp.backlog_since() for cp in self.chargers) if t is not None), default=None)
        return 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())

    def step(self) -> None:
        lag = self.lag_s()
        self.max_seen_lag_s = max(self.max_seen_lag_s, lag)
        if not self.clock.paused and lag > self.max_lag_s:
            self.clock.pause()
        elif self.clock.paused and lag <= self.max_lag_s / 2:
            self.clock.resume()

    async def run(self) -> None:
        try:
            while True:
                self.step()
                await asyncio.sleep(self.poll_real_s)
        finally:
            self.clock.resume()

    def stats(self) -> dict[str, Any]:
        return {"max_lag_s": self.max_lag_s, "pauses": self.clock.pauses,
                "paused_real_s": round(self.clock.paused_real_s, 2)}


# ------------------------------------------------------------------------------------------------ REST
class RestClient:
    """Tiny JSON client for the CSMS REST API (stdlib only, run in a worker thread)."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 10.0) -> None:
        self.base = base_url.rstrip("/")
        self.key = api_key
        self.timeout = timeout

    def _do(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body, default=str).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.key:
            req.add_header("Authorization", f"Bearer {self.key}")
            req.add_header("X-API-Key", self.key)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw) if raw else None
            except ValueError:
                return e.code, raw.decode(errors="replace")

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await asyncio.to_thread(self._do, method, path, body)


def _z(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def make_bookings(plan: RunPlan, clock: SimClock, api: RestClient | None, out: dict[str, Any]) -> None:
    """POST each planned booking at its time. A missing endpoint (404/405) or API disables bookings."""
    if not plan.bookings:
        return
    out.update(enabled=True, planned=len(plan.bookings), made=0, failed=0, no_shows=plan.stats.get("no_shows", 0),
               refusals={})
    if api is None:
        out.update(enabled=False, note="bookings skipped: no REST API URL (--api-url)")
        return
    for b in sorted(plan.bookings, key=lambda b: b.create_at):
        await clock.sleep_until(b.create_at)
        status, body = await _post_booking(api, plan, b)
        if status in (404, 405):
            out.update(enabled=False, note=f"bookings skipped: POST /api/v1/bookings answered {status}")
            return
        if 200 <= status < 300:
            out["made"] += 1
        else:
            out["failed"] += 1
            detail = body.get("detail") if isinstance(body, dict) else body
            key = f"{status or 'no answer'}: {str(detail)[:80]}"
            out["refusals"][key] = out["refusals"].get(key, 0) + 1


async def _post_booking(api: RestClient, plan: RunPlan, b: BookingPlan) -> tuple[int, Any]:
    body = {"station_id": plan.charger_configs[b.charger_index].charger_id, "evse_id": 1, "id_token": b.id_token,
            "start": _z(b.start), "end": _z(b.end), "energy_kwh": round(b.energy_wh / 1000, 3) or None,
            "accept_partial": True}
    try:
        return await api.request("POST", "/api/v1/bookings", body)
    except (OSError, urllib.error.URLError) as e:
        return 0, str(e)


#: Real seconds the runner waits after the run for the CSMS to invoice every session the chargers ended (the
#: CSMS invoices at the unplug; a clean CSMS needs well under a second).
INVOICE_WAIT_S = 30.0


def ended_sessions(recorders: list[Recorder]) -> set[tuple[str, str]]:
    """(charger, transaction id) of every transaction a charger ended during the run."""
    return {(r.charger_id, s.transaction_id) for r in recorders for s in r.sessions if s.stopped_at is not None}


async def fetch_invoices(api: RestClient | None, wait_for: set[tuple[str, str]] | None = None,
                         timeout_s: float = INVOICE_WAIT_S) -> list[dict[str, Any]] | None:
    """GET /api/v1/invoices (all pages); None when the endpoint or the API is missing. With `wait_for`,
    polls (at most `timeout_s` real seconds) until each of those (charger, transaction) has an invoice."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = await _fetch_invoices(api)
        if out is None or not wait_for or time.monotonic() >= deadline:
            return out
        if wait_for <= {(str(i.get("station_id")), str(i.get("transaction_id"))) for i in out}:
            return out
        await asyncio.sleep(0.5)


async def fetch_revenue(api: RestClient | None) -> dict[str, Any] | None:
    """GET /api/v1/reports/revenue over all time: the CSMS's own total, to compare with its invoices."""
    if api is None:
        return None
    try:
        status, body = await api.request("GET", "/api/v1/reports/revenue")
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return body if status == 200 and isinstance(body, dict) else None


async def _fetch_invoices(api: RestClient | None) -> list[dict[str, Any]] | None:
    if api is None:
        return None
    out: list[dict[str, Any]] = []
    try:
        offset = 0
        while True:
            status, body = await api.request("GET", f"/api/v1/invoices?offset={offset}&limit=500")
            if status != 200:
                return None if not out else out
            items = body.get("items", body) if isinstance(body, dict) else body
            if not isinstance(items, list):
                return None
            out += items
            nxt = body.get("next_offset") if isinstance(body, dict) else None
            if nxt is None:
                return out
            offset = int(nxt)
    except (OSError, urllib.error.URLError, ValueError):
        return None


# ------------------------------------------------------------------------------------------- progress
class Progress:
    """Run progress on stderr with an ETA. On a terminal one ``\\r`` status line; otherwise (CI logs, pipes)
    a full line every ``every_pct`` percent, so a long run shows it is alive without flooding the log."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True, tty: bool | None = None,
                 every_pct: float = 5.0, monotonic: Any = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_pct = every_pct
        self._monotonic = monotonic
        self._t0: float | None = None
        self._next_pct = every_pct
        self._len = 0

    def eta_s(self, frac: float) -> float | None:
        """Real seconds left at the average pace so far (None until there is a pace)."""
        if self._t0 is None or frac <= 0:
            return None
        return (self._monotonic() - self._t0) * (1 - frac) / frac

    def show(self, text: str, frac: float) -> None:
        if not self.enabled:
            return
        if self._t0 is None:
            self._t0 = self._monotonic()
        eta = self.eta_s(frac)
        line = f"{frac * 100:5.1f}% {text} | ETA {_duration(eta)}"
        if self.tty:
            pad = max(0, self._len - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._len = len(line)
        elif frac * 100 >= self._next_pct or frac >= 1:
            self.stream.write(line + "\n")
            while self._next_pct <= frac * 100:
                self._next_pct += self.every_pct
            if frac >= 1:
                self._next_pct = float("inf")
        else:
            return
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.tty and self._len:
            self.stream.write("\n")
            self.stream.flush()


def _duration(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


async def _progress_loop(fleet: Fleet, plan: RunPlan, progress: Progress) -> None:
    total = plan.duration_s
    while True:
        now = fleet.clock.now()
        frac = min(1.0, max(0.0, (now - plan.start).total_seconds() / total))
        kw = sum(cp.total_power_w for cp in fleet.chargers) / 1000
        charging = sum(1 for cp in fleet.chargers if cp.total_power_w > 0)
        online = sum(cp.online for cp in fleet.chargers)
        errs = sum(len(cp.recorder.errors) for cp in fleet.chargers)
        bar = "#" * int(frac * 24) + "-" * (24 - int(frac * 24))
        progress.show(f"[{bar}] {now:%Y-%m-%d %H:%M} | online {online}/{len(fleet.chargers)} | "
                      f"charging {charging} {kw:7.1f} kW | sessions {len(fleet.results)} | errors {errs}", frac)
        await asyncio.sleep(0.25)


# ------------------------------------------------------------------------------------------------ run
@dataclass(slots=True)
class RunResult:
    plan: RunPlan
    speedup: float
    summary: RunSummary
    recorders: list[Recorder]
    bookings: dict[str, Any]
    invoices: list[dict[str, Any]] | None = None
    revenue_report: dict[str, Any] | None = None
    solve_times_s: list[float] | None = None
    wall_s: float = 0.0
    csms: str = "external"
    extra: dict[str, Any] = field(default_factory=dict)


async def run_plan(plan: RunPlan, *, speedup: float, url: str | None = None, api: RestClient | None = None,
                   clock: SimClock | None = None, gate: StartGate | None = None, progress: Progress | None = None,
                   on_event: Any = None, max_lag_s: float | None = None) -> RunResult:
    """Run the fleet of ``plan`` (sessions, faults) and its bookings; return recorders and summary.

    ``clock``: a clock shared with an in-process CSMS; then a :class:`Governor` pauses it while the CSMS is more
    than ``max_lag_s`` simulated seconds behind (default :data:`DEFAULT_MAX_LAG_S`; 0 turns it off). Without a
    shared clock (external CSMS) there is no governor."""
    shared = clock is not None
    lag_limit = (DEFAULT_MAX_LAG_S if max_lag_s is None else max_lag_s) if shared else 0.0
    import ocpp.messages

    ocpp.messages.ASYNC_VALIDATION = False   # 2x throughput; validation still runs (see DEPENDENCIES.md)
    configs = [replace(c, url=url) for c in plan.charger_configs] if url else list(plan.charger_configs)
    fc = FleetConfig(url=url or configs[0].url, chargers=len(configs), seed=int(plan.stats.get("seed", 1)),
                     speedup=speedup, duration_s=plan.duration_s, start=plan.start, charger_configs=configs,
                     sessions=plan.sessions, faults=list(plan.faults))
    if clock is None:
        clock, gate = gated_clock(plan, speedup)
    fleet = Fleet(fc, on_event=on_event, clock=clock)
    bookings: dict[str, Any] = {"enabled": False}
    t0 = time.perf_counter()
    if gate is not None:
        gate.release()
    side = [asyncio.create_task(make_bookings(plan, clock, api, bookings))]
    governor = Governor(clock, fleet.chargers, lag_limit) if lag_limit > 0 else None
    if governor is not None:
        side.append(asyncio.create_task(governor.run()))
    if progress is not None and progress.enabled:
        side.append(asyncio.create_task(_progress_loop(fleet, plan, progress)))
    try:
        summary = await fleet.run()
    finally:
        for t in side:
            t.cancel()
        for t in side:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if progress is not None:
            progress.done()
    if not plan.bookings:
        bookings = {"enabled": False, "note": "no bookings in this scenario"}
    return RunResult(plan, speedup, summary, [cp.recorder for cp in fleet.chargers], bookings,
                     wall_s=round(time.perf_counter() - t0, 2),
                     extra={"governor": governor.stats() if governor is not None else "off"})


# -------------------------------------------------------------------------------------------------- CLI
def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario YAML file (scenarios/*.yaml)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", default=None, help="OCPP base URL of a running CSMS (default ws://127.0.0.1:9000/ocpp)")
    where.add_argument("--with-csms", action="store_true",
                       help="start the CSMS in-process with the scenario's site, a temporary database and the same clock")
    p.add_argument("--api-url", default=None,
                   help="REST base URL of the running CSMS (e.g. http://127.0.0.1:8000) for bookings and invoices")
    p.add_argument("--api-key", default=None, help="REST API key (sent as Bearer and X-API-Key)")
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument("--speedup", type=float, default=None, help="override the scenario's time acceleration")
    p.add_argument("--duration-h", type=float, default=None, help="override the simulated duration (hours)")
    p.add_argument("--data-dir", default=None, help="directory of replay CSVs (default scenarios/data/acn)")
    p.add_argument("--report-dir", default=None, help="where to write the report (default reports/<scenario>-<seed>/)")
    p.add_argument("--assert", dest="asserts", action="append", default=[], metavar="EXPR",
                   help="threshold like 'satisfied_pct>=95' (repeatable; added to the scenario's)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (by default a status line on a terminal, else a line every 5 %%), only failures")
    p.add_argument("--events", action="store_true", help="print fleet events as JSON lines on stdout")
    p.add_argument("--max-lag-s", type=float, default=None,
                   help=f"with --with-csms: pause the shared clock while the CSMS is more than this many simulated "
                        f"seconds behind the chargers' messages (default {DEFAULT_MAX_LAG_S:g}; 0 = never pause)")


def _run_loop(coro: Any) -> Any:
    """Like asyncio.run, but a worker thread that never returns (e.g. a stuck solver of an in-process CSMS)
    cannot hang the exit: the default executor is shut down with a timeout."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        with contextlib.suppress(Exception):
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), 10))
        loop.close()


def stuck_threads() -> list[str]:
    """Non-daemon threads still alive (they would block the interpreter's exit)."""
    return [t.name for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()
            and not t.daemon]


class ErrorLog(logging.Handler):
    """Collects ERROR log records (any logger: the simulator, asyncio, an in-process CSMS) during a run, so the
    report can say that something failed even when every threshold passed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage().splitlines()[0][:200]
        except Exception:  # noqa: BLE001 - a broken log call must not break the run
            msg = str(record.msg)[:200]
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            msg += f" [{type(exc).__name__}: {str(exc)[:200]}]"
        self.lines.append(f"{record.name}: {msg}")

    def __enter__(self) -> ErrorLog:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.collect()     # an abandoned task that failed is reported ("never retrieved") when it is collected
        logging.getLogger().removeHandler(self)


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def run_command(ns: argparse.Namespace) -> int:
    """Exit status: 0 passed; 1 thresholds missed or chargers did not boot; 2 bad scenario/arguments/data."""
    try:
        scn = load_scenario(ns.scenario)
        if ns.duration_h is not None:
            scn = scn.model_copy(update={"duration_h": ns.duration_h})
        for a in ns.asserts:
            parse_threshold(a)
        plan = expand(scn, url=ns.url or "ws://127.0.0.1:9000/ocpp", data_dir=ns.data_dir, seed=ns.seed)
    except (ScenarioError, ReplayError) as e:
        _err(str(e))
        return 2
    except ValueError as e:
        _err(f"--assert: {e}")
        return 2
    speedup = ns.speedup or scn.speedup
    seed = plan.stats["seed"]
    out_dir = Path(ns.report_dir or f"reports/{scn.name}-{seed}")
    progress = Progress(enabled=not ns.quiet)
    on_event = (lambda e: print(json.dumps(e, default=str), flush=True)) if ns.events else None
    t0 = time.perf_counter()
    errlog = ErrorLog()
    try:
        with errlog:
            result = _run(ns, plan, speedup, progress, on_event)
    except KeyboardInterrupt:
        return 130
    except ScenarioError as e:
        _err(str(e))
        return 2
    return _finish(ns, scn, plan, result, speedup, seed, out_dir, t0, errlog.lines)


def _run(ns: argparse.Namespace, plan: RunPlan, speedup: float, progress: Progress, on_event: Any) -> RunResult:
    if ns.with_csms:
        global DEFAULT_MAX_LAG_S
        saved = DEFAULT_MAX_LAG_S
        if getattr(ns, "max_lag_s", None) is not None:
            DEFAULT_MAX_LAG_S = ns.max_lag_s    # the harness calls run_plan without it: it reads the default
        try:
            run_with_csms = in_process_csms()
            result: RunResult = _run_loop(run_with_csms(plan, speedup=speedup, progress=progress,
                                                        on_event=on_event))
        finally:
            DEFAULT_MAX_LAG_S = saved
        return result
    api = RestClient(ns.api_url, ns.api_key) if ns.api_url else None

    async def _external() -> RunResult:
        r = await run_plan(plan, speedup=speedup, url=ns.url, api=api, progress=progress, on_event=on_event)
        r.invoices = await fetch_invoices(api, ended_sessions(r.recorders))
        r.revenue_report = await fetch_revenue(api)
        return r
    return _run_loop(_external())


def _finish(ns: argparse.Namespace, scn: Any, plan: RunPlan, result: RunResult, speedup: float, seed: Any,
            out_dir: Path, t0: float, log_errors: list[str]) -> int:
    total_s = round(time.perf_counter() - t0, 2)
    runtime = {"wall_s": total_s, "fleet_wall_s": result.wall_s, "speedup": speedup,
               "simulated_h": round(plan.duration_s / 3600, 3), "csms": result.csms,
               "realtime_factor": round(plan.duration_s / result.wall_s, 1) if result.wall_s else None,
               "governor": result.extra.get("governor", "off")}
    report = build_report(plan, result.summary, result.recorders, solve_times_s=result.solve_times_s,
                          invoices=result.invoices, revenue_report=result.revenue_report,
                          bookings=result.bookings, runtime=runtime,
                          extra_thresholds=ns.asserts, source=str(ns.scenario), log_errors=log_errors)
    write_report(report, out_dir, plots=not ns.no_plots, plan=plan, recorders=result.recorders)
    if result.invoices:  # the CSMS's own invoices, as the API returned them
        (out_dir / "invoices.json").write_text(json.dumps(result.invoices, indent=1, default=str))
    site = next(iter(report["sites"].values()))
    if not ns.quiet:
        print(f"{scn.name} (seed {seed}): peak {site['peak_kw']:.1f}/{site['grid_limit_kw']:g} kW, "
              f"violations {site['violations']['count']} (max {site['violations']['max_excess_kw']:.3f} kW), "
              f"delivered {site['energy']['delivered_kwh']:.1f}/{site['energy']['requested_kwh']:.1f} kWh, "
              f"satisfied {site['satisfied_pct']} %, {report['ocpp']['messages']} OCPP calls, "
              f"{report['ocpp']['errors']} errors; {plan.duration_s / 3600:g} h simulated in {total_s} s -> {out_dir}/",
              file=sys.stderr)
    if log_errors:
        print(f"warning: {len(log_errors)} ERROR log record(s) during the run (report.md lists them); "
              f"first: {log_errors[0]}", file=sys.stderr)
    status = 0
    for t in report["thresholds"]:
        if not t["ok"]:
            print(f"THRESHOLD FAILED: {t['threshold']}: {t['reason']}", file=sys.stderr)
            status = 1
    if result.summary.booted < result.summary.chargers:
        print(f"FAILED: only {result.summary.booted}/{result.summary.chargers} chargers booted", file=sys.stderr)
        status = 1
    return status
