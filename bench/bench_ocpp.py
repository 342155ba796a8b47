"""OCPP adapter benchmark: round trips per second and memory per idle connection.

    .venv/bin/python bench/bench_ocpp.py [--seconds 3] [--idle 1000]

The OcppServer runs in this process on one event loop (one core), wired to a minimal in-memory
ChargerEvents, or with --full-csms to the real ChargingService persisting to SQLite. The chargers run in
a subprocess, as raw websockets clients sending pre-built frames, so their CPU and memory are not
counted. Every CALL the server receives is schema-validated, mapped to the domain and answered with a
schema-validated CALLRESULT.

Printed per scenario: round trips/s (wall), round trips per CPU-second of the server process (what
one core sustains), and the ratio to a bare websockets echo server (same client, same frames) run in
this script. Then RSS growth per idle connection with N chargers connected and booted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TS = "2026-11-27T05:00:00.000Z"
SAMPLES_16 = [
    {"value": "12345.6", "unit": "Wh", "measurand": "Energy.Active.Import.Register", "context": "Sample.Periodic"},
    {"value": "7.36", "unit": "kW", "measurand": "Power.Active.Import"},
    {"value": "16.0", "unit": "A", "measurand": "Current.Import", "phase": "L1"},
    {"value": "16.0", "unit": "A", "measurand": "Current.Import", "phase": "L2"},
    {"value": "16.0", "unit": "A", "measurand": "Current.Import", "phase": "L3"},
    {"value": "230.1", "unit": "V", "measurand": "Voltage", "phase": "L1-N"},
    {"value": "55", "unit": "Percent", "measurand": "SoC"},
]
SAMPLES_201 = [
    {"value": 12.3456, "unitOfMeasure": {"unit": "kWh"}, "measurand": "Energy.Active.Import.Register",
     "context": "Sample.Periodic"},
    {"value": 7360, "unitOfMeasure": {"unit": "W"}, "measurand": "Power.Active.Import"},
    {"value": 160, "unitOfMeasure": {"unit": "A", "multiplier": -1}, "measurand": "Current.Import", "phase": "L1"},
    {"value": 160, "unitOfMeasure": {"unit": "A", "multiplier": -1}, "measurand": "Current.Import", "phase": "L2"},
    {"value": 160, "unitOfMeasure": {"unit": "A", "multiplier": -1}, "measurand": "Current.Import", "phase": "L3"},
    {"value": 230.1, "unitOfMeasure": {"unit": "V"}, "measurand": "Voltage", "phase": "L1-N"},
    {"value": 55, "unitOfMeasure": {"unit": "Percent"}, "measurand": "SoC"},
]
PAYLOADS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "hb16": ("ocpp1.6", "Heartbeat", {}),
    "mv16": ("ocpp1.6", "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": TS, "sampledValue": SAMPLES_16}]}),
    "mv201": ("ocpp2.0.1", "MeterValues", {"evseId": 1, "meterValue": [{"timestamp": TS, "sampledValue": SAMPLES_201}]}),
}
BOOT = ("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "B1"})


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --- clients (subprocess) ------------------------------------------------------------------------
async def _round_trip(ws: Any, uid: str, frame: str, echo: bool) -> None:
    await ws.send(frame)
    while True:
        msg = json.loads(await ws.recv())
        if echo or (msg[0] in (3, 4) and msg[1] == uid):
            return
        if msg[0] == 2:  # the CSMS asks something (e.g. capabilities): say we do not do that
            await ws.send(json.dumps([4, msg[1], "NotImplemented", "", {}]))


async def client_load(url: str, n: int, seconds: float, kind: str, echo: bool) -> dict[str, float]:
    from websockets.asyncio.client import connect

    proto, action, payload = PAYLOADS[kind]
    body = json.dumps(payload, separators=(",", ":"))
    socks = await asyncio.gather(*(connect(f"{url}/BENCH-{i}", subprotocols=[proto], compression=None,  # type: ignore[list-item]
                                           ping_interval=None, max_queue=None) for i in range(n)))
    counts = [0] * n
    stop_at = 0.0

    async def loop(i: int, ws: Any) -> None:
        k = 0
        while time.perf_counter() < stop_at:
            k += 1
            uid = f"{i}-{k}"
            await _round_trip(ws, uid, f'[2,"{uid}","{action}",{body}]', echo)
            counts[i] += 1

    for i, ws in enumerate(socks):  # warm-up: one round trip each
        await _round_trip(ws, f"w{i}", f'[2,"w{i}","{action}",{body}]', echo)
    t0 = time.perf_counter()
    stop_at = t0 + seconds
    await asyncio.gather(*(loop(i, ws) for i, ws in enumerate(socks)))
    wall = time.perf_counter() - t0
    await asyncio.gather(*(ws.close() for ws in socks))
    return {"round_trips": float(sum(counts)), "wall_s": wall}


async def client_idle(url: str, n: int) -> None:
    """Connect and boot n chargers, answer CSMS calls, print 'ready', hold until stdin closes."""
    from websockets.asyncio.client import connect

    async def one(i: int) -> Any:
        ws = await connect(f"{url}/IDLE-{i}", subprotocols=["ocpp1.6"], compression=None, ping_interval=None)  # type: ignore[list-item]
        await _round_trip(ws, "boot", json.dumps([2, "boot", BOOT[0], BOOT[1]]), False)
        return ws

    socks = []
    for start in range(0, n, 100):
        socks += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 100))))

    async def answer(ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                msg = json.loads(raw)
                if msg[0] == 2:
                    await ws.send(json.dumps([4, msg[1], "NotImplemented", "", {}]))

    tasks = [asyncio.create_task(answer(ws)) for ws in socks]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for ws in socks:
        with contextlib.suppress(Exception):
            await ws.close()
    for t in tasks:
        t.cancel()


# --- server side (this process) ------------------------------------------------------------------
@dataclass
class MinimalEvents:
    """An in-memory ChargerEvents + StationDirectory that does nearly nothing: the adapter's own cost."""

    booted_count: int = 0
    samples: int = 0

    async def access(self, station_id: str) -> Any:
        from csms.domain.ports import StationAccess
        return StationAccess(known=True, security_profile=0)

    async def connected(self, station_id: str, protocol: str) -> None: ...
    async def disconnected(self, station_id: str) -> None: ...

    async def booted(self, station_id: str, info: Any, reason: str | None) -> Any:
        from csms.domain.enums import RegistrationStatus
        from csms.domain.ports import BootReply
        self.booted_count += 1
        return BootReply(RegistrationStatus.ACCEPTED, 300)

    async def heartbeat(self, station_id: str) -> datetime:
        return datetime.now(UTC)

    async def status_changed(self, *a: Any, **k: Any) -> None: ...

    async def authorize(self, station_id: str, id_token: str) -> Any:
        from csms.domain.enums import AuthorizationStatus
        from csms.domain.model import AuthorizationResult
        return AuthorizationResult(AuthorizationStatus.ACCEPTED)

    async def transaction(self, event: Any) -> Any:
        from csms.domain.model import TxReply
        return TxReply(None, event.charger_tx_id or "1")

    async def meter_values(self, station_id: str, evse: Any, charger_tx_id: str | None, samples: Any) -> None:
        self.samples += sum(len(s.values) for s in samples)

    async def charging_needs(self, needs: Any) -> None: ...
    async def ready(self, station_id: str) -> None: ...
    async def charging_limit(self, *a: Any, **k: Any) -> None: ...
    async def notice(self, *a: Any, **k: Any) -> None: ...


