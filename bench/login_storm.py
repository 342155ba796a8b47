"""Wrong-password storm against the OCPP handshake: what a refused login costs, and what it does to a neighbour.

    .venv/bin/python bench/login_storm.py --attempts 1000
    .venv/bin/python bench/login_storm.py --attempts 300 --no-throttle     # the cost before throttling

An OcppServer (real websockets on 127.0.0.1, the production PBKDF2 hash) serves one neighbour charger that
sends a Heartbeat every 50 ms, while this process opens `--attempts` handshakes with a wrong password for
another identity, `--concurrency` at a time. Printed: the server's CPU time per refused attempt (process
CPU over the storm; client and server share the process, so the client's share is measured alone first
and subtracted), the answers by HTTP status, and the neighbour's Heartbeat round trip p50/p99/max during
the storm against a quiet baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402

from csms.config import OcppServerConfig  # noqa: E402
from csms.domain.clock import SystemClock  # noqa: E402
from csms.domain.passwords import hash_password  # noqa: E402
from csms.domain.ports import BootReply, StationAccess  # noqa: E402
from csms.domain.enums import RegistrationStatus  # noqa: E402
from csms.ocpp.server import OcppServer  # noqa: E402
from csms.ocpp.throttle import Backoff, LoginThrottle  # noqa: E402


class Directory:
    def __init__(self) -> None:
        self.stations = {"VICTIM": StationAccess(True, hash_password("the-right-password-0123")),
                         "NEIGHBOUR": StationAccess(True, security_profile=0)}

    async def access(self, station_id: str) -> StationAccess | None:
        return self.stations.get(station_id)


class Events:
    """ChargerEvents that answer at once (the handshake is what is measured)."""

    async def heartbeat(self, station_id: str) -> datetime:
        return datetime.now(UTC)

    async def booted(self, *a: Any) -> BootReply:
        return BootReply(RegistrationStatus.ACCEPTED, 300)

    def __getattr__(self, name: str) -> Any:
        async def nothing(*a: Any, **k: Any) -> None:
            return None
        return nothing


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else float("nan")


async def neighbour(port: int, stop: asyncio.Event, out: list[float]) -> None:
    async with connect(f"ws://127.0.0.1:{port}/ocpp/NEIGHBOUR", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        n = 0
        while not stop.is_set():
            n += 1
            t0 = time.perf_counter()
            await ws.send(f'[2,"hb{n}","Heartbeat",{{}}]')
            await ws.recv()
            out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.05)


async def attempt(port: int, header: str, statuses: Counter[int]) -> None:
    try:
        ws = await connect(f"ws://127.0.0.1:{port}/ocpp/VICTIM", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers={"Authorization": header}, open_timeout=30)
        statuses[101] += 1
        await ws.close()
    except InvalidStatus as e:
        statuses[e.response.status_code] += 1


async def storm(port: int, attempts: int, concurrency: int, statuses: Counter[int]) -> None:
    header = "Basic " + base64.b64encode(b"VICTIM:wrong-guess").decode()
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await attempt(port, header, statuses)

    await asyncio.gather(*(one() for _ in range(attempts)))


async def client_only_cpu_s(attempts: int, concurrency: int) -> float:
    """The client side of the same handshakes against a bare websockets server that refuses at once."""
    async def refuse(conn: Any, request: Any) -> Any:
        return conn.respond(401, "no\n")

    async with serve(lambda ws: ws.close(), "127.0.0.1", 0, process_request=refuse) as srv:
        port = srv.sockets[0].getsockname()[1]
        c0 = time.process_time()
        await storm(port, attempts, concurrency, Counter())
        return time.process_time() - c0


async def main(args: argparse.Namespace) -> None:
    throttle = None if args.throttle else LoginThrottle(identity=Backoff(free=10**9), address=Backoff(free=10**9))
    server = OcppServer(OcppServerConfig(port=0), Events(), Directory(), SystemClock(), throttle=throttle)  # type: ignore[arg-type]
    await server.start()
    assert server.port is not None
    try:
        base: list[float] = []
        stop = asyncio.Event()
        task = asyncio.create_task(neighbour(server.port, stop, base))
        await asyncio.sleep(2.0)
        stop.set()
        await task
        client_s = await client_only_cpu_s(args.attempts, args.concurrency)
        during: list[float] = []
        stop = asyncio.Event()
        task = asyncio.create_task(neighbour(server.port, stop, during))
        statuses: Counter[int] = Counter()
        c0, t0 = time.process_time(), time.perf_counter()
        await storm(server.port, args.attempts, args.concurrency, statuses)
        cpu_s, wall_s = time.process_time() - c0, time.perf_counter() - t0
        stop.set()
        await task
    finally:
        await server.stop()
    # PBKDF2 runs in worker threads: process_time counts them too.
    server_ms = max(0.0, cpu_s - client_s) * 1000 / args.attempts
    print(f"login storm: {args.attempts} wrong passwords, {args.concurrency} at a time, throttle "
          f"{'on' if args.throttle else 'off'}")
    print(f"  answers: {dict(sorted(statuses.items()))}  wall {wall_s:.2f} s")
    print(f"  CSMS CPU per refused attempt: {server_ms:.2f} ms (process {cpu_s:.2f} s - client alone {client_s:.2f} s)")
    print(f"  neighbour Heartbeat ms, quiet:  p50 {statistics.median(base):.2f}  p99 {pct(base, 99):.2f}  "
          f"max {max(base):.2f}  (n={len(base)})")
    print(f"  neighbour Heartbeat ms, storm:  p50 {statistics.median(during):.2f}  p99 {pct(during, 99):.2f}  "
          f"max {max(during):.2f}  (n={len(during)})")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--attempts", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--no-throttle", dest="throttle", action="store_false",
                   help="disable the throttle (what every refused login cost before it)")
    asyncio.run(main(p.parse_args()))
