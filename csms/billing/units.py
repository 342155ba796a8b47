"""Unit conversion for meter values, for the OCPP adapters' use.

OCPP 1.6 sends `unit` ("Wh" default, or "kWh"; "W"/"kW" for power). OCPP 2.0.1 adds
`unitOfMeasure.multiplier`, a power of ten applied to the value (value × 10**multiplier).
"""

from __future__ import annotations

from decimal import Decimal

_ENERGY_SCALE = {"wh": 0, "kwh": 3}
_POWER_SCALE = {"w": 0, "kw": 3}


def _parse(value: Decimal | int | float | str) -> Decimal:
    # Meter values arrive from JSON; floats are converted through str() so 0.1 stays 0.1.
    if isinstance(value, bool):
        raise TypeError("meter value must be numeric, not bool")
    result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not result.is_finite():
        raise ValueError(f"meter value must be finite, got {value!r}")
    return result


def _convert(
    value: Decimal | int | float | str, unit: str, multiplier: int, scales: dict[str, int]
) -> Decimal:
    try:
        exponent = scales[unit.strip().lower()]
    except KeyError:
        raise ValueError(f"unsupported unit {unit!r}; expected one of {sorted(scales)}") from None
    return _parse(value).scaleb(exponent + multiplier)


def to_wh(value: Decimal | int | float | str, unit: str = "Wh", multiplier: int = 0) -> Decimal:
    """Energy in Wh from a value in "Wh" or "kWh" (case-insensitive) with a 2.0.1 power-of-ten multiplier."""
    return _convert(value, unit, multiplier, _ENERGY_SCALE)


def to_w(value: Decimal | int | float | str, unit: str = "W", multiplier: int = 0) -> Decimal:
    """Power in W from a value in "W" or "kW" (case-insensitive) with a 2.0.1 power-of-ten multiplier."""
    return _convert(value, unit, multiplier, _POWER_SCALE)
