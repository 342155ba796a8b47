"""Expected arrivals as flexible demand in the site LP (pure).

Each ``ExpectedArrival`` becomes a session on a virtual EVSE under the site's root circuit: it arrives and
leaves when the group usually does, needs the group's mean energy, and draws at most what its cars could
(``cars`` × the site's mean EVSE power). Its priority is ``EXPECTED_PRIORITY`` (1 % of a driver's), so in
stage 1 (energy) it only takes what no car that is here can use, and in stage 2 the guard on the stage-1 value
keeps its energy in the plan: the peak term then sees the demand still to come, and the plan charges the cars
that are here early enough to leave room for it. The virtual sessions never leave the planner: their rows are
zeroed before the schedule is built.

The number of virtual EVSEs is fixed (``MAX_GROUPS``, unused ones idle) so the model keeps its topology
between plans; a site switches to the larger model once, when its history first yields a forecast.

Not used where the site's limit is the peak's floor (``shave_below_limit`` off and a limit at the root): the
peak term there only counts load above the limit, which the cars to come cannot draw either, and reshaping
the plan around them only displaced least-laxity order (JPL week at 10-15 kW: 0.05 point of energy lost).
"""

from __future__ import annotations

import math
from dataclasses import replace

from csms.scheduling.problem import EvseSpec, SchedulingInput, SessionSpec

MAX_GROUPS = 24
EXPECTED_PRIORITY = 0.01
KEY_PREFIX = "expected#"
#: A virtual EVSE's own rating: its session's ``max_current_a`` is the real bound (it changes per plan,
#: the EVSE rating is topology).
VIRTUAL_MAX_A = 1.0e5


def applies(inp: SchedulingInput) -> bool:
    """Whether the plan uses the forecast: the site shaves below its limit, or its root has no limit."""
    if not inp.expected_arrivals:
        return False
    if inp.weights.shave_below_limit:
        return True
    root = next(c for c in inp.circuits if c.parent is None)
    return not any(math.isfinite(root.power_limit_w(t)) or math.isfinite(root.current_limit_a(t))
                   for t in range(inp.horizon_slots))


def with_expected(inp: SchedulingInput) -> SchedulingInput:
    """``inp`` with ``MAX_GROUPS`` virtual EVSEs on the root circuit and a session on each of the first ones
    for the expected arrivals; ``inp`` itself where the forecast does not apply or the site has no EVSE."""
    if not applies(inp) or not inp.evses:
        return inp
    # The typical EVSE: the most phases any has, the median voltage; a car's power is the mean EVSE's.
    phases = max((tuple(e.phases) for e in inp.evses), key=len)
    voltages = sorted(e.voltage_v for e in inp.evses)
    voltage_v = voltages[len(voltages) // 2]
    car_w = sum(e.max_current_a * e.voltage_v * len(e.phases) for e in inp.evses) / len(inp.evses)
    virtual = tuple(EvseSpec(f"{KEY_PREFIX}{g}", VIRTUAL_MAX_A, 0.0, phases, voltage_v) for g in range(MAX_GROUPS))
    sessions = tuple(
        SessionSpec(f"{KEY_PREFIX}{g}", f"{KEY_PREFIX}{g}", energy_needed_wh=x.energy_wh, departure=x.departure,
                    arrival=x.arrival, max_current_a=max(1e-3, x.cars * car_w / (voltage_v * len(phases))),
                    priority=EXPECTED_PRIORITY)
        for g, x in enumerate(inp.expected_arrivals[:MAX_GROUPS])
        if x.energy_wh > 0 and x.departure > max(x.arrival, inp.start))
    root = next(c for c in inp.circuits if c.parent is None)
    circuits = tuple(replace(c, evse_keys=tuple(c.evse_keys) + tuple(v.evse_key for v in virtual))
                     if c is root else c for c in inp.circuits)
    return replace(inp, circuits=circuits, evses=inp.evses + virtual, sessions=inp.sessions + sessions)


def is_virtual(key: str) -> bool:
    return key.startswith(KEY_PREFIX)
