"""Money as a value type: a Decimal amount plus an ISO 4217 currency code.

Floats are refused at construction: a bill must be reproducible to the cent, and binary floats
cannot represent 0.10. Amounts keep full precision through arithmetic; `rounded()` is applied
explicitly where the billing rules say a figure is final (see docs/billing.md, "Rounding").
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 minor units for the currencies we expect to meet. An unknown code raises rather than
# silently assuming 2 decimals, because guessing wrong (JPY, KWD) would mis-bill by 100x.
# fmt: off
_MINOR_UNITS: dict[str, int] = {
    "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2, "CZK": 2,
    "DKK": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0,
    "KRW": 0, "KWD": 3, "MXN": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PLN": 2, "RON": 2, "SEK": 2,
    "SGD": 2, "TND": 3, "TRY": 2, "USD": 2, "VND": 0, "ZAR": 2,
}
# fmt: on


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined; billing never converts currencies."""


class UnknownCurrency(ValueError):
    """The currency code has no known minor-unit scale."""


def minor_units(currency: str) -> int:
    """Number of decimals of the currency's minor unit (EUR 2, JPY 0, KWD 3)."""
    try:
        return _MINOR_UNITS[currency]
    except KeyError:
        raise UnknownCurrency(f"no minor-unit scale known for currency {currency!r}") from None


def round_amount(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half away from zero (ROUND_HALF_UP), as on a till receipt."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def to_decimal(value: Decimal | int | str, name: str) -> Decimal:
    """Accept Decimal/int/str; refuse float and bool so no binary rounding error enters a price."""
    if isinstance(value, (bool, float)):
        raise TypeError(f"{name} must be a Decimal, int or str, not {type(value).__name__}")
    result = value if isinstance(value, Decimal) else Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {result}")
    return result


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", to_decimal(self.amount, "Money.amount"))
        minor_units(self.currency)  # validates the code early

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    def rounded(self) -> Money:
        """This amount rounded to the currency's minor unit, ROUND_HALF_UP."""
        return Money(round_amount(self.amount, self.currency), self.currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if not isinstance(factor, (Decimal, int)) or isinstance(factor, bool):
            return NotImplemented
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def to_dict(self) -> dict[str, str]:
        """JSON-safe form; the amount is a string so no consumer parses it into a float."""
        return {"amount": str(self.amount), "currency": self.currency}

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
