"""Small time helpers shared by the billing modules (pure; never reads the clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

_MILLI_WH = Decimal("0.001")
_SECONDS_PER_HOUR = Decimal(3600)


def require_aware(value: datetime, name: str) -> datetime:
    """Return `value` in UTC; naive datetimes are a caller bug, so they raise instead of guessing a zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a tz-aware datetime, got naive {value!r}")
    return value.astimezone(UTC)


def seconds(delta: timedelta) -> Decimal:
    """Exact duration in seconds as a Decimal (timedelta / float would lose microseconds' exactness)."""
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds).scaleb(-6)


def hours(delta: timedelta) -> Decimal:
    return seconds(delta) / _SECONDS_PER_HOUR


def floor_wh(value: Decimal) -> Decimal:
    """Energies are kept at milli-Wh resolution, rounded *down* so a bound is never exceeded by rounding."""
    return value.quantize(_MILLI_WH, rounding=ROUND_DOWN)


def split_floor(total_wh: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split `total_wh` (already at mWh resolution) in proportion to non-negative `weights`.

    Uses cumulative rounding: share_k = floor(cum_k) - floor(cum_{k-1}), so the shares are
    non-negative and add up to exactly `total_wh`; no energy appears or disappears in a split.
    Falls back to equal shares when all weights are zero.
    """
    if not weights:
        return []
    weight_sum = sum(weights, Decimal(0))
    if weight_sum <= 0:
        weights = [Decimal(1)] * len(weights)
        weight_sum = Decimal(len(weights))
    shares: list[Decimal] = []
    cumulative_weight = Decimal(0)
    previous = Decimal(0)
    for i, weight in enumerate(weights):
        cumulative_weight += weight
        # The last share takes the exact remainder so that division noise cannot leak.
        cum = total_wh if i == len(weights) - 1 else floor_wh(total_wh * cumulative_weight / weight_sum)
        shares.append(cum - previous)
        previous = cum
    return shares
