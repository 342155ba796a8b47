"""CPU of `StoreSession.samples(tx)` (what billing's pricing reads, for every 2.0.1 TransactionEvent through
`live_cost`) for a session with N stored values, on an SQLite file.

    .venv/bin/python bench/bench_samples_read.py --values 500
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/bench_samples_read.py   # A/B another commit

Prints ms of CPU per call and per stored value (process time, so other load on the machine counts less).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from csms.domain.enums import Measurand
from csms.domain.model import MeterSample, SampledValue
from csms.store.db import create_engine, migrate
from csms.store.repositories import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def main(values: int, calls: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(d) / 'bench.db'}")
        await migrate(engine)
        store = Store(engine)
        async with store.session() as s:  # two values per sample: energy register and power
            await s.add_samples("A", 1, "A/1", [MeterSample(T0 + timedelta(seconds=30 * i), (
                SampledValue(Measurand.ENERGY_IMPORT_WH, 10.0 * i), SampledValue(Measurand.POWER_IMPORT_W, 7e3)))
                for i in range(values // 2)])
        for _ in range(10):  # warm-up: statement cache, connection
            async with store.session() as s:
                await s.samples("A/1")
        c0 = time.process_time()
        for _ in range(calls):
            async with store.session() as s:
                rows = await s.samples("A/1")
        per_call_ms = (time.process_time() - c0) / calls * 1e3
        await engine.dispose()
    print(f"{len(rows)} values: {per_call_ms:.2f} ms CPU per samples() call, "
          f"{per_call_ms / len(rows) * 1e3:.1f} us per value")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--values", type=int, default=500, help="stored values of the session")
    p.add_argument("--calls", type=int, default=200)
    a = p.parse_args()
    asyncio.run(main(a.values, a.calls))
