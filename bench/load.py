"""Load tool: N light chargers (raw websockets, OCPP 1.6J and 2.0.1) against a CSMS it starts itself.

    .venv/bin/python bench/load.py --sites 10 --per-site 100 --speedup 4 --duration-s 60
    .venv/bin/python bench/load.py --chargers 200 --speedup 10 --duration-s 20 --max-p99-ms 250 --max-errors 0
    .venv/bin/python bench/load.py --sites 100 --per-site 100 --big-site 1000 --storm   # the issue-10 goal
    .venv/bin/python bench/load.py ... --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test --reset-db

Workload per charger (the issue-10 fleet): connect, BootNotification, StatusNotification, then a
Heartbeat every `--heartbeat-s` (60); half of the chargers (of both versions) start a transaction and
send meter values every `--meter-s` (30): 1.6 MeterValues with the transactionId, 2.0.1
TransactionEvent Updated. Every CALL the CSMS sends is answered at once (Accepted, or an empty
configuration). Even identities speak 1.6, odd ones 2.0.1. `--speedup K` divides both intervals by K
(a short run with the message rate of a long one). Connects are spread over `--ramp-s`.

`--storm`: halfway through the steady phase every charger drops its connection and all reconnect
within `--storm-window-s`, booting again (a boot storm after an outage); transactions carry on.

Measured: CALL -> CALLRESULT latency per action and phase (ramp, steady, storm), p50/p95/p99/max;
errors (CALLERROR, boot not Accepted, connect failures, unexpected closes) and timeouts (no answer in
`--timeout-s`); the CSMS process's CPU (utime+stime from /proc over the steady phase, in % of one core)
and RSS (peak, sampled each second); the event-loop lag the CSMS reports at /metrics; and this
process's own CPU and loop lag (if the load tool saturates, its latencies are its own).

Then the same fleet runs against a bare websockets responder (a subprocess answering every CALL with
a canned CALLRESULT, no validation, no database), and the ratio CSMS / bare is printed: what the
CSMS adds over the websocket transport on this machine.

`--json FILE` writes the figures; `--max-p99-ms`, `--max-errors` make the exit status fail (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "LOAD-TOKEN"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PHASES = ("ramp", "steady", "storm")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1 << 20), hard))


# --- process figures (/proc) ---------------------------------------------------------------------
def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (field 3, the state, is [0])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def tree(pid: int) -> list[int]:
    """`pid` and its live descendants (a planner worker process, say)."""
    children: dict[int, list[int]] = defaultdict(list)
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                children[int(_stat(int(d.name))[1])].append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads) and of its descendants, live or reaped, in seconds."""
    f = _stat(pid)
    own_and_reaped = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])  # own + waited-for children's
    return own_and_reaped / CLK_TCK + children_cpu_s(pid)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its live descendants."""
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def children_cpu_s(pid: int) -> float:
    """CPU seconds of the live descendants alone (the planner workers)."""
    total = 0
    for p in tree(pid)[1:]:
        with contextlib.suppress(OSError, IndexError):
            c = _stat(p)
            total += int(c[11]) + int(c[12])
    return total / CLK_TCK


def children_rss_mb(pid: int) -> float:
    """RSS of the live descendants alone (the planner workers)."""
    return sum(rss_mb(p) for p in tree(pid)[1:])


# --- the fleet -----------------------------------------------------------------------------------
@dataclass
class Stats:
    phase: str = "ramp"
    #: (phase, action) -> latencies in ms
    lat: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    timeouts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    received: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    connected: int = 0

    def error(self, what: str) -> None:
        self.errors[f"{self.phase}:{what}"] += 1


class Drop(Exception):
    """The storm: close this connection and reconnect."""


def answer_for(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A valid CALLRESULT payload for what a CSMS asks a charger."""
    if action == "GetConfiguration":
        return {"unknownKey": payload.get("key", [])}
    if action == "GetVariables":
        return {"getVariableResult": [{"attributeStatus": "UnknownVariable", "component": d["component"],
                                       "variable": d["variable"]} for d in payload.get("getVariableData", [])]}
    if action == "GetCompositeSchedule":
        return {"status": "Rejected"}
    if action == "DataTransfer":
        return {"status": "UnknownVendorId"}
    return {"status": "Accepted"}


