"""Site plans in worker processes (`smart_charging.planner_processes` >= 1), the event loop's side.

Each site is pinned to one worker (the one with the fewest sites when the site is first planned), so its
warm Pyomo model lives there between plans (`planner_worker`). A request is the site's `SchedulingInput`
(frozen dataclasses, pickled: ~0.1 MB for 100 EVSEs) and its `SolverOptions`; the answer is the `Schedule`.
A worker runs one plan at a time, in the order asked, like the planner thread it replaces.

Workers are plain child processes (`python -m csms.services.planner_worker`, the equivalent of
multiprocessing's 'spawn' without re-running the CSMS's `__main__`, which would import the whole CSMS into
each worker) talking over their stdin/stdout pipes, read by the event loop itself: no thread waits on them.
A worker that dies (killed, out of memory, a crash in HiGHS) fails the requests it held, which then get the
fallback plan, and is started again on the next request; its sites are planned cold once. A worker
whose plan overran far beyond its time limit is killed and restarted the same way (`restart`). Shutdown
closes their stdin and waits; the worker also exits on its own when the CSMS dies (see planner_worker).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csms.scheduling import Schedule, SchedulingInput, SolverOptions

from .planner_worker import HEADER, encode

log = logging.getLogger("csms.smart")
START_TIMEOUT_S = 120.0  # import + warm-up plan; minutes only on a machine so loaded nothing works
STOP_TIMEOUT_S = 3.0
#: A worker that answered any request within this long is busy, not hung: `restart` leaves it alone. A plan
#: waits in the worker's queue behind the other sites' plans, so at 10,000 chargers (91 sites, the worker at
#: 100 % through the boot ramp) a site's plan could wait longer than the hang limit without anything being
#: stuck; killing the worker then threw every site's warm model away and made the queue longer still.
BUSY_WITHIN_S = 60.0
#: Where `csms` can be imported from, for a worker started from any working directory.
_ROOT = str(Path(__file__).resolve().parents[2])


class PlannerDied(RuntimeError):
    """The worker holding the request exited before answering (the plan falls back; the worker restarts)."""


@dataclass
class WorkerStats:
    pid: int | None
    rss_bytes: int  # after its last answer
    ready_rss_bytes: int  # after start-up (imports and the warm-up plan): the cost of a worker with no site
    sites: int
    evses: int  # EVSEs of the sites pinned to it (last inputs)
    starts: int
    hot_evses: int = 0  # EVSEs whose models it holds in a live HiGHS instance (warm_planners)
    dormant_evses: int = 0  # ... as an LP and bases only


class _Worker:
    def __init__(self, index: int, warm_evses: int = 0, dormant_evses: int = 0) -> None:
        self.index = index
        self.warm_evses = warm_evses
        self.dormant_evses = dormant_evses
        self.proc: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        # Requests in the order written, each with the future to set when the worker starts it: it answers one
        # at a time, in order, so a request starts when the one before it is answered.
        self._order: collections.deque[tuple[int, asyncio.Future[None] | None]] = collections.deque()
        self._ids = itertools.count(1)
        self._write_lock = asyncio.Lock()
        self.stats = WorkerStats(None, 0, 0, 0, 0, 0)
        self.evses: dict[str, int] = {}
        self.closing = False
        self.last_answer = time.monotonic()  # when the process last answered anything (or started)

    async def _ensure_started(self) -> None:
        if self.closing:  # a plan asked for while the CSMS stops ends quietly, and starts no worker
            raise asyncio.CancelledError()
        if self._ready is None or (self._ready.done() and self.proc is None):
            self._ready = asyncio.get_running_loop().create_future()
            self._reader = asyncio.ensure_future(self._run())
            self._reader.set_name(f"planner-worker-{self.index}")
        await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_S)

    async def _run(self) -> None:
        """Start the process, read its answers until it exits, then fail what it still held."""
        assert self._ready is not None
        ready = self._ready
        env = {**os.environ, "CSMS_PLANNER_PARENT": str(os.getpid()), "CSMS_PLANNER_WARM_EVSES": str(self.warm_evses),
               "CSMS_PLANNER_DORMANT_EVSES": str(self.dormant_evses),
               "PYTHONPATH": os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)}
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "csms.services.planner_worker", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, env=env)
        except Exception as e:  # noqa: BLE001 - cannot start a process: every plan falls back, logged once
            log.error("planner worker %s could not start: %s", self.index, e)
            ready.set_exception(PlannerDied(str(e)))
            ready.exception()  # retrieved: a caller may have given up waiting
            return
        self.proc = proc
        self.last_answer = time.monotonic()
        self.stats.pid, self.stats.starts = proc.pid, self.stats.starts + 1
        assert proc.stdout is not None
        pending = self._pending = {}  # this process's requests: a restarted one starts with its own
        order = self._order = collections.deque()
        try:
            while True:
                head = await proc.stdout.readexactly(HEADER.size)
                (n,) = HEADER.unpack(head)
                req_id, ok, result, stats = pickle.loads(await proc.stdout.readexactly(n))
                self.last_answer = time.monotonic()
                if stats:
                    self.stats.rss_bytes, self.stats.sites = stats["rss_bytes"], stats["sites"]
                    self.stats.hot_evses = stats.get("warm_evses", 0)
                    self.stats.dormant_evses = stats.get("dormant_evses", 0)
                if req_id == 0:
                    self.stats.ready_rss_bytes = stats["rss_bytes"]
                    log.info("planner worker %s ready pid=%s rss_mb=%.0f", self.index, proc.pid,
                             stats["rss_bytes"] / 2**20)
                    ready.set_result(None)
                    continue
                _started_next(order, req_id)
                fut = pending.pop(req_id, None)
                if fut is None or fut.done():
                    continue
                if ok:
                    fut.set_result(result)
                else:
                    fut.set_exception(RuntimeError(result))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # it exited
        finally:
            self.proc = None
            rc = await _reap(proc)
            died = PlannerDied(f"planner worker {self.index} exited rc={rc}")
            if not ready.done():
                ready.set_exception(died)
                ready.exception()
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(died)
            pending.clear()
            order.clear()
            if not self.closing:
                log.warning("planner worker %s (pid %s) exited rc=%s: restarted on the next plan, its sites "
                            "planned cold", self.index, proc.pid, rc)

    async def request(self, op: str, site_id: str | None, options: SolverOptions | None,
                      inp: SchedulingInput | None, started: asyncio.Future[None] | None = None) -> Any:
        """Send one request and wait for its answer; `started` (optional) is set when the worker starts it."""
        await self._ensure_started()
        proc = self.proc
        if proc is None or proc.stdin is None:
            raise PlannerDied(f"planner worker {self.index} is not running")
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        frame = encode((req_id, op, site_id, options, inp))
        try:
            async with self._write_lock:
                proc.stdin.write(frame)
                self._order.append((req_id, started))
                if len(self._order) == 1:
                    _set_started(started)
                await proc.stdin.drain()
        except (ConnectionError, RuntimeError) as e:
            self._pending.pop(req_id, None)
            raise PlannerDied(f"planner worker {self.index}: {e}") from e
        return await fut

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self) -> None:
        self.closing = True
        proc = self.proc
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()  # end of file: it finishes the plan in hand, then exits
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), STOP_TIMEOUT_S)
            except TimeoutError:
                self.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._reader, STOP_TIMEOUT_S)
        for fut in self._pending.values():
            fut.cancel()


def _set_started(started: asyncio.Future[None] | None) -> None:
    if started is not None and not started.done():
        started.set_result(None)


def _started_next(order: collections.deque[tuple[int, asyncio.Future[None] | None]], answered: int) -> None:
    """Request `answered` is done: the next one in `order` starts now."""
    while order:
        req_id, _ = order.popleft()
        if req_id == answered:
            break
    if order:
        _set_started(order[0][1])


async def _reap(proc: asyncio.subprocess.Process) -> int | None:
    try:
        return await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return await proc.wait()


class PlannerProcesses:
    """`n` planner worker processes, each site pinned to one. Started lazily by the first plan (or `start`)."""

    def __init__(self, n: int, warm_evses: int = 0, dormant_evses: int = 0) -> None:
        """Per worker, at most `warm_evses` EVSEs' models kept hot and `dormant_evses` dormant (0: all)."""
        if n < 1:
            raise ValueError("at least one planner process")
        self._workers = [_Worker(i, warm_evses, dormant_evses) for i in range(n)]
        self._site_worker: dict[str, _Worker] = {}
        self._starting: list[asyncio.Future[None]] = []

    def _of(self, site_id: str) -> _Worker:
        w = self._site_worker.get(site_id)
        if w is None:
            counts = {w.index: 0 for w in self._workers}
            for pinned in self._site_worker.values():
                counts[pinned.index] += 1
            w = self._site_worker[site_id] = min(self._workers, key=lambda x: (counts[x.index], x.index))
        return w

    async def start(self) -> None:
        """Start every worker now, in the background (`ready_all` waits for them)."""
        self._starting = [asyncio.ensure_future(w._ensure_started()) for w in self._workers]
        for task in self._starting:
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # logged by the worker itself

    async def ready_all(self) -> None:
        """Wait until every worker started (or failed to: its plans then fall back, and it is tried again)."""
        if not self._starting:
            await self.start()
        await asyncio.wait(self._starting)

    async def ready(self, site_id: str) -> None:
        """Wait until the site's worker runs (start-up is not counted against a plan's time limit)."""
        await self._of(site_id)._ensure_started()

    def submit(self, site_id: str, options: SolverOptions, inp: SchedulingInput,
               started: asyncio.Future[None] | None = None) -> asyncio.Future[Schedule]:
        """The plan's answer; `started` (optional) is set when the worker starts it (after the plans ahead)."""
        w = self._of(site_id)
        w.evses[site_id] = len(inp.evses)
        return asyncio.ensure_future(w.request("plan", site_id, options, inp, started))

    async def what_if(self, site_id: str, inp: SchedulingInput) -> Schedule:
        """A one-shot plan (a fresh model) on the site's worker, in line with its plans."""
        result: Schedule = await self._of(site_id).request("what_if", site_id, None, inp)
        return result

    def restart(self, site_id: str) -> None:
        """Kill the site's worker (a plan hung far beyond its time limit); the next request starts it again.
        Not if it answered anything within `BUSY_WITHIN_S`: the plan is queued behind others, not hung."""
        w = self._of(site_id)
        if time.monotonic() - w.last_answer < BUSY_WITHIN_S:
            log.info("planner worker %s busy, not hung: a plan of site %s waits behind others", w.index, site_id)
            return
        log.warning("planner worker %s killed: a plan of site %s overran its time limit far", w.index, site_id)
        w.kill()

    def stats(self) -> list[WorkerStats]:
        out = []
        for w in self._workers:
            w.stats.evses = sum(n for s, n in w.evses.items() if self._site_worker.get(s) is w)
            out.append(w.stats)
        return out

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc is not None]

    async def shutdown(self) -> None:
        await asyncio.gather(*(w.stop() for w in self._workers))
