from decimal import Decimal

import pytest

from csms.billing import CurrencyMismatch, Money, minor_units
from csms.billing.money import UnknownCurrency

D = Decimal


@pytest.mark.parametrize(
    "currency, amount, expected",
    [
        ("EUR", "1.005", "1.01"),  # HALF_UP, not banker's rounding
        ("EUR", "1.004", "1.00"),
        ("EUR", "-1.005", "-1.01"),  # half away from zero
        ("USD", "2.675", "2.68"),  # a float would give 2.67
        ("GBP", "0.125", "0.13"),
        ("JPY", "100.5", "101"),
        ("JPY", "100.4", "100"),
        ("KWD", "1.0005", "1.001"),
    ],
)
def test_rounded_to_currency_scale_half_up(currency: str, amount: str, expected: str) -> None:
    rounded = Money(D(amount), currency).rounded()
    assert rounded.amount == D(expected)
    assert str(rounded.amount) == expected  # scale is the currency's, not just the value


@pytest.mark.parametrize("currency, scale", [("EUR", 2), ("USD", 2), ("GBP", 2), ("JPY", 0), ("BHD", 3)])
def test_minor_units(currency: str, scale: int) -> None:
    assert minor_units(currency) == scale


def test_arithmetic_and_comparison() -> None:
    a, b = Money(D("1.10"), "EUR"), Money(D("2.20"), "EUR")
    assert a + b == Money(D("3.30"), "EUR")
    assert b - a == Money(D("1.10"), "EUR")
    assert a * D("3") == Money(D("3.30"), "EUR") == 3 * a
    assert a < b and b > a and a <= a and b >= a
    assert min(a, b) == a
    assert -a == Money(D("-1.10"), "EUR")
    assert sum([a, b], Money.zero("EUR")) == Money(D("3.30"), "EUR")


@pytest.mark.parametrize("op", [lambda x, y: x + y, lambda x, y: x - y, lambda x, y: x < y])
def test_currency_mismatch_raises(op) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CurrencyMismatch):
        op(Money(D(1), "EUR"), Money(D(1), "USD"))


def test_floats_and_unknown_currencies_are_refused() -> None:
    with pytest.raises(TypeError):
        Money(0.1, "EUR")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(D(1), "EUR") * 1.5  # type: ignore[operator]
    with pytest.raises(UnknownCurrency):
        Money(D(1), "XXX")
    assert Money(5, "EUR").amount == D(5)  # type: ignore[arg-type]  # ints are exact, so accepted


def test_to_dict_uses_strings() -> None:
    assert Money(D("1.50"), "EUR").to_dict() == {"amount": "1.50", "currency": "EUR"}
