"""CPU per reconnect on the service + store path, without websockets (A/B of the connect/boot path).

    .venv/bin/python bench/bench_reconnect.py [--chargers 400] [--rounds 3] [--batch 1] [--database-url URL]
    PYTHONPATH=/other/checkout .venv/bin/python bench/bench_reconnect.py      # the same against another commit

What a boot storm asks of the CSMS per charger once the websocket is open (bench/load.py --storm measures the
whole of it, handshake and OCPP included): the old connection's end, the new connection, BootNotification,
StatusNotification, ready. The CsmsApp's services run in this process (smart charging off, billing on, no
API, logging at WARNING) and are called directly, `--batch` chargers at a time (gathered: their units may
share a commit); the figure is this process's CPU time (all threads) per reconnect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1])) if "PYTHONPATH" not in __import__("os").environ else None

from csms.app import CsmsApp  # noqa: E402
from csms.config import parse_config  # noqa: E402
from csms.domain.enums import ConnectorStatus  # noqa: E402
from csms.domain.ids import EvseRef  # noqa: E402
from csms.domain.model import StationInfo  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_msgpath import config  # noqa: E402


async def reconnect(app: CsmsApp, sid: str, first: bool) -> None:
    ch = app.charging
    if not first:
        await ch.disconnected(sid)
    await ch.connected(sid, "ocpp1.6" if int(sid[2:]) % 2 == 0 else "ocpp2.0.1")
    await ch.booted(sid, StationInfo("Load", "L1", None, "1.0"), None)
    await ch.status_changed(sid, EvseRef(1, 1), ConnectorStatus.AVAILABLE, app.clock.now(), None)
    await ch.ready(sid)


async def run(args: argparse.Namespace) -> None:
    db_url = args.database_url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='reconnect-')) / 'b.db'}"
    app = CsmsApp(parse_config(json.dumps(config(args.chargers, db_url)), env={}))
    await app.start()
    try:
        ids = [f"B-{i:05d}" for i in range(args.chargers)]
        for r in range(args.rounds + 1):  # round 0: the first connects (not measured)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            c0, u0 = app.store.group_commit.commits, app.store.group_commit.units
            for k in range(0, len(ids), args.batch):
                await asyncio.gather(*(reconnect(app, sid, r == 0) for sid in ids[k:k + args.batch]))
            if app.billing is not None:
                await app.billing.drain()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            units, commits = app.store.group_commit.units - u0, app.store.group_commit.commits - c0
            print(f"round {r}{' (first connects)' if r == 0 else ''}: {cpu * 1000 / len(ids):.3f} ms CPU per "
                  f"reconnect, {units / len(ids):.1f} units and {commits / len(ids):.2f} commits each, "
                  f"wall {wall:.1f} s")
    finally:
        await app.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chargers", type=int, default=400)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=1, help="chargers reconnecting at a time")
    p.add_argument("--database-url")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
