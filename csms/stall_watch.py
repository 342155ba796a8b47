"""Where the event loop is when it stalls: a watcher thread logs the loop thread's stack.

The loop-lag histogram (`csms_event_loop_lag_seconds`) says *that* the loop could not run; at 10,000 chargers it
lagged up to 2-3 s and nothing said in what. A stall of a single-threaded server is synchronous work on the
loop (a long callback, a big plan's delivery, a garbage collection, a blocking call), and the loop thread's own
stack, read while it stalls, names it. The watcher thread wakes every `every_s`; when the loop has not ticked
for `stall_s`, it logs one WARNING per stall with the loop thread's innermost frames (the CSMS's own first).
It holds the GIL only for that read: a pure-Python stall still lets it in at the interpreter's switch interval.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger("csms.stall")
FRAMES = 12


class StallWatch:
    def __init__(self, stall_s: float = 1.0, every_s: float = 0.1) -> None:
        self.stall_s = stall_s
        self.every_s = every_s
        self.stalls = 0                  # stalls reported (tests, and a hint in the log)
        self._tick = time.monotonic()
        self._loop_thread: int | None = None
        self._stop = threading.Event()
        # A garbage collection shows as a stall in whatever code allocated when it started: say so.
        self._gc_started: tuple[int, float] | None = None   # (generation, monotonic start) while one runs
        self.gc_stalls = 0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if threading.get_ident() != self._loop_thread:
            return
        self._gc_started = (info["generation"], time.monotonic()) if phase == "start" else None

    async def run(self) -> None:
        """Tick on the loop; the watcher thread starts with it and stops when this task ends."""
        self._loop_thread = threading.get_ident()
        watcher = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
        self._tick = time.monotonic()
        watcher.start()
        gc.callbacks.append(self._on_gc)
        try:
            while True:
                self._tick = time.monotonic()
                await asyncio.sleep(self.every_s)
        finally:
            self._stop.set()
            gc.callbacks.remove(self._on_gc)

    def _watch(self) -> None:
        reported = 0.0
        while not self._stop.wait(self.every_s):
            tick = self._tick
            stalled_s = time.monotonic() - tick
            if stalled_s < self.stall_s or tick == reported:
                continue
            reported = tick
            frame = sys._current_frames().get(self._loop_thread or -1)
            if frame is None:
                continue
            self.stalls += 1
            collecting = self._gc_started
            where = ""
            if collecting is not None:
                self.gc_stalls += 1
                # (not gc.get_objects(): a list of every object, built while the loop waits)
                where = (f" a generation-{collecting[0]} garbage collection (running for "
                         f"{time.monotonic() - collecting[1]:.1f} s, {gc.get_freeze_count()} objects frozen), started")
            log.warning("event loop stalled %.1f s so far, in%s:\n%s", stalled_s, where, _stack(frame))


def _stack(frame: object) -> str:
    """The innermost frames, innermost last, as 'file:line function'."""
    entries = traceback.extract_stack(frame)[-FRAMES:]  # type: ignore[arg-type]
    return "\n".join(f"  {e.filename}:{e.lineno} {e.name}" for e in entries)
