"""Session invoices: energy by TOU period and demand tier, fees, overstay, tax.

Rounding rule (see docs/billing.md): every line is rounded on its own, to the currency's minor
unit, ROUND_HALF_UP, as amount = round(quantity × unit_price), where the printed quantity is
itself rounded first (kWh to 3 decimals, hours to 4, minutes and sessions whole). So anyone can
recompute each line from what is printed. The subtotal is the sum of the rounded lines; tax is
round(subtotal × tax_rate) once on the subtotal; total = subtotal + tax, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from csms.billing._time import hours, require_aware
from csms.billing.energy_lines import group_pieces, split_intervals
from csms.billing.metering import DEFAULT_TOLERANCE, Anomaly, MeteredInterval, MeterReading, meter_session
from csms.billing.money import CurrencyMismatch, Money
from csms.billing.overstay import BusyIntervals, OverstayAssessment, OverstayPolicy, assess_overstay
from csms.billing.tariff import Tariff, TariffBook, TimeFeeBasis
from csms.billing.utilisation import Utilisation, UtilisationView

_HOURS_QUANTUM = Decimal("0.0001")


class LineKind(StrEnum):
    ENERGY = "energy"
    SESSION_FEE = "session_fee"
    TIME_FEE = "time_fee"
    OVERSTAY = "overstay"


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    kind: LineKind
    description: str
    quantity: Decimal
    unit: str  # "kWh" | "session" | "h" | "min"
    unit_price: Decimal  # excl. tax, unrounded
    amount: Money  # excl. tax, rounded to the currency's minor unit

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "description": self.description,
            "quantity": str(self.quantity),
            "unit": self.unit,
            "unit_price": str(self.unit_price),
            "amount": str(self.amount.amount),
        }


@dataclass(frozen=True, slots=True)
class OverstayInputs:
    """What the service knows about a session's occupancy, for the overstay line.

    `charging_finished_at` None means "derive it": the end of the last metered interval that
    delivered energy (no energy at all: None, so no overstay is billed on an inference from no data).
    With `derive_finished=False` None means "not finished": a caller that observed the session (the
    billing service) says so, since an EV held at 0 A by a charging plan also stops drawing energy and
    that is not the driver's idle time.
    """

    policy: OverstayPolicy
    booking_end: datetime | None = None
    stated_departure: datetime | None = None
    charging_finished_at: datetime | None = None
    busy_intervals: BusyIntervals | None = None
    derive_finished: bool = True
    #: Overstay stops counting here (the connector was made unavailable or faulted after the car was done:
    #: nobody else could have used the bay from then on); None: at the unplug.
    counted_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Invoice:
    currency: str
    lines: tuple[InvoiceLine, ...]
    subtotal: Money
    tax: Money
    total: Money
    tax_rate: Decimal
    energy_wh: Decimal  # metered energy billed, sum of the intervals
    session_start: datetime
    session_end: datetime
    group: str | None
    tariff_name: str
    overstay: OverstayAssessment | None
    anomalies: tuple[Anomaly, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; Decimals are strings so no consumer turns money into floats."""
        return {
            "currency": self.currency,
            "group": self.group,
            "tariff": self.tariff_name,
            "session_start": self.session_start.isoformat(),
            "session_end": self.session_end.isoformat(),
            "energy_wh": str(self.energy_wh),
            "lines": [line.to_dict() for line in self.lines],
            "subtotal": str(self.subtotal.amount),
            "tax_rate": str(self.tax_rate),
            "tax": str(self.tax.amount),
            "total": str(self.total.amount),
            "overstay": None if self.overstay is None else self.overstay.to_dict(),
            "anomalies": [a.to_dict() for a in self.anomalies],
        }


def price_session(
    intervals: Sequence[MeteredInterval],
    tariff_book: TariffBook,
    group: str | None,
    *,
    session_start: datetime,
    session_end: datetime,
    utilisation: Utilisation | None = None,
    overstay: OverstayInputs | None = None,
    anomalies: Iterable[Anomaly] = (),
) -> Invoice:
    """Price one session. Deterministic: same inputs, same invoice, to the last digit.

    `session_start`/`session_end` are plug-in and unplug (or "now" for a live estimate); the
    overstay is assessed as if the car was unplugged at `session_end`. `utilisation` is the
    site's utilisation (series or callable); unknown utilisation bills the base tier.
    """
    start = require_aware(session_start, "session_start")
    end = require_aware(session_end, "session_end")
    if end < start:
        raise ValueError("session_end is before session_start")
    tariff = tariff_book.for_group(group)
    lines = _energy_lines(intervals, tariff, UtilisationView(utilisation))
    lines += _fee_lines(tariff, intervals, end - start)
    assessment = None
    if overstay is not None:
        until = end if overstay.counted_until is None else max(session_start, min(end, overstay.counted_until))
        assessment = _assess(overstay, group, intervals, until)
        lines += _overstay_lines(assessment, tariff.currency)
    subtotal = sum((line.amount for line in lines), Money.zero(tariff.currency)).rounded()
    tax = (subtotal * tariff.tax_rate).rounded()
    return Invoice(
        currency=tariff.currency,
        lines=tuple(lines),
        subtotal=subtotal,
        tax=tax,
        total=subtotal + tax,
        tax_rate=tariff.tax_rate,
        energy_wh=sum((iv.energy_wh for iv in intervals), Decimal(0)),
        session_start=start,
        session_end=end,
        group=group,
        tariff_name=tariff.name,
        overstay=assessment,
        anomalies=tuple(anomalies),
    )


