"""Stations and their connectors: real-time availability; management (create, change, remove, accept) through
services.stations."""

from __future__ import annotations

from fastapi import APIRouter, Response

from csms.api.auth import Admin, Viewer
from csms.api.deps import Ctx
from csms.api.schemas import ConnectorOut, Limit, Offset, Page, StationIn, StationOut, StationPatch
from csms.domain.enums import RegistrationStatus
from csms.domain.errors import UnknownStation
from csms.services.stations import NewStation, StationChange

router = APIRouter(prefix="/stations", tags=["stations"])


def _station_out(st, connectors) -> StationOut:  # type: ignore[no-untyped-def]
    info = st.info
    return StationOut(
        id=st.id, site_id=st.site_id, registration=st.registration.value, online=st.online,
        last_seen=st.last_seen, protocol=st.protocol.value if st.protocol else None,
        vendor=info.vendor if info else None, model=info.model if info else None,
        serial_number=info.serial_number if info else None,
        firmware_version=info.firmware_version if info else None,
        max_current_a=st.max_current_a, phases=st.phases,
        connectors=[ConnectorOut(evse_id=c.evse.evse_id, connector_id=c.evse.connector_id, status=c.status.value,
                                 error_code=c.error_code, at=c.at) for c in connectors],
    )


@router.get("", response_model=Page, summary="Stations with online state and connector status (a page of StationOut)")
async def list_stations(ctx: Ctx, _: Viewer, site_id: str | None = None, offset: Offset = 0,
                        limit: Limit = 100) -> Page:
    async with ctx.store.session() as s:
        stations = await s.stations()
        conns = await s.connectors()
    by_station: dict[str, list] = {}  # type: ignore[type-arg]
    for c in conns:
        by_station.setdefault(c.station_id, []).append(c)
    rows = [st for st in stations if site_id in (None, st.site_id)][offset:offset + limit + 1]
    return Page.of([_station_out(st, by_station.get(st.id, [])) for st in rows], offset, limit)


@router.get("/{station_id}", response_model=StationOut)
async def get_station(station_id: str, ctx: Ctx, _: Viewer) -> StationOut:
    async with ctx.store.session() as s:
        st = await s.station(station_id)
        if st is None:
            raise UnknownStation(station_id)
        return _station_out(st, await s.connectors(station_id))


@router.get("/{station_id}/history", response_model=Page,
            summary="Connector status changes, newest first (a page)")
async def station_history(station_id: str, ctx: Ctx, _: Viewer, offset: Offset = 0, limit: Limit = 100) -> Page:
    async with ctx.store.session() as s:
        if await s.station(station_id) is None:
            raise UnknownStation(station_id)
        rows = await s.status_history(station_id, limit + 1, offset)
    return Page.of([{"evse_id": r.evse_id, "connector_id": r.connector_id, "status": r.status.value,
                     "charging_state": r.charging_state.value if r.charging_state else None,
                     "error_code": r.error_code, "at": r.at} for r in rows], offset, limit)


@router.get("/{station_id}/events", response_model=Page,
            summary="Notices from a station (DataTransfer, firmware, diagnostics, security events, NotifyEvent, external charging limits), newest first (a page)")
async def station_events(station_id: str, ctx: Ctx, _: Viewer, offset: Offset = 0, limit: Limit = 100) -> Page:
    async with ctx.store.session() as s:
        if await s.station(station_id) is None:
            raise UnknownStation(station_id)
        rows = await s.station_events(station_id, limit + 1, offset)
    return Page.of([{"kind": e.kind, "detail": e.detail, "at": e.at} for e in rows], offset, limit)


@router.post("", response_model=StationOut, status_code=201, summary="Register a charger")
async def create_station(body: StationIn, ctx: Ctx, _: Admin) -> StationOut:
    await ctx.stations.create(body.id, NewStation(
        site_id=body.site_id, password=body.password, security_profile=body.security_profile,
        max_current_a=body.max_current_a, min_current_a=body.min_current_a, phases=body.phases,
        voltage_v=body.voltage_v))
    return await get_station(body.id, ctx, _)


@router.patch("/{station_id}", response_model=StationOut, summary="Change a charger (e.g. accept a Pending one)")
async def patch_station(station_id: str, body: StationPatch, ctx: Ctx, _: Admin) -> StationOut:
    await ctx.stations.change(station_id, StationChange(
        site_id=body.site_id, password=body.password, security_profile=body.security_profile,
        registration=RegistrationStatus(body.registration) if body.registration else None,
        max_current_a=body.max_current_a, min_current_a=body.min_current_a, phases=body.phases))
    return await get_station(station_id, ctx, _)


@router.delete("/{station_id}", status_code=204, response_class=Response)
async def delete_station(station_id: str, ctx: Ctx, _: Admin) -> Response:
    await ctx.stations.delete(station_id)
    return Response(status_code=204)
