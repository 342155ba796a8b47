"""The planner worker process: `python -m csms.services.planner_worker`, started by `planner_process`.

Why a process: a plan spends most of its time in Pyomo's pure-Python model updates, which hold the GIL, so
a planner thread stalled the event loop that answers chargers (docs/performance.md: half of the CPU with
smart charging on, loop lag up to seconds). Here it holds only this process's GIL.

What lives here: one `SitePlanner` per site pinned to this worker (its LP, hot in a HiGHS instance or dormant,
warm-started from its last bases), within `smart_charging.planner_warm_evses` and `planner_dormant_evses`
(see warm_planners). Nothing else is kept: the peak floor and every other input come with each request
(`SchedulingInput`), so a restarted worker only loses warmth (its first plan per site is cold).

Wire format (both ways): 4-byte big-endian length, then a pickle. Requests are `(id, op, site_id, options,
input)`, answers `(id, ok, schedule or error text, stats)`. The parent is the only writer of our stdin, and
this module imports only `csms.scheduling` (no CSMS, no event loop), so the pickles carry only the
scheduling library's frozen dataclasses.

The worker never outlives the CSMS: end of file on stdin (the parent closed it, or died: kill -9 closes its
descriptors) ends the loop, and a watchdog thread exits at once when the parent pid changes, even in the
middle of a solve.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
import time
from typing import IO, Any

HEADER = struct.Struct(">I")
PARENT_POLL_S = 0.5


def read_frame(stream: IO[bytes]) -> Any | None:
    """One message, or None at end of file."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (n,) = HEADER.unpack(head)
    body = stream.read(n)
    if len(body) < n:
        return None
    return pickle.loads(body)


def encode(msg: object) -> bytes:
    body = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def rss_bytes() -> int:
    """Resident set size now (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _watch_parent(parent_pid: int) -> None:
    """Exit as soon as the parent is gone (re-parented: getppid changes). A solve in progress could take
    the solver's time limit to notice end of file on stdin; this does not wait for it."""
    while True:
        time.sleep(PARENT_POLL_S)
        if os.getppid() != parent_pid:
            os._exit(0)


def _protocol_streams() -> tuple[IO[bytes], IO[bytes]]:
    """Our stdin, and a private copy of stdout for answers; fd 1 then points at stderr, so whatever a
    library prints (HiGHS banners, Pyomo warnings) can never corrupt a frame."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    return sys.stdin.buffer, out


def _warm_up() -> None:
    """Import and run everything a plan needs once (Pyomo, HiGHS, numpy) before saying ready: the first
    real plan then costs what a plan costs, and the parent's timeout never counts our start."""
    from datetime import datetime, timezone

    from csms.scheduling import CircuitSpec, EvseSpec, SchedulingInput, SessionSpec, plan

    site = CircuitSpec("site", max_current_a=32.0, evse_keys=("e",))
    plan(SchedulingInput(start=datetime.now(timezone.utc), circuits=(site,), evses=(EvseSpec("e", 16.0),),
                         sessions=(SessionSpec("s", "e", 1000.0),), horizon_slots=4))


def serve(inp: IO[bytes], out: IO[bytes], warm_evses: int = 0, dormant_evses: int = 0) -> None:
    """`warm_evses` / `dormant_evses`: at most that many EVSEs' models kept hot / dormant (0: all; see
    warm_planners)."""
    import gc

    from csms.scheduling import plan  # after the streams are safe: imports may print

    from .warm_planners import WarmPlanners

    try:
        _warm_up()
    except Exception as e:  # noqa: BLE001 - not fatal: each plan then meets the same problem and falls back
        print(f"planner worker: warm-up plan failed: {type(e).__name__}: {e}", file=sys.stderr)
    out.write(encode((0, True, "ready", {"rss_bytes": rss_bytes(), "sites": 0, "builds": 0})))
    planners = WarmPlanners(warm_evses, max_dormant_evses=dormant_evses)
    while (msg := read_frame(inp)) is not None:
        req_id, op, site_id, options, payload = msg
        collect = False
        try:
            if op == "plan":
                planner = planners.get(site_id, options, len(payload.evses))
                builds = planner.builds
                result: Any = planner.plan(payload)
                # Bound what stays warm; after the answer (below), collect the Pyomo model a cold plan built
                # and dropped (full of reference cycles), so that the next build reuses its memory.
                collect = planners.trim() or planner.builds != builds
            elif op == "what_if":
                result = plan(payload, options)  # a fresh model: a what-if never disturbs the site's warm one
                collect = True
            elif op == "forget":
                planners.forget(site_id)
                result = None
            else:
                raise ValueError(f"unknown op {op!r}")
            stats = {"rss_bytes": rss_bytes(), "sites": len(planners), "warm_evses": planners.warm_evses,
                     "dormant_evses": planners.dormant_evses, "builds": planners.builds(site_id) if op == "plan" else 0}
            answer: tuple[Any, ...] = (req_id, True, result, stats)
        except Exception as e:  # noqa: BLE001 - InvalidInput or a bug: the parent falls back and logs it
            answer = (req_id, False, f"{type(e).__name__}: {e}", {})
        out.write(encode(answer))
        if collect:
            gc.collect()


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the CSMS stops us by closing our stdin instead,
    # and a KeyboardInterrupt traceback here would be an error string in every scenario log.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = int(os.environ.get("CSMS_PLANNER_PARENT", os.getppid()))
    if os.getppid() != parent:
        return
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    inp, out = _protocol_streams()
    serve(inp, out, int(os.environ.get("CSMS_PLANNER_WARM_EVSES", "0")),
          int(os.environ.get("CSMS_PLANNER_DORMANT_EVSES", "0")))


if __name__ == "__main__":
    main()