class Charger:
    """One light charger: sequential CALLs (one outstanding, as OCPP-J requires), answers at once."""

    def __init__(self, ident: str, v16: bool, transacting: bool, args: argparse.Namespace, stats: Stats,
                 rng: random.Random) -> None:
        self.ident, self.v16, self.transacting = ident, v16, transacting
        self.args, self.stats, self.rng = args, stats, rng
        self.ids = itertools.count(1)
        self.pending: dict[str, asyncio.Future[list[Any]]] = {}
        self.tx_id: Any = None
        self.seq_no = 0
        self.energy_wh = float(rng.randint(0, 50_000))
        self.ws: Any = None
        self.booted = asyncio.Event()

    async def run(self, url: str, start_delay_s: float, stop: asyncio.Event, storm: asyncio.Event) -> None:
        await asyncio.sleep(start_delay_s)
        storm_done = False
        while not stop.is_set():
            try:
                await self._session(url, stop, storm if not storm_done else None)
                return
            except Drop:
                storm_done = True
                await asyncio.sleep(self.rng.uniform(0, self.args.storm_window_s))

    async def _session(self, url: str, stop: asyncio.Event, storm: asyncio.Event | None) -> None:
        proto = "ocpp1.6" if self.v16 else "ocpp2.0.1"
        try:
            ws = await connect(f"{url}/{self.ident}", subprotocols=[proto], open_timeout=self.args.timeout_s,
                               ping_interval=None, compression=None, max_size=None)  # type: ignore[list-item]
        except Exception as e:  # noqa: BLE001 - counted, the charger gives up (no retry storm of its own)
            self.stats.error(f"connect {type(e).__name__}")
            return
        self.ws = ws
        self.stats.connected += 1
        reader = asyncio.create_task(self._read(ws))
        try:
            await self._boot()
            await self._work(stop, storm)
        except ConnectionClosed:
            if not stop.is_set():
                self.stats.error("connection closed")
        finally:
            self.stats.connected -= 1
            reader.cancel()
            await ws.close()

    async def _read(self, ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                msg = json.loads(raw)
                if msg[0] == 2:
                    self.stats.received[msg[2]] += 1
                    await ws.send(json.dumps([3, msg[1], answer_for(msg[2], msg[3])]))
                else:
                    fut = self.pending.pop(msg[1], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        uid = str(next(self.ids))
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.pending[uid] = fut
        phase = self.stats.phase
        t0 = time.perf_counter()
        await self.ws.send(json.dumps([2, uid, action, payload]))
        try:
            msg = await asyncio.wait_for(fut, self.args.timeout_s)
        except TimeoutError:
            self.pending.pop(uid, None)
            self.stats.timeouts[f"{phase}:{action}"] += 1
            return None
        self.stats.lat[(phase, action)].append((time.perf_counter() - t0) * 1000)
        if msg[0] == 4:
            self.stats.error(f"CALLERROR {action} {msg[2]}")
            return None
        return msg[2]  # type: ignore[no-any-return]

    # --- the workload ------------------------------------------------------------------------------
    async def _boot(self) -> None:
        if self.v16:
            ans = await self.call("BootNotification", {"chargePointVendor": "Load", "chargePointModel": "L1"})
        else:
            ans = await self.call("BootNotification", {"reason": "PowerUp", "chargingStation": {
                "vendorName": "Load", "model": "L2"}})
        if ans is None:
            return
        if ans.get("status") != "Accepted":
            self.stats.error(f"boot {ans.get('status')}")
        await self._status("Charging" if self.tx_id is not None else "Available")
        if self.transacting and self.tx_id is None:
            await self._start_tx()

    async def _status(self, status: str) -> None:
        if self.v16:
            await self.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": status,
                                                   "timestamp": now_iso()})
        else:
            await self.call("StatusNotification", {"timestamp": now_iso(), "evseId": 1, "connectorId": 1,
                                                   "connectorStatus": "Available" if status == "Available"
                                                   else "Occupied"})

    async def _start_tx(self) -> None:
        if self.v16:
            ans = await self.call("StartTransaction", {"connectorId": 1, "idTag": TOKEN,
                                                       "meterStart": int(self.energy_wh), "timestamp": now_iso()})
            if ans is not None:
                self.tx_id = ans.get("transactionId")
        else:
            self.tx_id = f"{self.ident}-{self.rng.randrange(1 << 30)}"
            await self._tx_event("Started", "Authorized", id_token=True)
        if self.tx_id is not None:
            await self._status("Charging")

    def _sampled(self) -> list[dict[str, Any]]:
        if self.v16:
            return [{"value": f"{self.energy_wh:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"}]
        return [{"value": round(self.energy_wh), "measurand": "Energy.Active.Import.Register",
                 "unitOfMeasure": {"unit": "Wh"}},
                {"value": 7400, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}}]

    async def _tx_event(self, kind: str, trigger: str, id_token: bool = False) -> None:
        payload: dict[str, Any] = {
            "eventType": kind, "timestamp": now_iso(), "triggerReason": trigger, "seqNo": self.seq_no,
            "transactionInfo": {"transactionId": self.tx_id, "chargingState": "Charging"},
            "meterValue": [{"timestamp": now_iso(), "sampledValue": self._sampled()}],
        }
        if kind == "Started":
            payload["evse"] = {"id": 1, "connectorId": 1}
        if id_token:
            payload["idToken"] = {"idToken": TOKEN, "type": "ISO14443"}
        self.seq_no += 1
        await self.call("TransactionEvent", payload)

    async def _meter(self, dt_s: float) -> None:
        self.energy_wh += 7400 * dt_s / 3600
        if self.v16:
            await self.call("MeterValues", {"connectorId": 1, "transactionId": self.tx_id, "meterValue": [
                {"timestamp": now_iso(), "sampledValue": self._sampled()}]})
        else:
            await self._tx_event("Updated", "MeterValuePeriodic")

    async def _work(self, stop: asyncio.Event, storm: asyncio.Event | None) -> None:
        hb_s, mv_s = self.args.heartbeat_s / self.args.speedup, self.args.meter_s / self.args.speedup
        loop = asyncio.get_running_loop()
        t = loop.time()
        next_hb = t + self.rng.uniform(0, hb_s)
        next_mv = t + self.rng.uniform(0, mv_s) if self.tx_id is not None else float("inf")
        waiters = [asyncio.ensure_future(stop.wait())]
        if storm is not None:
            waiters.append(asyncio.ensure_future(storm.wait()))
        try:
            while True:
                delay = min(next_hb, next_mv) - loop.time()
                if delay > 0:  # the first of: the next message is due, the storm, the end
                    await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    return
                if storm is not None and storm.is_set():
                    raise Drop
                now = loop.time()
                if now >= next_hb:
                    await self.call("Heartbeat", {})
                    next_hb += hb_s
                if now >= next_mv:
                    await self._meter(mv_s * self.args.speedup)
                    next_mv += mv_s
        finally:
            for w in waiters:
                w.cancel()


