"""Bookings: availability, create (409 on overlap or when the grid cannot deliver), list, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, model_validator

from csms.api.auth import Caller, OperatorOrDriver, ViewerOrDriver
from csms.api.deps import ApiContext, Ctx
from csms.api.schemas import MAX_EVSE_ID, MAX_ROW_ID, Limit, Offset, Page, UtcDateTime
from csms.domain.errors import InvalidRequest, UnknownBooking
from csms.domain.model import Booking

router = APIRouter(tags=["bookings"])
BookingId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="the booking id (also the OCPP reservationId)")]


class BookingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: str | None = None
    station_id: str | None = None
    evse_id: int | None = Field(None, ge=1, le=MAX_EVSE_ID)
    id_token: str = Field(min_length=1, max_length=36)
    start: UtcDateTime
    end: UtcDateTime
    energy_kwh: float | None = Field(None, gt=0, le=500, description="energy wanted in the window; the site "
                                     "must be able to deliver it alongside its other commitments")
    accept_partial: bool = Field(False, description="accept the booking with the energy the site can guarantee")

    @model_validator(mode="after")
    def _where(self) -> "BookingIn":
        if self.site_id is None and self.station_id is None:
            raise ValueError("give site_id or station_id")
        if self.evse_id is not None and self.station_id is None:
            raise ValueError("evse_id: give station_id too")
        return self


class BookingOut(BaseModel):
    id: int
    site_id: str
    station_id: str
    evse_id: int
    id_token: str
    start: datetime
    end: datetime
    energy_kwh: float | None
    guaranteed_energy_kwh: float | None
    status: str
    created_at: datetime
    transaction_key: str | None


def _out(b: Booking) -> BookingOut:
    kwh = (lambda v: round(v / 1000, 3) if v is not None else None)
    return BookingOut(id=b.id, site_id=b.site_id, station_id=b.station_id, evse_id=b.evse_id, id_token=b.id_token,
                      start=b.start, end=b.end, energy_kwh=kwh(b.energy_wh),
                      guaranteed_energy_kwh=kwh(b.guaranteed_energy_wh), status=b.status, created_at=b.created_at,
                      transaction_key=b.transaction_key)


def _svc(ctx: ApiContext) -> Any:
    if ctx.bookings is None:
        raise InvalidRequest("bookings are not enabled")
    return ctx.bookings


def _own(caller: Caller, b: Booking) -> None:
    if caller.is_driver and b.id_token not in caller.id_tokens:
        raise UnknownBooking(str(b.id))  # a driver does not learn that other people's bookings exist


@router.get("/sites/{site_id}/availability", response_model=Page,
            summary="Free intervals of each connector of a site in a window (a page, one item per EVSE)")
async def availability(site_id: str, ctx: Ctx, _: ViewerOrDriver, start: UtcDateTime, end: UtcDateTime,
                       offset: Offset = 0, limit: Limit = 100) -> Page:
    return Page.slice(await _svc(ctx).availability(site_id, start, end), offset, limit)


@router.post("/bookings", response_model=BookingOut, status_code=201,
             responses={409: {"description": "overlap, or the grid cannot deliver the energy"}})
async def create_booking(body: BookingIn, ctx: Ctx, caller: OperatorOrDriver) -> BookingOut:
    if caller.is_driver and body.id_token not in caller.id_tokens:
        raise HTTPException(403, f"id_token: {body.id_token!r} is not one of your key's id tokens")
    b = await _svc(ctx).create(
        site_id=body.site_id, station_id=body.station_id, evse_id=body.evse_id, id_token=body.id_token,
        start=body.start, end=body.end, energy_wh=body.energy_kwh * 1000 if body.energy_kwh else None,
        accept_partial=body.accept_partial)
    return _out(b)


@router.get("/bookings", response_model=Page, summary="Bookings by start (a page of BookingOut)")
async def list_bookings(ctx: Ctx, caller: ViewerOrDriver, site_id: str | None = None,
                        status: Literal["Confirmed", "Reserved", "Active", "Completed", "Cancelled", "Expired"]
                        | None = None, station_id: str | None = None,
                        offset: Offset = 0, limit: Limit = 100) -> Page:
    _svc(ctx)
    async with ctx.store.session() as s:
        items = await s.bookings(site_id=site_id, station_id=station_id, statuses=[status] if status else None,
                                 id_tokens=caller.id_tokens if caller.is_driver else None, offset=offset,
                                 limit=limit + 1)
    return Page.of([_out(b) for b in items], offset, limit)


@router.get("/bookings/{booking_id}", response_model=BookingOut)
async def get_booking(booking_id: BookingId, ctx: Ctx, caller: ViewerOrDriver) -> BookingOut:
    b = await _svc(ctx).get(booking_id)
    _own(caller, b)
    return _out(b)


@router.delete("/bookings/{booking_id}", response_model=BookingOut, summary="Cancel (sends CancelReservation)")
async def cancel_booking(booking_id: BookingId, ctx: Ctx, caller: OperatorOrDriver) -> BookingOut:
    _own(caller, await _svc(ctx).get(booking_id))
    return _out(await _svc(ctx).cancel(booking_id))
