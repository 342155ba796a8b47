"""The one owner of a site's limits: whoever needs "what may this site draw" asks here.

Like evcc's ``Circuit.GetMaxPower()``, this is the only answer: the plan (``plan_input``), the API and MQTT
headroom (``site_status``), billing's utilisation and the bookings' what-if all take their limits from a
``SiteLimits``. Pure: the time and the external override come in as values.

The limits, from the site's configuration, the external override and the time:

- power, kW summed over phases: ``grid_limit_kw``; inside a ``limit_schedule`` window (the first listed wins)
  that window's ``limit_kw`` instead; both capped by the external override (REST ``PUT /sites/{id}/limit``,
  MQTT ``limit/set``). ``power_limit_kw_*``; None means no kW limit.
- current, A per phase: ``grid_limit_a`` (``limit_a``). The planner enforces it per phase; whoever speaks in
  watts converts it with the site's voltage and three phases (``limit_a_as_kw``): a balanced load at the
  current limit draws exactly that power. ``limit_kw_*`` is the smaller of the power limit and this.
- circuits: ``max_power_kw`` / ``max_current_a`` of each, static; a charger that no circuit lists hangs from
  the site itself, and a circuit carries what its sub-circuits carry.
- base load: the site's other consumption, ``constant_kw`` plus the ``base_load.windows`` in force.

Over an interval (a plan slot, a billing span) the limit is the **lowest in force at any instant of it**, and
the base load the highest: a limit window that starts in the middle of a slot already caps the whole slot,
so no plan ever runs over it for the rest of that slot. (The rule used to be "the window in force at the
slot's start", which let a slot overrun a window that opened inside it.) Daily windows are
``csms.domain.daily_window.DailyWindow``: ``start == end`` is all day, windows may cross midnight, the site's
``timezone`` is read with DST.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from csms.config import CircuitConfig, LimitWindow, SiteConfig
from csms.scheduling import BaseLoad, CircuitSpec

#: A site's grid connection is three-phase: a per-phase current limit converts to power with 3 phases.
SITE_PHASES = 3


class ExternalLimits(Protocol):
    """Where the external cap on a site (operator, DSO signal) is kept. ``None``: no override."""

    def external_limit_kw(self, site_id: str) -> float | None: ...


class NoExternalLimits:
    def external_limit_kw(self, site_id: str) -> float | None:
        return None


@dataclass(frozen=True, slots=True)
class _SmartChargingLimits:
    smart: Any

    def external_limit_kw(self, site_id: str) -> float | None:
        state = getattr(self.smart, "sites", {}).get(site_id)
        return None if state is None else state.external_limit_kw


def external_limits_of(smart: Any) -> ExternalLimits:
    """The override as the smart-charging service keeps it (``set_site_limit`` stores it per site): the
    service itself when it implements ``ExternalLimits``, else the one adapter that reads its site states."""
    if smart is None:
        return NoExternalLimits()
    if callable(getattr(smart, "external_limit_kw", None)):
        return smart  # type: ignore[no-any-return]
    return _SmartChargingLimits(smart)


def slot_edges(start: datetime, slot_s: float, n: int, first_slot_s: float | None = None) -> list[datetime]:
    """The n + 1 boundaries of n plan slots, as ``SchedulingInput`` lays them out: slot 0 runs
    ``first_slot_s`` (default: a whole slot) from ``start``, every later slot ``slot_s``."""
    first = slot_s if first_slot_s is None else first_slot_s
    return [start] + [start + timedelta(seconds=first + k * slot_s) for k in range(n)]


@dataclass(frozen=True, slots=True)
class CircuitLimits:
    name: str
    parent: str  # the site's id for a circuit directly under the grid connection
    limit_kw: float | None  # max_power_kw
    limit_a: float | None  # max_current_a, per phase
    #: limit_kw and limit_a as power (site voltage, three phases), the smaller; None: no limit.
    effective_limit_kw: float | None
    #: Every charger whose load goes through this circuit (its sub-circuits' chargers included).
    stations: frozenset[str]


@dataclass(frozen=True)
class SiteLimits:
    site: SiteConfig
    external_limit_kw: float | None = None
    zone: ZoneInfo = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", ZoneInfo(self.site.timezone))

    @classmethod
    def of(cls, site: SiteConfig, external: ExternalLimits | None) -> SiteLimits:
        return cls(site, None if external is None else external.external_limit_kw(site.id))

    # --- the site ------------------------------------------------------------------------------
    @property
    def limit_a(self) -> float | None:
        """Per-phase current limit of the grid connection (``grid_limit_a``)."""
        return self.site.grid_limit_a

    @property
    def limit_a_as_kw(self) -> float | None:
        return _a_as_kw(self.limit_a, self.site.voltage_v)

    def power_limit_kw_at(self, at: datetime) -> float | None:
        """The power limit in force at `at`: static or scheduled, capped by the override."""
        local = at.astimezone(self.zone)
        hit = next((w.limit_kw for w in self.site.limit_schedule if w.window.contains(local)), None)
        return _min(self.site.grid_limit_kw if hit is None else hit, self.external_limit_kw)

    def limit_kw_at(self, at: datetime) -> float | None:
        """The site's limit in kW at `at`: the power limit and the current limit as power, the smaller."""
        return _min(self.power_limit_kw_at(at), self.limit_a_as_kw)

    def binding_at(self, at: datetime) -> str | None:
        """Which limit sets ``limit_kw_at(at)``: external, limit_schedule, grid_limit_kw or grid_limit_a."""
        limit = self.limit_kw_at(at)
        if limit is None:
            return None
        if self.external_limit_kw is not None and limit == self.external_limit_kw:
            return "external"
        local = at.astimezone(self.zone)
        scheduled = any(w.window.contains(local) for w in self.site.limit_schedule)
        if scheduled and limit == self.power_limit_kw_at(at):
            return "limit_schedule"
        return "grid_limit_kw" if limit == self.site.grid_limit_kw else "grid_limit_a"

    def changes(self, start: datetime, end: datetime) -> list[datetime]:
        """Instants inside (start, end) at which the power limit may change (limit schedule edges)."""
        return _changes(self.site.limit_schedule, start, end, self.zone)

    def power_limit_kw_during(self, start: datetime, end: datetime) -> float | None:
        """The lowest power limit in force at any instant of [start, end)."""
        return self.power_limit_kw_by_slot([start, end])[0]

    def limit_kw_during(self, start: datetime, end: datetime) -> float | None:
        return _min(self.power_limit_kw_during(start, end), self.limit_a_as_kw)

    def power_limit_kw_by_slot(self, edges: Sequence[datetime]) -> list[float | None]:
        """The lowest power limit in force during each slot [edges[k], edges[k+1])."""
        return _by_slot(edges, self.power_limit_kw_at, self.changes, min)

    def limit_kw_by_slot(self, edges: Sequence[datetime]) -> list[float | None]:
        return [_min(v, self.limit_a_as_kw) for v in self.power_limit_kw_by_slot(edges)]

    def limit_kw_spans(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, float | None]]:
        """[start, end) cut where the limit changes, each piece with ``limit_kw`` (constant within it)."""
        edges = [start, *self.changes(start, end), end]
        return [(a, b, self.limit_kw_at(a)) for a, b in zip(edges, edges[1:], strict=False) if b > a]

    # --- circuits ------------------------------------------------------------------------------
    @cached_property
    def circuit_of(self) -> dict[str, str]:
        """Charger id -> the circuit that lists it (chargers not listed hang from the site)."""
        return {ch: c.name for c in self.site.circuits for ch in c.chargers}

    @cached_property
    def circuits(self) -> tuple[CircuitLimits, ...]:
        return tuple(CircuitLimits(
            name=c.name, parent=c.parent or self.site.id, limit_kw=c.max_power_kw, limit_a=c.max_current_a,
            effective_limit_kw=_min(c.max_power_kw, _a_as_kw(c.max_current_a, self.site.voltage_v)),
            stations=frozenset(self._stations_under(c)),
        ) for c in self.site.circuits)

    def _stations_under(self, circuit: CircuitConfig) -> set[str]:
        out = set(circuit.chargers)
        for child in self.site.circuits:
            if child.parent == circuit.name:
                out |= self._stations_under(child)  # config validation refuses cycles
        return out

    def circuit_specs(self, evses: Iterable[tuple[str, str]], edges: Sequence[datetime],
                      circuit_of: Mapping[str, str | None] | None = None) -> tuple[CircuitSpec, ...]:
        """The planner's site tree over the slots bounded by `edges`: the grid connection (root, named after
        the site, with ``limit_a`` and the per-slot power limit) and every circuit. `evses` are (EVSE key,
        station id) pairs; `circuit_of` (station -> circuit, None: the site) replaces the configured one."""
        where = self.circuit_of if circuit_of is None else circuit_of
        evses = list(evses)
        power = self.power_limit_kw_by_slot(edges)
        root = CircuitSpec(
            name=self.site.id, parent=None, max_current_a=self.limit_a,
            power_limit_w_by_slot=tuple(math.inf if v is None else v * 1000.0 for v in power),
            evse_keys=tuple(k for k, station in evses if where.get(station) is None),
        )
        return (root, *(CircuitSpec(
            name=c.name, parent=c.parent, max_current_a=c.limit_a,
            max_power_w=None if c.limit_kw is None else c.limit_kw * 1000.0,
            evse_keys=tuple(k for k, station in evses if where.get(station) == c.name),
        ) for c in self.circuits))

    # --- base load -----------------------------------------------------------------------------
    def base_load_kw_at(self, at: datetime) -> float:
        local = at.astimezone(self.zone)
        bl = self.site.base_load
        return bl.constant_kw + next((w.limit_kw for w in bl.windows if w.window.contains(local)), 0.0)

    def base_load_kw_by_slot(self, edges: Sequence[datetime]) -> list[float]:
        """The highest base load in force during each slot."""
        changes = lambda a, b: _changes(self.site.base_load.windows, a, b, self.zone)  # noqa: E731
        return [v or 0.0 for v in _by_slot(edges, self.base_load_kw_at, changes, max)]

    def base_loads(self, edges: Sequence[datetime]) -> tuple[BaseLoad, ...]:
        """The planner's base load on the grid connection, balanced over the phases (none if zero)."""
        watts = [v * 1000.0 for v in self.base_load_kw_by_slot(edges)]
        if not any(watts):
            return ()
        return (BaseLoad.balanced_power(self.site.id, tuple(watts), self.site.voltage_v),)


def _changes(windows: list[LimitWindow], start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    return sorted({t for w in windows for t in w.window.changes(start, end, zone)})


def _by_slot(edges: Sequence[datetime], value_at: Callable[[datetime], float | None],
             changes: Callable[[datetime, datetime], list[datetime]],
             pick: Callable[[float, float], float]) -> list[float | None]:
    """`pick` (min or max) of the values in force during each [edges[k], edges[k+1]): the value at the slot's
    start and at every change inside it. None (no limit) counts as infinite."""
    if len(edges) < 2:
        return []
    cuts = changes(edges[0], edges[-1])
    out: list[float | None] = []
    for a, b in zip(edges, edges[1:], strict=False):
        inside = cuts[bisect.bisect_right(cuts, a):bisect.bisect_left(cuts, b)]
        values = [math.inf if v is None else v for v in map(value_at, [a, *inside])]
        best = values[0]
        for v in values[1:]:
            best = pick(best, v)
        out.append(None if math.isinf(best) else best)
    return out


def _a_as_kw(limit_a: float | None, voltage_v: float) -> float | None:
    return None if limit_a is None else limit_a * voltage_v * SITE_PHASES / 1000.0


def _min(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None
