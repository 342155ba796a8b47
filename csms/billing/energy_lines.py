"""Energy lines: metered intervals split by time-of-use period and demand tier, then grouped.

An interval is cut at every TOU edge and every edge of the utilisation series inside it, and its
energy is shared out over the pieces pro rata by time (charging power is unknown inside an
interval, so constant power is the only neutral assumption). Each piece is priced at its
midpoint, which is exact because no edge lies inside a piece.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise

from csms.billing._time import seconds, split_floor
from csms.billing.metering import MeteredInterval
from csms.billing.tariff import BASE_TIER, DemandTier, Tariff
from csms.billing.utilisation import UtilisationView

_KWH_QUANTUM = Decimal("0.001")  # invoice quantities in kWh with 3 decimals = whole Wh


@dataclass(frozen=True, slots=True)
class EnergyPiece:
    start: datetime
    end: datetime
    energy_wh: Decimal
    period: str
    price_per_kwh: Decimal  # TOU price before the tier multiplier
    tier: DemandTier


@dataclass(frozen=True, slots=True)
class EnergyGroup:
    """All energy drawn in one (TOU period, price, demand tier) combination."""

    period: str
    price_per_kwh: Decimal
    tier: DemandTier
    energy_wh: Decimal
    quantity_kwh: Decimal  # energy_wh in kWh, rounded so that the groups add up to the rounded total

    @property
    def unit_price(self) -> Decimal:
        return self.price_per_kwh * self.tier.multiplier

    @property
    def description(self) -> str:
        text = f"Energy, {self.period} period"
        if self.tier != BASE_TIER:
            text += f", {self.tier.name} demand (x{self.tier.multiplier})"
        return text


def split_intervals(
    intervals: Iterable[MeteredInterval], tariff: Tariff, utilisation: UtilisationView
) -> list[EnergyPiece]:
    """Cut each interval with energy at TOU and utilisation edges; pieces sum to the interval exactly."""
    pieces: list[EnergyPiece] = []
    for iv in intervals:
        if iv.energy_wh <= 0:
            continue
        cuts = sorted(
            set(tariff.tou_boundaries(iv.start, iv.end)) | set(utilisation.boundaries(iv.start, iv.end))
        )
        edges = [iv.start, *cuts, iv.end]
        spans = list(pairwise(edges))
        shares = split_floor(iv.energy_wh, [seconds(b - a) for a, b in spans])
        for (a, b), energy in zip(spans, shares, strict=True):
            middle = a + (b - a) / 2
            period, price = tariff.period_at(middle)
            pieces.append(EnergyPiece(a, b, energy, period, price, tariff.tier_for(utilisation.at(middle))))
    return pieces


def group_pieces(pieces: Sequence[EnergyPiece]) -> list[EnergyGroup]:
    """One group per (period, price, tier), in order of first appearance (deterministic)."""
    totals: dict[tuple[str, Decimal, DemandTier], Decimal] = {}
    for p in pieces:
        key = (p.period, p.price_per_kwh, p.tier)
        totals[key] = totals.get(key, Decimal(0)) + p.energy_wh
    groups: list[EnergyGroup] = []
    # Cumulative rounding: each group's kWh is round(running sum) - round(previous running sum), so
    # the printed quantities add up to the rounded session total instead of drifting by 1 Wh.
    running, printed = Decimal(0), Decimal(0)
    for (period, price, tier), energy_wh in totals.items():
        running += energy_wh
        upto = (running / 1000).quantize(_KWH_QUANTUM, rounding=ROUND_HALF_UP)
        groups.append(EnergyGroup(period, price, tier, energy_wh, upto - printed))
        printed = upto
    return groups
