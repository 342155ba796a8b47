"""Site planners under a memory bound: what a planner worker (or the solver thread) keeps between plans.

A site's `SitePlanner` keeps its LP between plans, so a re-plan only updates what changed (a 100-EVSE site:
~50 ms instead of 0.5-1.5 s for a cold build). It keeps it in one of two forms (solve.py):

- **hot**: a live HiGHS instance, ~150 KB per EVSE at 96 slots (the Pyomo model is dropped once loaded);
- **dormant** (`SitePlanner.hibernate`): HiGHS's copy of the LP and the stages' bases only, ~25-35 KB per
  EVSE; the next plan loads them into a new instance (a few ms, then a re-factorisation: ~15 ms at 100 EVSEs).

At most `smart_charging.planner_warm_evses` EVSEs stay hot: the sites planned least recently go dormant
first. At most `smart_charging.planner_dormant_evses` stay dormant: beyond that the least recent are given up
and planned cold next time. The site just planned always stays hot, whatever its size. Before dormant models
existed every model was either hot with Pyomo (~0.5 MB per EVSE) or gone, so at 10,000 chargers most plans
were cold builds (docs/performance.md).

Not thread-safe: the worker's request loop (or the solver thread) is its only user.
Imports only `csms.scheduling`: the planner worker process uses it.
"""

from __future__ import annotations

from collections.abc import Callable

from csms.scheduling import SitePlanner, SolverOptions


class WarmPlanners:
    def __init__(self, max_evses: int = 0, factory: Callable[[SolverOptions], SitePlanner] = SitePlanner,
                 max_dormant_evses: int = 0) -> None:
        self.max_evses = max_evses  # hot, 0: no bound
        self.max_dormant_evses = max_dormant_evses  # dormant, 0: no bound
        self._factory = factory
        # Insertion order is recency: the least recently planned site comes first.
        self._planners: dict[str, SitePlanner] = {}
        self._evses: dict[str, int] = {}
        self.dropped = 0  # models given up to the bounds (each one a cold plan later)
        self.hibernated = 0

    def get(self, site_id: str, options: SolverOptions, evses: int) -> SitePlanner:
        """The site's planner, now the most recently used; a new (cold) one if none or other options."""
        planner = self._planners.pop(site_id, None)
        if planner is None or planner.options != options:
            planner = self._factory(options)
        self._planners[site_id] = planner
        self._evses[site_id] = evses
        return planner

    def trim(self) -> bool:
        """After a plan: the least recently planned hot sites go dormant while more than `max_evses` EVSEs are
        hot, and the least recent dormant ones are given up while more than `max_dormant_evses` are dormant (the
        most recent site always stays hot). True if a model was given up: a caller may then collect garbage."""
        dropped = False
        recent = next(reversed(self._planners), None)
        if self.max_evses:
            for site in list(self._planners):
                if self.warm_evses <= self.max_evses:
                    break
                planner = self._planners[site]
                if site == recent or planner.dormant:
                    continue
                if planner.hibernate():
                    self.hibernated += 1
                else:  # a planner that cannot hibernate (its Pyomo model kept) is given up, as before
                    self._drop(site)
                    dropped = True
        if self.max_dormant_evses:
            for site in list(self._planners):
                if self.dormant_evses <= self.max_dormant_evses:
                    break
                if site != recent and self._planners[site].dormant:
                    self._drop(site)
                    dropped = True
        return dropped

    def _drop(self, site_id: str) -> None:
        del self._planners[site_id], self._evses[site_id]
        self.dropped += 1

    def forget(self, site_id: str) -> None:
        self._planners.pop(site_id, None)
        self._evses.pop(site_id, None)

    @property
    def warm_evses(self) -> int:
        """EVSEs of hot planners (a live HiGHS instance)."""
        return sum(n for s, n in self._evses.items() if not self._planners[s].dormant)

    @property
    def dormant_evses(self) -> int:
        return sum(n for s, n in self._evses.items() if self._planners[s].dormant)

    def __len__(self) -> int:
        return len(self._planners)

    def __contains__(self, site_id: object) -> bool:
        return site_id in self._planners

    def builds(self, site_id: str) -> int:
        p = self._planners.get(site_id)
        return p.builds if p is not None else 0
