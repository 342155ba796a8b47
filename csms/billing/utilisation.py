"""Site utilisation as the caller supplies it: a piecewise-constant series or a callable.

Utilisation is the site's load as a fraction of its grid limit (0.0-1.0, may exceed 1.0 briefly).
Billing never measures it; the service passes what its live state or telemetry recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from csms.billing._time import require_aware


def to_fraction(value: Decimal | float | int) -> Decimal:
    # Utilisation comes from telemetry floats; it is only compared with tier bounds, never
    # multiplied into an amount, so converting through str() is exact enough and deterministic.
    if isinstance(value, bool):
        raise TypeError("utilisation must be numeric")
    result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not result.is_finite() or result < 0:
        raise ValueError(f"utilisation must be a finite fraction >= 0, got {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class UtilisationSpan:
    """Utilisation `fraction` of the grid limit over [start, end)."""

    start: datetime
    end: datetime
    fraction: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_aware(self.start, "UtilisationSpan.start"))
        object.__setattr__(self, "end", require_aware(self.end, "UtilisationSpan.end"))
        object.__setattr__(self, "fraction", to_fraction(self.fraction))
        if self.end <= self.start:
            raise ValueError("UtilisationSpan needs start < end")


UtilisationFn = Callable[[datetime], Decimal | float | None]
# A series may also be given as plain (start, end, fraction) tuples.
Utilisation = Sequence[UtilisationSpan] | Sequence[tuple[datetime, datetime, Decimal]] | UtilisationFn


class UtilisationView:
    """Uniform read access over either form. `None` means "unknown at that instant"."""

    def __init__(self, source: Utilisation | None) -> None:
        self._fn: UtilisationFn | None = None
        self._spans: tuple[UtilisationSpan, ...] = ()
        if callable(source):
            self._fn = source
        elif source is not None:
            self._spans = tuple(s if isinstance(s, UtilisationSpan) else UtilisationSpan(*s) for s in source)

    def at(self, at: datetime) -> Decimal | None:
        """Utilisation at an instant; with overlapping spans the first listed wins."""
        if self._fn is not None:
            value = self._fn(at)
            return None if value is None else to_fraction(value)
        for span in self._spans:
            if span.start <= at < span.end:
                return span.fraction
        return None

    def boundaries(self, start: datetime, end: datetime) -> list[datetime]:
        """Instants strictly inside (start, end) where a series may change value (none for a callable)."""
        edges = {t for s in self._spans for t in (s.start, s.end)}
        return sorted(t for t in edges if start < t < end)
