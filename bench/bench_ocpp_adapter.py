"""CPU per CALL through the OCPP adapter alone: no sockets, no client process, no database.

    .venv/bin/python bench/bench_ocpp_adapter.py [--frames 5000] [--rounds 7] [--src PATH]

Each round feeds `--frames` pre-built CALL frames to one charger connection (the version's adapter class,
`start()` reading from an in-memory websocket) wired to bench_ocpp.py's minimal in-memory ChargerEvents, and
reports CPU microseconds (process time) per CALL: parse, admission, schema validation of the CALL, mapping,
handler, answer built and validated, answer frame written. The median of the rounds is printed.

`--src PATH` imports `csms` from another checkout of this repository (for example `git archive main | tar -x
-C /tmp/base`), so before/after comparisons run the same script with the same interpreter back to back; the
websocket and the kernel are out of the picture, which is what makes this steadier than bench_ocpp.py on a
busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class MemoryWs:
    """A websocket that delivers `frames` then closes; what is sent is counted, not kept."""

    def __init__(self, frames: list[str]) -> None:
        self._frames = iter(frames)
        self.sent = 0

    async def recv(self) -> str:
        from websockets.exceptions import ConnectionClosedOK
        try:
            return next(self._frames)
        except StopIteration:
            raise ConnectionClosedOK(None, None) from None

    async def send(self, message: str) -> None:
        self.sent += 1

    async def close(self, *a: Any) -> None: ...


async def one_round(cls: type, action: str, payload: dict[str, Any], n: int, events: Any) -> float:
    from csms.domain.clock import SystemClock
    body = json.dumps(payload, separators=(",", ":"))
    frames = [f'[2,"m{i}","{action}",{body}]' for i in range(n)]
    ws = MemoryWs(frames)
    conn = cls("BENCH", ws, events=events, clock=SystemClock(), response_timeout_s=30)
    t0 = time.process_time()
    await conn.start()
    cpu = time.process_time() - t0
    assert ws.sent == n, (ws.sent, n)  # every CALL answered (a CALLERROR would count too: checked below)
    return cpu / n * 1e6


async def main_async(frames: int, rounds: int) -> None:
    import logging

    from bench_ocpp import PAYLOADS, MinimalEvents  # type: ignore[import-not-found]

    from csms.ocpp.v16.handlers import V16ChargePoint
    from csms.ocpp.v201.handlers import V201ChargePoint

    logging.getLogger("csms").setLevel(logging.ERROR)
    classes = {"ocpp1.6": V16ChargePoint, "ocpp2.0.1": V201ChargePoint}
    events = MinimalEvents()
    print(f"{'scenario':<28}{'us/CALL':>9}{'CALLs/cpu-s':>13}   (median of {rounds} rounds of {frames})")
    for kind in ("hb16", "mv16", "mv201"):
        proto, action, payload = PAYLOADS[kind]
        await one_round(classes[proto], action, payload, 200, events)  # warm-up: schemas, caches
        us = statistics.median([await one_round(classes[proto], action, payload, frames, events)
                                for _ in range(rounds)])
        print(f"{proto + ' ' + action:<28}{us:>9.1f}{1e6 / us:>13.0f}", flush=True)
    before = events.samples
    await one_round(V201ChargePoint, *PAYLOADS["mv201"][1:], 10, events)
    assert events.samples > before, "MeterValues did not reach the events port (answered with a CALLERROR?)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--src", type=Path, default=HERE.parent, help="checkout whose csms package is measured")
    a = p.parse_args()
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(a.src.resolve()))
    import csms
    print(f"csms from {Path(csms.__file__).parent}, python {sys.version.split()[0]}")
    asyncio.run(main_async(a.frames, a.rounds))


if __name__ == "__main__":
    main()
