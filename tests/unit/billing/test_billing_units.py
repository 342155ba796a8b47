from decimal import Decimal

import pytest

from csms.billing import to_w, to_wh

D = Decimal


@pytest.mark.parametrize(
    "value, unit, multiplier, expected_wh",
    [
        ("1234", "Wh", 0, "1234"),
        ("1.234", "kWh", 0, "1234"),
        ("1.234", "KWH", 0, "1234"),  # case-insensitive: some 1.6 firmware sends "KWh"
        (12, "Wh", 3, "12000"),  # 2.0.1 unitOfMeasure.multiplier = 3
        ("1.5", "kWh", -1, "150"),
        (0.1, "kWh", 0, "100"),  # JSON float goes through str(): exactly 100 Wh
        ("7", "kWh", 1, "70000"),
    ],
)
def test_to_wh(value: object, unit: str, multiplier: int, expected_wh: str) -> None:
    assert to_wh(value, unit, multiplier) == D(expected_wh)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value, unit, multiplier, expected_w",
    [("11", "kW", 0, "11000"), ("7400", "W", 0, "7400"), ("74", "W", 2, "7400")],
)
def test_to_w(value: str, unit: str, multiplier: int, expected_w: str) -> None:
    assert to_w(value, unit, multiplier) == D(expected_w)


@pytest.mark.parametrize("unit", ["varh", "A", ""])
def test_unknown_unit_raises(unit: str) -> None:
    with pytest.raises(ValueError):
        to_wh("1", unit)
