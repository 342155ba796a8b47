"""What smart charging needs from other services, as explicit ports (passed to SmartChargingService).

Each is optional: without prices the plan ignores cost, without bookings no booking shapes a session,
without listeners nobody hears about new plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol


class PricePort(Protocol):
    """Energy prices for the optimizer (implemented by billing.BillingService)."""

    def prices_per_slot(self, site_id: str, start: datetime, slot_s: int, n: int) -> tuple[float, ...]:
        """Price per kWh of each of `n` slots of `slot_s` seconds from `start` (a slot-grid boundary)."""
        ...


class BookingPort(Protocol):
    """The open booking a session belongs to (implemented by bookings.OpenBookings)."""

    def booking_for(self, station_id: str, id_token: str) -> tuple[float | None, datetime | None]:
        """(energy wanted in Wh, booking end) of the driver's booking on that station, (None, None) if none."""
        ...


class PlanListener(Protocol):
    """Told about every new plan of a site (implemented by telemetry.MqttTelemetry)."""

    @property
    def wants_plans(self) -> bool:
        """False: ``site_plan`` would drop the plan now (MQTT off), so the view is not built for it."""
        ...

    def site_plan(self, site_id: str, plan: Mapping[str, Any], at: datetime) -> None:
        """`plan` is SmartChargingService.plan_view(site_id). Must not block or raise."""
        ...
