"""Warm site planners under a memory bound: what a planner worker (or the solver thread) keeps between plans.

A site's `SitePlanner` keeps its Pyomo model and HiGHS instance warm, so a re-plan only updates what changed
(a 100-EVSE site: ~0.5 s warm, ~3 s cold). The model's memory grows with EVSEs x slots: ~0.5-0.6 MB per EVSE
at 96 slots (docs/performance.md), so 10,000 EVSEs kept warm would need 5-6 GB. Only
`smart_charging.planner_warm_evses` EVSEs stay warm: the sites planned least recently give theirs up first
and are planned cold the next time. The site being planned always stays warm, whatever its size.

Imports only `csms.scheduling`: the planner worker process uses it.
"""

from __future__ import annotations

from collections.abc import Callable

from csms.scheduling import SitePlanner, SolverOptions


class WarmPlanners:
    def __init__(self, max_evses: int = 0,
                 factory: Callable[[SolverOptions], SitePlanner] = SitePlanner) -> None:
        self.max_evses = max_evses  # 0: no bound
        self._factory = factory
        # Insertion order is recency: the least recently planned site comes first.
        self._planners: dict[str, SitePlanner] = {}
        self._evses: dict[str, int] = {}
        self.dropped = 0  # models given up to the bound (each one a cold plan later)

    def get(self, site_id: str, options: SolverOptions, evses: int) -> SitePlanner:
        """The site's planner, now the most recently used; a new (cold) one if none or other options."""
        planner = self._planners.pop(site_id, None)
        if planner is None or planner.options != options:
            planner = self._factory(options)
        self._planners[site_id] = planner
        self._evses[site_id] = evses
        return planner

    def trim(self) -> bool:
        """Give up the least recently planned sites' models while more than `max_evses` EVSEs are warm (the
        most recent site always stays). True if any was given up: a caller may then collect garbage, Pyomo
        models being full of reference cycles."""
        dropped = False
        while self.max_evses and len(self._planners) > 1 and self.warm_evses > self.max_evses:
            oldest = next(iter(self._planners))
            del self._planners[oldest], self._evses[oldest]
            self.dropped += 1
            dropped = True
        return dropped

    def forget(self, site_id: str) -> None:
        self._planners.pop(site_id, None)
        self._evses.pop(site_id, None)

    @property
    def warm_evses(self) -> int:
        return sum(self._evses.values())

    def __len__(self) -> int:
        return len(self._planners)

    def __contains__(self, site_id: object) -> bool:
        return site_id in self._planners

    def builds(self, site_id: str) -> int:
        p = self._planners.get(site_id)
        return p.builds if p is not None else 0