async def lag_probe(samples: list[float], stop: asyncio.Event, every_s: float = 0.05) -> None:
    """This process's event-loop lag: how late a 50 ms sleep wakes up."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(every_s)
        samples.append((loop.time() - t - every_s) * 1000)


def identities(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(site id, charger id) for every charger: `--sites` x `--per-site`, then the `--big-site` ones."""
    ids = [(f"site-{s:03d}", f"LOAD-{s:03d}-{c:04d}") for s in range(args.sites) for c in range(args.per_site)]
    return ids + [("site-big", f"LOAD-BIG-{c:05d}") for c in range(args.big_site)]


def site_sizes(args: argparse.Namespace) -> list[tuple[str, int]]:
    return [(f"site-{s:03d}", args.per_site) for s in range(args.sites)] + (
        [("site-big", args.big_site)] if args.big_site else [])


async def drive(url: str, args: argparse.Namespace, watch_pid: int) -> dict[str, Any]:
    """Run the fleet against `url`; sample `watch_pid`'s CPU and RSS. Returns the figures."""
    stats = Stats()
    rng = random.Random(args.seed)
    stop, storm = asyncio.Event(), asyncio.Event()
    chargers = [Charger(ident, i % 2 == 0, (i // 2) % 2 == 0, args, stats, random.Random(rng.random()))
                for i, (_, ident) in enumerate(identities(args))]
    n = len(chargers)
    lag: list[float] = []
    probe = asyncio.create_task(lag_probe(lag, stop))
    rss_peak = [0.0, 0.0]  # the CSMS with its workers, the workers alone

    async def sample_rss() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                rss_peak[0] = max(rss_peak[0], rss_mb(watch_pid))
                rss_peak[1] = max(rss_peak[1], children_rss_mb(watch_pid))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample_rss())
    self_cpu0, self_wall0 = time.process_time(), time.monotonic()
    ramp_cpu0 = cpu_s(watch_pid)
    tasks = [asyncio.create_task(c.run(url, args.ramp_s * i / n, stop, storm)) for i, c in enumerate(chargers)]
    await asyncio.sleep(args.ramp_s + min(5.0, args.ramp_s / 2 + 1))  # let the last boots finish
    stats.phase = "steady"
    lag.clear()
    cpu0, t0 = cpu_s(watch_pid), time.monotonic()
    ramp_cpu_s = cpu0 - ramp_cpu0  # connects, boots, first statuses and capability requests (+ a few beats)
    storm_cpu_s = 0.0
    child_cpu0 = children_cpu_s(watch_pid)
    if args.storm:
        await asyncio.sleep(args.duration_s / 2)
        steady_cpu = (cpu_s(watch_pid) - cpu0) / (time.monotonic() - t0) * 100
        stats.phase = "storm"
        storm_cpu0 = cpu_s(watch_pid)
        storm.set()
        await asyncio.sleep(args.storm_window_s + args.duration_s / 2)
        storm_cpu_s = cpu_s(watch_pid) - storm_cpu0
    else:
        await asyncio.sleep(args.duration_s)
        steady_cpu = (cpu_s(watch_pid) - cpu0) / (time.monotonic() - t0) * 100
    rss_end = rss_mb(watch_pid)
    steady_cpu_s = cpu_s(watch_pid) - cpu0
    worker_cpu_pct = (children_cpu_s(watch_pid) - child_cpu0) / (time.monotonic() - t0) * 100
    steady_msgs = sum(len(v) for (ph, _), v in stats.lat.items() if ph != "ramp")
    stop.set()
    await asyncio.wait(tasks, timeout=args.timeout_s + 5)
    for t in tasks:
        t.cancel()
    probe.cancel()
    sampler.cancel()
    lag_sorted = sorted(lag) or [0.0]
    return {
        "chargers": n, "lat": stats.lat, "errors": dict(stats.errors), "timeouts": dict(stats.timeouts),
        "csms_cpu_pct": steady_cpu, "cpu_ms_per_msg": steady_cpu_s * 1000 / max(1, steady_msgs),
        # CPU of the CSMS per charger booted during the ramp: the cost of a connect + boot (with its
        # StatusNotification, capability request, and the few heartbeats of the ramp).
        "ramp_cpu_s": ramp_cpu_s,
        "ramp_cpu_ms_per_boot": ramp_cpu_s * 1000 / max(1, len(stats.lat.get(("ramp", "BootNotification"), []))),
        "storm_cpu_s": storm_cpu_s,
        "run_cpu_s": ramp_cpu_s + steady_cpu_s,  # ramp + steady (+ storm): with long intervals, ~the boots
        "storm_cpu_ms_per_boot": storm_cpu_s * 1000 / max(1, len(stats.lat.get(("storm", "BootNotification"), []))),
        "rss_peak_mb": max(rss_peak[0], rss_end), "rss_end_mb": rss_end,
        "worker_rss_peak_mb": rss_peak[1], "worker_cpu_pct": worker_cpu_pct,
        "received": dict(stats.received), "self_cpu_s": time.process_time() - self_cpu0,
        "self_cpu_pct": (time.process_time() - self_cpu0) / (time.monotonic() - self_wall0) * 100,
        "self_lag_p99_ms": pct(lag_sorted, 99), "self_lag_max_ms": lag_sorted[-1],
    }


# --- the system under test -----------------------------------------------------------------------
def csms_config(args: argparse.Namespace, ocpp_port: int, api_port: int, db_url: str) -> dict[str, Any]:
    sites, chargers = [], []
    for site, size in site_sizes(args):
        # 11 kW chargers, a grid connection for 60 % of them: the planner has a binding limit.
        sites.append({"id": site, "grid_limit_kw": round(size * 11 * 0.6, 1)})
        if size >= 500 and not args.no_site_planning:
            # A site this large plans on a coarser grid with a longer budget (SiteConfig.planning): at 96 slots
            # of 15 min a 1,000-EVSE plan took 5-20 s and fell back to equal shares at the 5 s limit.
            sites[-1]["planning"] = {"slot_min": 30, "solver_time_limit_s": 15}
    for site, ident in identities(args):
        chargers.append({"id": ident, "site": site, "max_current_a": 16, "phases": 3})
    return {
        # security_profile 0: the load chargers connect without passwords (an explicit opt-out since issue 12;
        # a checkout older than that, given with --csms-root, does not know the key).
        "server": {"host": "127.0.0.1", "port": ocpp_port, "heartbeat_interval_s": args.heartbeat_s,
                   "response_timeout_s": args.timeout_s, "security_profile": 0},
        "api": {"enabled": True, "host": "127.0.0.1", "port": api_port},
        "database": {"url": db_url},
        "sites": sites, "chargers": chargers,
        "id_tokens": [{"value": TOKEN}],
        "smart_charging": {"enabled": not args.no_smart, **(
            {} if args.planner_processes is None else {"planner_processes": args.planner_processes})},
        "billing": {"enabled": not args.no_billing},
        "logging": {"level": args.log_level},
    }


async def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}; see {log}:\n"
                             + log.read_text()[-3000:])
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise SystemExit(f"the server did not listen on {port} within {timeout_s}s; see {log}")


