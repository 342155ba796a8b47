"""PostgreSQL group commits of meter readings: one statement per batch (csms/store/pg_batch.py) against
BEGIN, a statement per table and COMMIT (the path without it), interleaved in the same process.

    .venv/bin/python bench/bench_pg_batch.py --url postgresql+asyncpg://postgres@127.0.0.1:5432/test

Each round is one group commit of `--units` meter readings of open transactions (a transaction UPDATE,
three sampled values and a seqNo each, what a 2.0.1 TransactionEvent Updated leaves). Alternating the two
paths round by round, so load on the machine falls on both alike. Prints wall ms per commit (p50, p99),
CPU ms per commit (this process), and the ratio one-statement / per-table. A database named
bench_pg_batch is created and dropped on the server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy.engine import make_url

from csms.domain.enums import ChargingState, Measurand
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import MeterSample, SampledValue, Transaction
from csms.domain.records import StationSettings
from csms.store.db import create_engine, migrate
from csms.store.repositories import Store, StoreSession

T0 = datetime(2026, 12, 7, tzinfo=UTC)
DB = "bench_pg_batch"


def _tx(i: int, wh: float = 0.0) -> Transaction:
    return Transaction(key=f"B{i}/T", station_id=StationId(f"B{i}"), charger_tx_id="T", evse=EvseRef(1, 1),  # type: ignore[arg-type]
                       id_token="TAG", started_at=T0, energy_wh=wh, charging_state=ChargingState.CHARGING)


async def _reading(s: StoreSession, i: int, n: int) -> None:
    at = T0 + timedelta(seconds=30 * n)
    await s.save_transaction(_tx(i, 100.0 * n))
    await s.add_samples(f"B{i}", 1, f"B{i}/T", [MeterSample(at, (
        SampledValue(Measurand.ENERGY_IMPORT_WH, 100.0 * n), SampledValue(Measurand.POWER_IMPORT_W, 7e3),
        SampledValue(Measurand.SOC_PCT, 50.0)))])
    await s.record_seq(f"B{i}/T", n, "Updated", at)


async def main(url: str, units: int, rounds: int, chargers: int) -> None:
    u = make_url(url)
    admin = await asyncpg.connect(user=u.username or "postgres", host=u.host or "127.0.0.1", port=u.port or 5432,
                                  database=u.database or "postgres")
    await admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {DB}")
    engine = create_engine(u.set(database=DB).render_as_string(hide_password=False))
    try:
        await migrate(engine)
        one = Store(engine)
        per_table = Store(engine)
        per_table._pg = None  # the path without pg_batch
        async with one.session() as s:
            for i in range(chargers):
                await s.save_station_settings(f"B{i}", StationSettings())
                await s.save_transaction(_tx(i))
        for st in (one, per_table):  # both know the transactions exist (as the message path's memory does)
            async with st.session() as s:
                for i in range(chargers):
                    await s.transaction(f"B{i}/T")
            st.open_transactions.committed([_tx(i) for i in range(chargers)], {})
        wall: dict[str, list[float]] = {"one statement": [], "per table": []}
        cpu: dict[str, float] = dict.fromkeys(wall, 0.0)
        n = 0
        for r in range(rounds):
            for name, st in (("one statement", one), ("per table", per_table)) if r % 2 else (
                    ("per table", per_table), ("one statement", one)):
                n += 1
                first = (n * units) % chargers
                w0, c0 = time.perf_counter(), time.process_time()
                await asyncio.gather(*(st.write(lambda s, i=(first + k) % chargers, n=n: _reading(s, i, n))
                                       for k in range(units)))
                cpu[name] += time.process_time() - c0
                if r >= 5:  # warm-up: prepared statements, type introspection
                    wall[name].append((time.perf_counter() - w0) * 1e3)
        print(f"{units} readings per commit, {rounds - 5} rounds per path")
        print("| path | wall p50 ms | wall p99 ms | CPU ms per commit |")
        print("|---|---:|---:|---:|")
        for name, w in wall.items():
            q = statistics.quantiles(w, n=100)
            print(f"| {name} | {statistics.median(w):.2f} | {q[98]:.2f} | {cpu[name] / rounds * 1e3:.2f} |")
        ratio = statistics.median(wall["one statement"]) / statistics.median(wall["per table"])
        print(f"one statement / per table: wall p50 {ratio:.2f}x, CPU {cpu['one statement'] / cpu['per table']:.2f}x")
    finally:
        await engine.dispose()
        await admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        await admin.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    p.add_argument("--units", type=int, default=8, help="readings per group commit")
    p.add_argument("--rounds", type=int, default=400)
    p.add_argument("--chargers", type=int, default=500)
    a = p.parse_args()
    asyncio.run(main(a.url, a.units, a.rounds, a.chargers))