def running_cost(
    readings: Iterable[MeterReading],
    *,
    max_power_w: Decimal,
    tariff_book: TariffBook,
    group: str | None,
    session_start: datetime,
    now: datetime,
    utilisation: Utilisation | None = None,
    overstay: OverstayInputs | None = None,
    tolerance: Decimal = DEFAULT_TOLERANCE,
) -> Invoice:
    """Cost so far of a live session: meter the readings received until `now` and price them.

    Exactly the final computation with session_end = now, so the live figure converges on the
    bill. Calling it with now = unplug time and all readings gives the final invoice.
    """
    metered = meter_session(readings, max_power_w=max_power_w, tolerance=tolerance)
    return price_session(
        metered.intervals,
        tariff_book,
        group,
        session_start=session_start,
        session_end=now,
        utilisation=utilisation,
        overstay=overstay,
        anomalies=metered.anomalies,
    )


def _line(
    kind: LineKind, description: str, quantity: Decimal, unit: str, unit_price: Decimal, currency: str
) -> InvoiceLine:
    amount = Money(quantity * unit_price, currency).rounded()
    return InvoiceLine(kind, description, quantity, unit, unit_price, amount)


def _energy_lines(
    intervals: Sequence[MeteredInterval], tariff: Tariff, view: UtilisationView
) -> list[InvoiceLine]:
    groups = group_pieces(split_intervals(intervals, tariff, view))
    return [
        _line(LineKind.ENERGY, g.description, g.quantity_kwh, "kWh", g.unit_price, tariff.currency)
        for g in groups
    ]


def _fee_lines(
    tariff: Tariff, intervals: Sequence[MeteredInterval], connected: timedelta
) -> list[InvoiceLine]:
    lines: list[InvoiceLine] = []
    if tariff.session_fee > 0:
        lines.append(
            _line(
                LineKind.SESSION_FEE,
                "Session fee",
                Decimal(1),
                "session",
                tariff.session_fee,
                tariff.currency,
            )
        )
    if tariff.time_fee_per_hour > 0:
        if tariff.time_fee_basis is TimeFeeBasis.CONNECTED:
            duration, label = connected, "Time connected"
        else:
            duration = sum((iv.end - iv.start for iv in intervals if iv.energy_wh > 0), timedelta(0))
            label = "Time charging"
        quantity = hours(duration).quantize(_HOURS_QUANTUM, rounding=ROUND_HALF_UP)
        if quantity > 0:
            lines.append(
                _line(LineKind.TIME_FEE, label, quantity, "h", tariff.time_fee_per_hour, tariff.currency)
            )
    return lines


def _assess(
    inputs: OverstayInputs, group: str | None, intervals: Sequence[MeteredInterval], unplugged: datetime
) -> OverstayAssessment:
    finished = inputs.charging_finished_at
    if finished is None and inputs.derive_finished:
        finished = max((iv.end for iv in intervals if iv.energy_wh > 0), default=None)
    return assess_overstay(
        inputs.policy,
        group=group,
        unplugged_at=unplugged,
        booking_end=inputs.booking_end,
        stated_departure=inputs.stated_departure,
        charging_finished_at=finished,
        busy_intervals=inputs.busy_intervals,
    )


def _overstay_lines(a: OverstayAssessment, currency: str) -> list[InvoiceLine]:
    if a.minutes <= 0:
        return []
    if a.fee.currency != currency:
        raise CurrencyMismatch(f"overstay fee in {a.fee.currency}, tariff in {currency}")
    if a.exempt:
        description, unit_price = "Overstay (exempt)", Decimal(0)
    else:
        description, unit_price = "Overstay", a.fee_per_minute.amount
        if a.capped:
            description += f" (capped at {a.fee.amount} {currency})"
    # The fee was already capped and rounded by the overstay policy; keep it as the amount.
    return [InvoiceLine(LineKind.OVERSTAY, description, Decimal(a.minutes), "min", unit_price, a.fee)]