async def reset_postgres(url: str) -> None:
    """Drop and recreate the public schema (only with --reset-db): a run starts from an empty database."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


def scrape_lag(api_port: int) -> dict[str, float]:
    """The CSMS's own event-loop lag figures from /metrics (absent in a CSMS without the probe)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{api_port}/metrics", timeout=10).read().decode()
    except OSError:
        return {}
    out = {}
    for name in ("csms_event_loop_lag_max_seconds", "csms_event_loop_lag_seconds_sum",
                 "csms_event_loop_lag_seconds_count", "csms_db_commits_total", "csms_db_commit_units_total",
                 "csms_db_writer_busy_seconds_total", "csms_db_batch_units_max"):
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        if m:
            out[name] = float(m.group(1))
    # Smart charging: plans computed (all sites) and re-plan requests by what asked for them.
    plans = re.findall(r'^csms_plans_total\{([^}]*)\} (\S+)$', text, re.M)
    if plans:
        out["plans"] = sum(float(v) for _, v in plans)
        out["fallback_plans"] = sum(float(v) for labels, v in plans if 'status="fallback"' in labels)
    for reason, v in re.findall(r'^csms_replan_requests_total\{reason="([^"]+)"\} (\S+)$', text, re.M):
        out[f"replan_requests:{reason}"] = float(v)
    for kind, why, v in re.findall(r'^csms_profiles_sent_total\{kind="([^"]+)",why="([^"]+)"\} (\S+)$', text, re.M):
        out[f"profiles_sent:{kind}:{why}"] = float(v)
    over = re.search(r'^csms_event_loop_lag_seconds_bucket\{le="0.1"\} (\S+)$', text, re.M)
    if over and "csms_event_loop_lag_seconds_count" in out:
        out["lag_over_100ms"] = out["csms_event_loop_lag_seconds_count"] - float(over.group(1))
    return out


