"""PURE electric-vehicle model: battery, charging acceptance with a taper, energy need and departure.

No asyncio, no clock reads. Power in W, energy in Wh, time in seconds, SoC as a fraction 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


def watts_from_amps(current_a: float, voltage_v: float, phases: int) -> float:
    """``P = I * U * phases`` (per-phase current, phase-to-neutral voltage)."""
    return current_a * voltage_v * phases


def amps_from_watts(power_w: float, voltage_v: float, phases: int) -> float:
    """Per-phase current for a total power ``power_w`` over ``phases`` phases."""
    if voltage_v <= 0 or phases <= 0:
        return 0.0
    return power_w / (voltage_v * phases)


@dataclass(frozen=True, slots=True)
class EVModel:
    """Static properties of a vehicle type.

    ``max_power_w`` is what the on-board charger accepts; above ``taper_start_soc`` the acceptance falls
    linearly to ``taper_end_power_w`` at 100 % SoC. ``min_current_a`` > 0 models IEC 61851: below that
    per-phase current the EV does not charge at all (0 by default so limits map 1:1 to power).
    """

    name: str = "generic-ev"
    capacity_wh: float = 60_000.0
    max_power_w: float = 11_000.0
    phases: int = 3
    voltage_v: float = 230.0
    taper_start_soc: float = 0.8
    taper_end_power_w: float = 500.0
    min_current_a: float = 0.0

    @property
    def max_current_a(self) -> float:
        return amps_from_watts(self.max_power_w, self.voltage_v, self.phases)

    @property
    def min_current_for_needs_a(self) -> float:
        """Minimum current stated in ISO 15118 charging needs (6 A if no hard minimum is modelled)."""
        return self.min_current_a or 6.0


@dataclass(slots=True)
class EV:
    """A vehicle's mutable charging state.

    ``energy_need_wh`` is the energy the driver wants in this session (``None`` = until full or
    ``target_soc``). ``departure`` is the stated departure time (informational: it is sent to the CSMS as
    charging needs; the driver model decides when to really leave).
    """

    model: EVModel = field(default_factory=EVModel)
    soc: float = 0.2
    energy_need_wh: float | None = None
    target_soc: float = 1.0
    departure: datetime | None = None
    delivered_wh: float = 0.0
    last_power_w: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.soc <= 1.0:
            raise ValueError("soc must be within 0..1")
        if not 0.0 <= self.target_soc <= 1.0:
            raise ValueError("target_soc must be within 0..1")

    @property
    def energy_wh(self) -> float:
        """Energy currently in the battery."""
        return self.soc * self.model.capacity_wh

    @property
    def remaining_need_wh(self) -> float:
        """Energy still wanted in this session (bounded by the room left up to ``target_soc``)."""
        room = max(0.0, (self.target_soc - self.soc) * self.model.capacity_wh)
        if self.energy_need_wh is None:
            return room
        return max(0.0, min(room, self.energy_need_wh - self.delivered_wh))

    @property
    def satisfied(self) -> bool:
        """True when the EV will not draw any more energy (full, target reached or need met)."""
        return self.remaining_need_wh <= 1e-6

    def acceptance_w(self) -> float:
        """Power the EV would draw right now with no external limit (taper included)."""
        if self.satisfied:
            return 0.0
        m = self.model
        if self.soc <= m.taper_start_soc or m.taper_start_soc >= 1.0:
            return m.max_power_w
        frac = (self.soc - m.taper_start_soc) / (1.0 - m.taper_start_soc)
        end = min(m.taper_end_power_w, m.max_power_w)
        return max(end, m.max_power_w - (m.max_power_w - end) * frac)

    def power_for_limit(self, limit_w: float) -> float:
        """Power drawn under an external limit: ``min(limit, EV max, taper)``; 0 below the minimum current."""
        p = min(max(0.0, limit_w), self.acceptance_w())
        m = self.model
        if m.min_current_a > 0 and p < watts_from_amps(m.min_current_a, m.voltage_v, m.phases) - 1e-9:
            return 0.0
        return p

    def step(self, limit_w: float, dt_s: float, *, max_substep_s: float = 60.0) -> float:
        """Charge for ``dt_s`` seconds under ``limit_w``; return the energy delivered (Wh).

        The power at any instant never exceeds ``min(limit_w, max_power_w, taper)``; the step is split into
        sub-steps of at most ``max_substep_s`` so the taper is followed, and it stops exactly at the need.
        ``last_power_w`` is set to the average power of the last sub-step with energy (0 if none).
        """
        if dt_s <= 0:
            return 0.0
        total = 0.0
        left = dt_s
        last = 0.0
        while left > 1e-9:
            h = min(left, max_substep_s)
            p = self.power_for_limit(limit_w)
            if p <= 0:
                last = 0.0
                break
            e = min(p * h / 3600.0, self.remaining_need_wh)
            self.soc = min(1.0, self.soc + e / self.model.capacity_wh)
            self.delivered_wh += e
            total += e
            last = e * 3600.0 / h
            left -= h
        self.last_power_w = last
        return total
