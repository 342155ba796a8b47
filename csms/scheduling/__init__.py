"""Pure site load-balancing optimizer (Pyomo + HiGHS). No asyncio, no I/O, no clock: times come in as values.

Typical use from a service (in a worker thread)::

    planner = SitePlanner(SolverOptions(time_limit_s=5.0))   # one per site, kept between plans
    schedule = planner.plan(inp)                              # never raises for infeasibility/solver errors
    limit_a = schedule.current_limit_a(session_key, 0)        # what to send to the charger now
"""

from csms.scheduling.check import Violation, check_limits
from csms.scheduling.heuristics import edf, equal_share, llf, uncontrolled
from csms.scheduling.problem import (
    BaseLoad,
    CircuitSpec,
    EvseSpec,
    ExpectedArrival,
    FixedDraw,
    Infeasible,
    InvalidInput,
    ObjectiveWeights,
    PerSlot,
    SchedulingError,
    SchedulingInput,
    SessionSpec,
    SolverOptions,
    SolverUnavailable,
)
from csms.scheduling.result import Schedule, SessionPlan
from csms.scheduling.solve import SitePlanner, plan

__all__ = [
    "BaseLoad", "CircuitSpec", "EvseSpec", "ExpectedArrival", "FixedDraw", "Infeasible", "InvalidInput", "ObjectiveWeights",
    "PerSlot", "SchedulingError", "SchedulingInput", "Schedule", "SessionPlan", "SessionSpec", "SitePlanner",
    "SolverOptions", "SolverUnavailable", "Violation", "check_limits", "edf", "equal_share", "llf", "plan",
    "uncontrolled",
]
