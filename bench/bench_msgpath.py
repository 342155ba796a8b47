"""CPU per charger message on the service + store + billing path, without websockets (A/B of the message path).

    .venv/bin/python bench/bench_msgpath.py [--chargers 400] [--rounds 10] [--batch 8] [--database-url URL]
    PYTHONPATH=/other/checkout .venv/bin/python bench/bench_msgpath.py      # the same against another commit

bench/load.py measures the whole CSMS, but its CPU per message depends on how many messages share a
group commit, and on a shared machine that depends on how starved the process is (a starved CSMS queues,
its batches grow, each message costs less). Here the batch size is fixed: the CsmsApp's services run in
this process (smart charging off, billing on, no API) and are called directly, `--batch` messages at a
time (each wave is gathered, so they share one commit), and the figure is this process's CPU time
(all threads: aiosqlite's included) per message, which a loaded machine slows but does not change much.

Workload per round (the steady phase of bench/load.py): every charger a Heartbeat, every transacting
charger (half of them, both versions) a meter value: 1.6 MeterValues with its transactionId, 2.0.1
TransactionEvent Updated with the next seqNo. Billing's worker is drained after each round.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1])) if "PYTHONPATH" not in __import__("os").environ else None

from csms.app import CsmsApp  # noqa: E402
from csms.config import parse_config  # noqa: E402
from csms.domain.enums import Measurand, TxEventKind  # noqa: E402
from csms.domain.ids import EvseRef, StationId  # noqa: E402
from csms.domain.model import MeterSample, SampledValue, TxEvent  # noqa: E402


def config(n: int, db_url: str) -> dict[str, object]:
    return {
        "server": {"host": "127.0.0.1", "port": 0, "security_profile": 0},
        "api": {"enabled": False},
        "database": {"url": db_url},
        "sites": [{"id": "site-000", "grid_limit_kw": round(n * 11 * 0.6, 1)}],
        "chargers": [{"id": f"B-{i:05d}", "site": "site-000", "max_current_a": 16, "phases": 3} for i in range(n)],
        "id_tokens": [{"value": "TAG"}],
        "smart_charging": {"enabled": False},
        "billing": {"enabled": True},
        "logging": {"level": "WARNING"},
    }


def sample(at: object, wh: float) -> tuple[MeterSample, ...]:
    return (MeterSample(at, (SampledValue(Measurand.ENERGY_IMPORT_WH, wh),  # type: ignore[arg-type]
                             SampledValue(Measurand.POWER_IMPORT_W, 7400.0))),)


async def run(args: argparse.Namespace) -> None:
    db_url = args.database_url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='msgpath-')) / 'b.db'}"
    if args.database_url and args.reset_db:
        import asyncpg  # type: ignore[import-untyped]
        conn = await asyncpg.connect(args.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        await conn.close()
    import json
    app = CsmsApp(parse_config(json.dumps(config(args.chargers, db_url)), env={}))
    await app.start()
    try:
        ch, clock = app.charging, app.clock
        ids = [f"B-{i:05d}" for i in range(args.chargers)]
        for sid in ids:
            await ch.connected(sid, "ocpp1.6" if int(sid[2:]) % 2 == 0 else "ocpp2.0.1")
        tx_ids: dict[str, str] = {}
        seq: dict[str, int] = {}
        t0 = clock.now()
        for i, sid in enumerate(ids):
            if (i // 2) % 2:
                continue
            if i % 2 == 0:
                r = await ch.transaction(TxEvent(TxEventKind.STARTED, StationId(sid), t0, None, EvseRef(1, 1),
                                                 id_token="TAG", meter_start_wh=0.0))
                tx_ids[sid] = r.charger_tx_id  # type: ignore[assignment]
            else:
                tx_ids[sid] = f"{sid}-tx"
                seq[sid] = 0
                await ch.transaction(TxEvent(TxEventKind.STARTED, StationId(sid), t0, f"{sid}-tx", EvseRef(1, 1),
                                             id_token="TAG", seq_no=0, samples=sample(t0, 0.0)))
        if app.billing is not None:
            await app.billing.drain()

        def messages(r: int) -> list[object]:
            at = t0 + timedelta(seconds=30 * (r + 1))
            out: list[object] = []
            for sid in ids:
                out.append(ch.heartbeat(sid))
                if sid in tx_ids:
                    wh = 7400 * 30 * (r + 1) / 3600
                    if sid in seq:
                        seq[sid] += 1
                        out.append(ch.transaction(TxEvent(TxEventKind.UPDATED, StationId(sid), at, tx_ids[sid],
                                                          EvseRef(1, 1), seq_no=seq[sid], samples=sample(at, wh))))
                    else:
                        out.append(ch.meter_values(sid, EvseRef(1, 1), tx_ids[sid], sample(at, wh)))
            return out

        n_msgs, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
        commits0, units0 = app.store.group_commit.commits, app.store.group_commit.units
        for r in range(args.rounds):
            coros = messages(r)
            for k in range(0, len(coros), args.batch):
                await asyncio.gather(*coros[k:k + args.batch])  # type: ignore[arg-type]
            n_msgs += len(coros)
            if app.billing is not None:
                await app.billing.drain()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        commits = app.store.group_commit.commits - commits0
        units = app.store.group_commit.units - units0
        print(f"{args.chargers} chargers, {n_msgs} messages (half heartbeats), batch {args.batch}, "
              f"{db_url.split(':')[0]}: {cpu * 1000 / n_msgs:.3f} ms CPU per message "
              f"({cpu * 1000 / max(1, n_msgs - args.rounds * len(ids)):.3f} ms per meter value incl. its heartbeat "
              f"share), wall {wall:.1f} s, {units / max(1, commits):.1f} units per commit")
    finally:
        await app.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chargers", type=int, default=400)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--batch", type=int, default=8, help="messages gathered at a time (they share a commit)")
    p.add_argument("--database-url")
    p.add_argument("--reset-db", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