async def run_against_csms(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import yaml

    ocpp_port, api_port = free_port(), free_port()
    db_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'load.db'}"
    if args.database_url and args.reset_db:
        await reset_postgres(args.database_url)
    cfg_path = workdir / "load.yaml"
    cfg_path.write_text(yaml.safe_dump(csms_config(args, ocpp_port, api_port, db_url)))
    log = workdir / "csms.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "csms", "--config", str(cfg_path)], cwd=workdir,
                                stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": os.environ.get("LOAD_EXTRA_PATH", "") + str(args.csms_root or ROOT)})
    try:
        await wait_port(ocpp_port, proc, 120, log)
        print(f"csms pid {proc.pid} on ws://127.0.0.1:{ocpp_port}/ocpp ({db_url.split(':')[0]}), "
              f"log {log}", flush=True)
        if args.pid_file:
            Path(args.pid_file).write_text(str(proc.pid))
        res = await drive(f"ws://127.0.0.1:{ocpp_port}/ocpp", args, proc.pid)
        res["csms_lag"] = await asyncio.to_thread(scrape_lag, api_port)
        return res
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


async def run_against_bare(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--bare-responder", str(port)])
    try:
        await wait_port(port, proc, 30, Path("(stderr)"))
        return await drive(f"ws://127.0.0.1:{port}/ocpp", args, proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


# --- the bare responder (subprocess) ---------------------------------------------------------------
BARE: dict[str, dict[str, Any]] = {
    "BootNotification": {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 60},
    "Heartbeat": {"currentTime": "2026-01-01T00:00:00Z"},
    "StartTransaction": {"transactionId": 1, "idTagInfo": {"status": "Accepted"}},
    "TransactionEvent": {"idTokenInfo": {"status": "Accepted"}},
}


def bare_responder(port: int) -> None:
    """Answer every CALL with a canned CALLRESULT: the websocket transport's own cost."""
    from websockets.asyncio.server import serve

    async def handle(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                msg = json.loads(raw)
                if msg[0] == 2:
                    await ws.send(json.dumps([3, msg[1], BARE.get(msg[2], {})]))

    async def main() -> None:
        async with serve(handle, "127.0.0.1", port, subprotocols=["ocpp1.6", "ocpp2.0.1"],  # type: ignore[list-item]
                         compression=None, ping_interval=None, max_size=None):
            await asyncio.Future()

    raise_fd_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


# --- report ----------------------------------------------------------------------------------------
def pct(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p / 100))]


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    rows, all_by_phase = [], defaultdict(list)
    for (phase, action), v in sorted(res["lat"].items(), key=lambda kv: (PHASES.index(kv[0][0]), kv[0][1])):
        v = sorted(v)
        all_by_phase[phase].extend(v)
        rows.append({"phase": phase, "action": action, "n": len(v), "p50_ms": pct(v, 50), "p95_ms": pct(v, 95),
                     "p99_ms": pct(v, 99), "max_ms": v[-1]})
    for phase, v in all_by_phase.items():
        v.sort()
        rows.append({"phase": phase, "action": "(all)", "n": len(v), "p50_ms": pct(v, 50), "p95_ms": pct(v, 95),
                     "p99_ms": pct(v, 99), "max_ms": v[-1]})
    n_err = sum(res["errors"].values()) + sum(res["timeouts"].values())
    every = sorted(x for v in res["lat"].values() for x in v)
    return {**{k: v for k, v in res.items() if k != "lat"}, "rows": rows, "error_count": n_err,
            "p99_ms": pct(every, 99), "p50_ms": pct(every, 50), "messages": len(every)}


def print_report(title: str, s: dict[str, Any], seconds: float) -> None:
    print(f"\n## {title}: {s['chargers']} chargers")
    print("| phase | action | n | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in s["rows"]:
        print(f"| {r['phase']} | {r['action']} | {r['n']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['max_ms']:.1f} |")
    print(f"messages {s['messages']} ({s['messages'] / seconds:.0f}/s over the run), errors+timeouts "
          f"{s['error_count']} {s['errors'] or ''} {s['timeouts'] or ''}")
    print(f"server CPU {s['csms_cpu_pct']:.0f} % of a core (steady phase), {s['cpu_ms_per_msg']:.2f} ms CPU per "
          f"message (incl. the calls it makes), RSS peak {s['rss_peak_mb']:.0f} MB, "
          f"end {s['rss_end_mb']:.0f} MB; CSMS calls answered: {sum(s['received'].values())} "
          f"{dict(sorted(s['received'].items()))}")
    print(f"connect+boot: CSMS CPU {s['ramp_cpu_s']:.1f} s over the ramp, {s['ramp_cpu_ms_per_boot']:.2f} ms per "
          f"charger booted (ramp + steady: {s['run_cpu_s']:.1f} s)" + (f"; storm {s['storm_cpu_s']:.1f} s, {s['storm_cpu_ms_per_boot']:.2f} ms per boot "
                               f"(incl. the steady traffic of that window)" if s['storm_cpu_s'] else ""))
    if s.get("worker_rss_peak_mb"):
        print(f"of which the planner worker process(es): CPU {s['worker_cpu_pct']:.0f} % of a core over the run's "
              f"steady part, RSS peak {s['worker_rss_peak_mb']:.0f} MB")
    print(f"load tool: CPU {s['self_cpu_s']:.1f} s ({s['self_cpu_pct']:.0f} % of a core over the run), own loop "
          f"lag p99 {s['self_lag_p99_ms']:.0f} ms max {s['self_lag_max_ms']:.0f} ms (steady phase)")
    if s["self_lag_p99_ms"] > 100 or s["self_cpu_pct"] > 85:
        print("WARNING: the load tool itself saturated (its loop lag p99 > 100 ms or its CPU > 85 % of a core): "
              "the latencies above include its own queueing")
    lag = s.get("csms_lag") or {}
    if lag:
        count = lag.get("csms_event_loop_lag_seconds_count", 0)
        mean = lag.get("csms_event_loop_lag_seconds_sum", 0) / count * 1000 if count else 0
        print(f"CSMS event loop lag (whole run): max {lag.get('csms_event_loop_lag_max_seconds', 0) * 1000:.0f} ms, "
              f"mean {mean:.1f} ms, probes over 100 ms: {lag.get('lag_over_100ms', 0):.0f} of {count:.0f}")
    if "plans" in lag:
        asked = {k.split(":", 1)[1]: int(v) for k, v in lag.items() if k.startswith("replan_requests:")}
        print(f"smart charging (whole run): {lag['plans']:.0f} plans, {lag.get('fallback_plans', 0):.0f} of them "
              f"fallbacks (solver failed or out of time); re-plan requests by what asked: "
              f"{dict(sorted(asked.items(), key=lambda kv: -kv[1]))}")
        sent = {k.split(":", 1)[1]: int(v) for k, v in lag.items() if k.startswith("profiles_sent:")}
        if sent:
            print(f"charging profiles sent by kind:why: {dict(sorted(sent.items(), key=lambda kv: -kv[1]))}")
    if lag.get("csms_db_commits_total"):
        # CPU per message falls as more messages share a commit: a loaded machine makes batches larger.
        print(f"CSMS group commit (whole run): {lag['csms_db_commits_total']:.0f} commits, "
              f"{lag['csms_db_commit_units_total'] / lag['csms_db_commits_total']:.1f} units per commit"
              + (f", largest {lag['csms_db_batch_units_max']:.0f}; writer busy {lag['csms_db_writer_busy_seconds_total']:.1f} s"
                 f" ({1000 * lag['csms_db_writer_busy_seconds_total'] / lag['csms_db_commit_units_total']:.2f} ms per unit)"
                 if "csms_db_writer_busy_seconds_total" in lag else ""))


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--chargers", type=int, help="shortcut for --sites 1 --per-site N")
    p.add_argument("--sites", type=int, default=1)
    p.add_argument("--per-site", type=int, default=100)
    p.add_argument("--big-site", type=int, default=0, metavar="N",
                   help="one more site of N single-EVSE chargers under one optimizer (the goal: 1000)")
    p.add_argument("--heartbeat-s", type=float, default=60.0)
    p.add_argument("--meter-s", type=float, default=30.0)
    p.add_argument("--speedup", type=float, default=1.0, help="divide both intervals by this (short runs)")
    p.add_argument("--ramp-s", type=float, default=10.0, help="connects spread over this many seconds")
    p.add_argument("--duration-s", type=float, default=60.0, help="steady phase after the ramp")
    p.add_argument("--storm", action="store_true", help="all chargers reconnect halfway through")
    p.add_argument("--storm-window-s", type=float, default=60.0)
    p.add_argument("--timeout-s", type=float, default=30.0, help="a CALL unanswered this long is a timeout")
    p.add_argument("--database-url", help="default: a fresh SQLite file in a temporary directory")
    p.add_argument("--reset-db", action="store_true", help="PostgreSQL: drop and recreate the public schema")
    p.add_argument("--no-smart", action="store_true", help="smart charging off")
    p.add_argument("--no-site-planning", action="store_true",
                   help="no planning override for sites of 500+ chargers (they plan on smart_charging's grid); "
                        "needed with a --csms-root older than sites[].planning")
    p.add_argument("--no-billing", action="store_true", help="billing off")
    p.add_argument("--planner-processes", type=int, default=1,
                   help="smart_charging.planner_processes, as config.yaml ships it (0: plans in a thread of the CSMS)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--no-bare", action="store_true", help="skip the bare websockets responder run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--csms-root", type=Path, help="run the CSMS from this checkout (A/B against another commit)")
    p.add_argument("--pid-file", help="write the CSMS pid here (to attach a profiler)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (config, log, database)")
    p.add_argument("--max-p99-ms", type=float, help="fail (exit 1) if the CSMS p99 over all messages exceeds this")
    p.add_argument("--max-errors", type=int, help="fail (exit 1) if errors + timeouts exceed this")
    p.add_argument("--max-steady-p99-ms", type=float,
                   help="fail (exit 1) if the CSMS p99 of the steady phase (after the ramp) exceeds this")
    p.add_argument("--max-fallback-plans", type=int,
                   help="fail (exit 1) if more plans than this fell back to equal shares (solver failed or timed out)")
    p.add_argument("--max-cpu-ms-per-msg", type=float,
                   help="fail (exit 1) if the CSMS's CPU per message over the steady phase exceeds this")
    p.add_argument("--bare-responder", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.chargers is not None:
        args.sites, args.per_site = 1, args.chargers
    return args


async def amain(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="csms-load-"))
    seconds = args.ramp_s + args.duration_s + (args.storm_window_s if args.storm else 0)
    n = args.sites * args.per_site + args.big_site
    print(f"load: {n} chargers ({args.sites} sites x {args.per_site}"
          f"{f' + one site of {args.big_site}' if args.big_site else ''}), heartbeat {args.heartbeat_s / args.speedup:g} s, "
          f"meter values {args.meter_s / args.speedup:g} s (half of them), ramp {args.ramp_s:g} s, "
          f"steady {args.duration_s:g} s{', storm' if args.storm else ''}", flush=True)
    try:
        csms = summarise(await run_against_csms(args, workdir))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print_report("CSMS", csms, seconds)
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "csms": csms}
    if not args.no_bare:
        bare = summarise(await run_against_bare(args))
        print_report("bare websockets responder", bare, seconds)
        out["bare"] = bare
        ratio = csms["p99_ms"] / bare["p99_ms"] if bare["p99_ms"] else float("nan")
        cpu = csms["cpu_ms_per_msg"] / bare["cpu_ms_per_msg"] if bare["cpu_ms_per_msg"] else float("nan")
        print(f"\nratio CSMS / bare: p99 {ratio:.1f}x, p50 {csms['p50_ms'] / bare['p50_ms']:.1f}x, "
              f"CPU per message {cpu:.1f}x")
        out["ratio_p99"], out["ratio_cpu"] = ratio, cpu
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    failed = []
    if args.max_p99_ms is not None and not csms["p99_ms"] <= args.max_p99_ms:
        failed.append(f"p99 {csms['p99_ms']:.1f} ms > {args.max_p99_ms} ms")
    steady = next((r for r in csms["rows"] if r["phase"] == "steady" and r["action"] == "(all)"), None)
    if args.max_steady_p99_ms is not None and not (steady and steady["p99_ms"] <= args.max_steady_p99_ms):
        failed.append(f"steady p99 {steady['p99_ms'] if steady else float('nan'):.1f} ms > {args.max_steady_p99_ms} ms")
    if args.max_cpu_ms_per_msg is not None and not csms["cpu_ms_per_msg"] <= args.max_cpu_ms_per_msg:
        failed.append(f"CPU per message {csms['cpu_ms_per_msg']:.2f} ms > {args.max_cpu_ms_per_msg} ms")
    if args.max_errors is not None and csms["error_count"] > args.max_errors:
        failed.append(f"errors+timeouts {csms['error_count']} > {args.max_errors}")
    expected = n * (2 if args.storm else 1)
    boots = sum(r["n"] for r in csms["rows"] if r["action"] == "BootNotification")
    if args.max_errors is not None and boots < expected:
        failed.append(f"only {boots} of {expected} BootNotifications answered")
    fallbacks = (csms.get("csms_lag") or {}).get("fallback_plans")
    if args.max_fallback_plans is not None and (fallbacks is None or fallbacks > args.max_fallback_plans):
        failed.append(f"fallback plans {fallbacks} > {args.max_fallback_plans}" if fallbacks is not None
                      else "no plan figures from /metrics (smart charging off?)")
    bounded = (args.max_p99_ms, args.max_errors, args.max_steady_p99_ms, args.max_cpu_ms_per_msg,
               args.max_fallback_plans)
    print("\nFAILED: " + "; ".join(failed) if failed else "\nPASSED" if any(b is not None for b in bounded) else "")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    raise_fd_limit()
    if args.bare_responder:
        bare_responder(args.bare_responder)
        return 0
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
