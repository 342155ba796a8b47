"""Pure billing: money, metering, tariffs (TOU + demand tiers), overstay and invoices.

Standard library only. No I/O, no asyncio, no clock reads: every instant is a parameter and
every datetime must be tz-aware. See docs/billing.md for the model and the rounding rules.
"""

from csms.billing.invoice import Invoice, InvoiceLine, LineKind, OverstayInputs, price_session, running_cost
from csms.billing.metering import (
    Anomaly,
    AnomalyKind,
    IntervalSource,
    MeteredInterval,
    MeteringResult,
    MeterReading,
    meter_session,
)
from csms.billing.money import CurrencyMismatch, Money, minor_units
from csms.billing.overstay import (
    AllottedBy,
    OverstayAssessment,
    OverstayPhase,
    OverstayPolicy,
    OverstayState,
    allotted_end,
    assess_overstay,
    busy_intervals_from_occupancy,
    overstay_fee,
    overstay_minutes,
    overstay_state,
)
from csms.billing.tariff import (
    DemandTier,
    Tariff,
    TariffBook,
    TariffOverride,
    TimeFeeBasis,
    TouWindow,
    prices_per_slot,
)
from csms.billing.units import to_w, to_wh
from csms.billing.utilisation import UtilisationSpan

__all__ = [
    "AllottedBy",
    "Anomaly",
    "AnomalyKind",
    "CurrencyMismatch",
    "DemandTier",
    "IntervalSource",
    "Invoice",
    "InvoiceLine",
    "LineKind",
    "MeterReading",
    "MeteredInterval",
    "MeteringResult",
    "Money",
    "OverstayAssessment",
    "OverstayInputs",
    "OverstayPhase",
    "OverstayPolicy",
    "OverstayState",
    "Tariff",
    "TariffBook",
    "TariffOverride",
    "TimeFeeBasis",
    "TouWindow",
    "UtilisationSpan",
    "allotted_end",
    "assess_overstay",
    "busy_intervals_from_occupancy",
    "meter_session",
    "minor_units",
    "overstay_fee",
    "overstay_minutes",
    "overstay_state",
    "price_session",
    "prices_per_slot",
    "running_cost",
    "to_w",
    "to_wh",
]