def minimal_events() -> tuple[Any, Any]:
    ev = MinimalEvents()
    return ev, ev


async def _client(args: list[str], stdin: int | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, __file__, *args, stdout=subprocess.PIPE,
                                                stdin=stdin)


async def _load(url: str, n: int, seconds: float, kind: str, echo: bool) -> tuple[float, float]:
    """(round trips/s wall, round trips per server CPU-second)."""
    proc = await _client(["client", url, str(n), str(seconds), kind, "1" if echo else "0"])
    cpu0 = time.process_time()
    out, _ = await proc.communicate()
    cpu = time.process_time() - cpu0
    res = json.loads(out.decode().strip().splitlines()[-1])
    # The server's CPU also covers connect/warm-up/close; count it all (conservative per-core figure).
    return res["round_trips"] / res["wall_s"], res["round_trips"] / max(cpu, 1e-9)


async def _echo_server() -> Any:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for m in ws:
                await ws.send(m)

    return await serve(echo, "127.0.0.1", 0, compression=None, max_size=None)


async def _idle_memory(url: str, n: int) -> tuple[float, int]:
    gc.collect()
    before = rss_kib()
    proc = await _client(["idle", url, str(n)], stdin=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    assert line.strip() == b"ready", line
    await asyncio.sleep(1.5)  # readiness tasks (capability query) finish, connections go idle
    gc.collect()
    after = rss_kib()
    proc.stdin.close()
    await proc.wait()
    return (after - before) / n, after - before


async def run(events_factory: Callable[[], tuple[Any, Any]] = minimal_events, *, seconds: float = 3.0,
              idle: int = 1000, concurrency: tuple[int, ...] = (1, 100)) -> dict[str, Any]:
    """Run every scenario; `events_factory()` returns (ChargerEvents, StationDirectory)."""
    from csms.config import OcppServerConfig
    from csms.domain.clock import SystemClock
    from csms.ocpp.server import OcppServer

    raise_fd_limit()
    logging.getLogger("csms").setLevel(logging.WARNING)
    made = events_factory()
    events, directory = (await made) if asyncio.iscoroutine(made) else made
    cfg = OcppServerConfig(port=0, ping_interval_s=60, ping_timeout_s=60, allow_unknown_chargers=True,
                           security_profile=0)  # no passwords: the bench measures the message path
    server = OcppServer(cfg, events, directory, SystemClock(), ready_grace_s=0.2)
    await server.start()
    url = f"ws://127.0.0.1:{server.port}{cfg.path_prefix}"
    results: dict[str, Any] = {}
    try:
        await _load(url, 10, 0.2, "hb16", False)  # warm-up: imports, schema validators, allocator
        per_conn, total = await _idle_memory(url, idle)
        results["idle"] = {"connections": idle, "rss_delta_kib": total, "kib_per_connection": per_conn}
        print(f"idle memory: {idle} connected+booted chargers -> RSS +{total} KiB = {per_conn:.1f} KiB per "
              f"connection (target < 100)", flush=True)
        echo_srv = await _echo_server()
        echo_url = f"ws://127.0.0.1:{echo_srv.sockets[0].getsockname()[1]}/echo"
        print(f"{'scenario':<28}{'rt/s':>9}{'rt/cpu-s':>10}{'echo rt/s':>11}{'ratio':>7}", flush=True)
        for kind in ("hb16", "mv16", "mv201"):
            for n in concurrency:
                rate, per_cpu = await _load(url, n, seconds, kind, False)
                echo_rate, _ = await _load(echo_url, n, seconds, kind, True)
                name = f"{PAYLOADS[kind][0]} {PAYLOADS[kind][1]} x{n}"
                results[f"{kind}_x{n}"] = {"rt_per_s": rate, "rt_per_cpu_s": per_cpu, "echo_rt_per_s": echo_rate,
                                          "ratio": rate / echo_rate}
                print(f"{name:<28}{rate:>9.0f}{per_cpu:>10.0f}{echo_rate:>11.0f}{rate / echo_rate:>7.2f}", flush=True)
        echo_srv.close()
        await echo_srv.wait_closed()
    finally:
        await server.stop()
    print("rt = one CALL validated + mapped + answered with a validated CALLRESULT (2 OCPP messages); "
          "rt/cpu-s = round trips per CPU-second of the server process (one core)")
    return results


async def full_csms_events() -> tuple[Any, Any]:
    """The real ChargingService on a fresh SQLite file: every MeterValues is persisted and committed before
    it is answered, as in production (Heartbeats only move last_seen in memory)."""
    import tempfile

    from csms.domain.clock import SystemClock
    from csms.services.bus import EventBus
    from csms.services.charging import ChargingService
    from csms.store.db import create_engine, migrate
    from csms.store.repositories import Store

    path = Path(tempfile.mkdtemp()) / "bench.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    svc = ChargingService(Store(engine), EventBus(), SystemClock(), heartbeat_interval_s=300,
                          allow_unknown_chargers=True, default_security_profile=0)
    return svc, svc


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        _, _, url, n, seconds, kind, echo = sys.argv
        raise_fd_limit()
        print(json.dumps(asyncio.run(client_load(url, int(n), float(seconds), kind, echo == "1"))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "idle":
        raise_fd_limit()
        asyncio.run(client_idle(sys.argv[2], int(sys.argv[3])))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput scenario")
    p.add_argument("--idle", type=int, default=1000, help="connections for the memory measurement")
    p.add_argument("--full-csms", action="store_true",
                   help="answer through the real ChargingService and an SQLite store instead of in-memory events")
    a = p.parse_args()
    print(f"python {sys.version.split()[0]}, pid {os.getpid()}, cpus {os.cpu_count()}, "
          f"events: {'ChargingService + SQLite' if a.full_csms else 'minimal in-memory'}")
    asyncio.run(run(full_csms_events if a.full_csms else minimal_events, seconds=a.seconds, idle=a.idle))


if __name__ == "__main__":
    main()
