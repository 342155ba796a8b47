"""Full garbage collections off the message path: the long-lived heap is frozen, swept in full only rarely.

CPython's full (generation-2) collection walks every tracked object, with the event loop stopped. A CSMS
holding 5,000 chargers tracks ~0.8 M objects (connections, transports, per-EVSE state), and each full
collection stalled the loop for 1.4-1.8 s, every 10-20 s while chargers connect (the stall watch saw it:
`csms.stall`); at 10,000 chargers the loop lagged up to 3-4 s, and every message that arrived meanwhile
waited that long. Nearly all of those objects live as long as their charger's connection: scanning them
again and again finds nothing.

So every `freeze_every_s` (10 s) the objects that survived so far are moved to the permanent generation
(`gc.freeze()`, a list splice: no scan). Young collections go on as before and full collections then walk only
what was allocated since the last freeze. Objects in the permanent generation are still freed by reference
counting; only garbage *cycles* among them wait, until the full sweep every `full_every_s`
(`gc.unfreeze()` then `gc.collect()`): one stall of about the old length per hour instead of several a minute.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger("csms.heap")

#: At 10,000 chargers on a loaded machine, 30 s let ~0.3 M new objects pile up: full collections of 0.6-1 s.
FREEZE_EVERY_S = 10.0
FULL_EVERY_S = 3600.0


class HeapKeeper:
    def __init__(self, freeze_every_s: float = FREEZE_EVERY_S, full_every_s: float = FULL_EVERY_S) -> None:
        self.freeze_every_s = freeze_every_s
        self.full_every_s = full_every_s
        self.freezes = 0
        self.full_sweeps = 0

    def freeze(self) -> None:
        gc.freeze()
        self.freezes += 1

    def full_sweep(self) -> int:
        """Unfreeze and collect everything (the cycles among long-lived objects); returns what was collected."""
        t0 = time.perf_counter()
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        found = gc.collect()
        self.full_sweeps += 1
        log.info("full garbage collection: %d objects were frozen, %d unreachable found, %.2f s", frozen, found,
                 time.perf_counter() - t0)
        gc.freeze()
        return found

    async def run(self) -> None:
        next_full = time.monotonic() + self.full_every_s
        try:
            while True:
                await asyncio.sleep(self.freeze_every_s)
                if time.monotonic() >= next_full:
                    self.full_sweep()
                    next_full = time.monotonic() + self.full_every_s
                else:
                    self.freeze()
        finally:
            gc.unfreeze()   # a stopped CSMS (tests start many in one process) leaves the heap as it found it
