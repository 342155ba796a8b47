"""What routes need from the running system, pulled from app.state (no globals)."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from csms.config import Config
from csms.domain.clock import Clock
from csms.domain.ports import ChargerGateway
from csms.domain.store_ports import StorePort
from csms.services.stations import StationService
from csms.services.tokens import TokenService


class ApiContext(Protocol):
    cfg: Config
    clock: Clock
    #: Reads only: every write goes through a service (stations, tokens, charging, bookings, billing, smart).
    store: StorePort
    gateway: ChargerGateway
    charging: Any
    stations: StationService
    tokens: TokenService
    smart: Any  # csms.services.smart.SmartChargingService | None
    billing: Any  # csms.services.billing.BillingService | None
    bookings: Any  # csms.services.bookings.BookingService | None
    metrics: Any
    bus: Any  # csms.services.bus.EventBus: the live events stream subscribes to it
    certificates: Any  # csms.services.certificates.CertificateService (its `ca` serves GET /certificates/ca)


def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[ApiContext, Depends(get_ctx)]
