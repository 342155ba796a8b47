"""Planning: where plans run, their timeout, the fallback plan, and what each site's last plan was.

Plans run in planner worker processes, each site pinned to one (`planner_process.PlannerProcesses`,
`smart_charging.planner_processes`), or with 0 in one solver thread of this process (`ThreadPlanners`), so
OCPP traffic is never blocked. `SitePlanner.plan` never raises for infeasibility or solver errors; if it
overruns its time limit, errs, or its worker dies, the deterministic fallback (`equal_share`, same hard
limits) is used. `wait_for` only stops *waiting*: an overrunning solve keeps its site's planner busy, so the
next plan of that site waits for it (a planner is not thread-safe); one that overruns by HANG_S more gets
its worker killed and restarted (a thread cannot be: it ends at HiGHS's own limit).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from csms.scheduling import Schedule, SchedulingInput, SolverOptions, equal_share

from ..planner_process import PlannerDied
from .overrides import SiteOverrides
from .snapshot import Snapshot

log = logging.getLogger("csms.smart")
TIMEOUT_MARGIN_S = 2.0  # HiGHS stops itself at its time limit; we stop waiting this much later
HANG_S = 60.0  # an overrun this much longer than that is a hung solver: its worker is restarted
#: A plan's time limit counts from when its worker starts it; it may first wait behind other sites' plans (a
#: worker runs one at a time) this long, then the site gets the fallback plan while it keeps waiting.
QUEUE_WAIT_S = 30.0


class Planners(Protocol):
    """Where site plans run: `planner_process.PlannerProcesses` or `solver_thread.ThreadPlanners`."""

    async def start(self) -> None: ...
    async def ready(self, site_id: str) -> None: ...
    async def ready_all(self) -> None: ...
    def submit(self, site_id: str, options: SolverOptions, inp: SchedulingInput,
               started: asyncio.Future[None] | None = None) -> asyncio.Future[Schedule]: ...
    async def what_if(self, site_id: str, inp: SchedulingInput) -> Schedule: ...
    def restart(self, site_id: str) -> None: ...
    def stats(self) -> list[Any]: ...
    def pids(self) -> list[int]: ...
    async def shutdown(self) -> None: ...


@dataclass
class SiteState:
    site_id: str
    overrides: SiteOverrides
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    solving: asyncio.Future[Any] | None = None  # a plan that overran its timeout (still running)
    last_schedule: Schedule | None = None
    last_snapshot: Snapshot | None = None
    tx_defaults: dict[str, float] = field(default_factory=dict)  # TxDefault per station the last plan chose
    plans: int = 0
    fallbacks: int = 0

    @property
    def external_limit_kw(self) -> float | None:
        return self.overrides.external_limit_kw(self.site_id)

    @property
    def last_input(self) -> SchedulingInput | None:
        return self.last_snapshot.input if self.last_snapshot else None


class Planning:
    def __init__(self, options: SolverOptions, planners: Planners, overrides: SiteOverrides) -> None:
        self.options = options
        self.overrides = overrides
        self.planners = planners
        self.sites: dict[str, SiteState] = {}
        self.solve_times_s: collections.deque[float] = collections.deque(maxlen=10_000)  # for /metrics

    def site(self, site_id: str) -> SiteState:
        st = self.sites.get(site_id)
        if st is None:
            st = self.sites[site_id] = SiteState(site_id, self.overrides)
        return st

    async def wait_overrun(self, st: SiteState) -> None:
        if st.solving is not None and not st.solving.done():
            _, hung = await asyncio.wait({st.solving}, timeout=HANG_S)
            if hung:
                self.planners.restart(st.site_id)
                await asyncio.wait({st.solving})

    async def solve(self, st: SiteState, inp: SchedulingInput, time_limit_s: float | None = None) -> Schedule:
        """Plan ``inp`` for the site; ``time_limit_s``: the site's own solver budget (SiteConfig.planning)."""
        options = self.options if time_limit_s is None or time_limit_s == self.options.time_limit_s \
            else dataclasses.replace(self.options, time_limit_s=time_limit_s)
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            await self.planners.ready(st.site_id)  # a worker's start is not counted against the time limit
            fut = self.planners.submit(st.site_id, options, inp, started)
        except (PlannerDied, TimeoutError) as e:
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(PlannerDied(str(e) or type(e).__name__))
        t0 = time.perf_counter()
        try:
            # The time limit starts with the solve, not with the request: at 10,000 chargers (91 sites on one
            # worker) every plan that fell back had waited behind other sites' plans, none had overrun its own.
            await asyncio.wait({started, fut}, timeout=QUEUE_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
            if not (started.done() or fut.done()):
                raise _Queued()
            schedule = await asyncio.wait_for(asyncio.shield(fut), options.time_limit_s + TIMEOUT_MARGIN_S)
        except (TimeoutError, _Queued) as e:
            st.solving = fut
            fut.add_done_callback(_retrieve)
            schedule = equal_share(inp, reason="queued" if isinstance(e, _Queued) else "timeout")
        except PlannerDied as e:  # logged by the worker's owner; the next plan starts it again
            schedule = equal_share(inp, reason=f"PlannerDied: {e}")
        except Exception as e:  # noqa: BLE001 - plan() only raises for invalid input; never leave a site unplanned
            log.exception("planner error")
            schedule = equal_share(inp, reason=f"{type(e).__name__}: {e}")
        self.solve_times_s.append(time.perf_counter() - t0)
        st.plans += 1
        if schedule.status != "optimal":
            st.fallbacks += 1
            log.warning("fallback plan reason=%s", schedule.reason)
        return schedule


class _Queued(Exception):
    """The plan waited QUEUE_WAIT_S behind other plans without starting."""


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """An overrun plan nobody awaits any more may still fail (its worker killed): not an error at exit."""
    if not fut.cancelled():
        fut.exception()
