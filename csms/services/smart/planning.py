"""Planning: the solver thread, its timeout, the fallback plan, and what each site's last plan was.

The solver runs in a worker thread (`SolverThread`, one for the process) so OCPP traffic is never blocked.
`SitePlanner.plan` never raises for infeasibility or solver errors; if it overruns its time limit or errs,
the deterministic fallback (`equal_share`, same hard limits) is used. `wait_for` only stops *waiting*: an
overrunning solve keeps its site's planner busy, so the next plan of that site waits for it (the planner is
not thread-safe).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from csms.scheduling import Schedule, SchedulingInput, SitePlanner, SolverOptions, equal_share

from ..solver_thread import SolverThread
from .overrides import SiteOverrides
from .snapshot import Snapshot

log = logging.getLogger("csms.smart")
TIMEOUT_MARGIN_S = 2.0  # HiGHS stops itself at its time limit; we stop waiting this much later


@dataclass
class SiteState:
    site_id: str
    planner: SitePlanner
    overrides: SiteOverrides
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    solving: asyncio.Future[Any] | None = None  # a worker thread that overran its timeout
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
    def __init__(self, options: SolverOptions, planner_factory: Callable[[SolverOptions], SitePlanner],
                 solver: SolverThread, overrides: SiteOverrides) -> None:
        self.options = options
        self.overrides = overrides
        self._planner_factory = planner_factory
        self.solver = solver
        self.sites: dict[str, SiteState] = {}
        self.solve_times_s: collections.deque[float] = collections.deque(maxlen=10_000)  # for /metrics

    def site(self, site_id: str) -> SiteState:
        st = self.sites.get(site_id)
        if st is None:
            st = self.sites[site_id] = SiteState(site_id, self._planner_factory(self.options), self.overrides)
        return st

    async def wait_overrun(self, st: SiteState) -> None:
        if st.solving is not None and not st.solving.done():
            await asyncio.wait({st.solving})

    async def solve(self, st: SiteState, inp: SchedulingInput) -> Schedule:
        fut = self.solver.submit(st.planner.plan, inp)
        t0 = time.perf_counter()
        try:
            schedule = await asyncio.wait_for(asyncio.shield(fut), self.options.time_limit_s + TIMEOUT_MARGIN_S)
        except TimeoutError:
            st.solving = fut
            schedule = equal_share(inp, reason="timeout")
        except Exception as e:  # noqa: BLE001 - plan() only raises for invalid input; never leave a site unplanned
            log.exception("planner error")
            schedule = equal_share(inp, reason=f"{type(e).__name__}: {e}")
        self.solve_times_s.append(time.perf_counter() - t0)
        st.plans += 1
        if schedule.status != "optimal":
            st.fallbacks += 1
            log.warning("fallback plan reason=%s", schedule.reason)
        return schedule
