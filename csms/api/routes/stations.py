"""Stations and their connectors: real-time availability; management (create, change, remove, accept)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response

from csms.api.auth import Admin, Viewer
from csms.api.deps import ApiContext, Ctx
from csms.api.schemas import ConnectorOut, Limit, Offset, Page, StationIn, StationOut, StationPatch
from csms.config import Config
from csms.domain import commands as cmd
from csms.domain.enums import RegistrationStatus
from csms.domain.errors import Conflict, InvalidRequest, UnknownStation
from csms.domain.passwords import hash_password

router = APIRouter(prefix="/stations", tags=["stations"])
log = logging.getLogger("csms.api")


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
        return Page.of(await s.status_history(station_id, limit + 1, offset), offset, limit)


@router.get("/{station_id}/events", response_model=Page,
            summary="Notices from a station (DataTransfer, firmware, diagnostics, security events, NotifyEvent, external charging limits), newest first (a page)")
async def station_events(station_id: str, ctx: Ctx, _: Viewer, offset: Offset = 0, limit: Limit = 100) -> Page:
    async with ctx.store.session() as s:
        if await s.station(station_id) is None:
            raise UnknownStation(station_id)
        return Page.of(await s.station_events(station_id, limit + 1, offset), offset, limit)


@router.post("", response_model=StationOut, status_code=201, summary="Register a charger")
async def create_station(body: StationIn, ctx: Ctx, _: Admin) -> StationOut:
    site = ctx.cfg.site(body.site_id)
    if site is None:
        raise InvalidRequest(f"site_id: unknown site {body.site_id!r}")
    profile = next(p for p in (body.security_profile, site.security_profile, ctx.cfg.server.security_profile)
                   if p is not None)
    _check_profile(ctx.cfg, profile, has_password=bool(body.password))
    pw = await asyncio.to_thread(hash_password, body.password) if body.password else None
    async with ctx.store.session() as s:
        if await s.station(body.id) is not None:
            raise Conflict(f"station {body.id!r} exists")
        await s.upsert_station(body.id, site_id=body.site_id, password_hash=pw, max_current_a=body.max_current_a,
                               min_current_a=body.min_current_a, phases=body.phases, voltage_v=body.voltage_v,
                               registration="Accepted", security_profile=profile)
    return await get_station(body.id, ctx, _)


@router.patch("/{station_id}", response_model=StationOut, summary="Change a charger (e.g. accept a Pending one)")
async def patch_station(station_id: str, body: StationPatch, ctx: Ctx, _: Admin) -> StationOut:
    fields = body.model_dump(exclude_none=True)
    if "site_id" in fields and ctx.cfg.site(fields["site_id"]) is None:
        raise InvalidRequest(f"site_id: unknown site {fields['site_id']!r}")
    async with ctx.store.session() as s:
        known, old_hash, old_profile, _reg = await s.station_access(station_id)
    if not known:
        raise UnknownStation(station_id)
    if "security_profile" in fields or "password" in fields:
        profile = fields.get("security_profile", old_profile)
        _check_profile(ctx.cfg, ctx.cfg.server.security_profile if profile is None else profile,
                       has_password="password" in fields or old_hash is not None)
    if "password" in fields:
        fields["password_hash"] = await asyncio.to_thread(hash_password, fields.pop("password"))
    if "registration" in fields:
        fields["registration_by_operator"] = True  # config.yaml reloads leave it alone from now on
    async with ctx.store.session() as s:
        if await s.station(station_id) is None:
            raise UnknownStation(station_id)
        if fields:
            await s.upsert_station(station_id, **fields)
    if "registration" in fields:
        _registration_changed(ctx, station_id, RegistrationStatus(fields["registration"]))
    return await get_station(station_id, ctx, _)


_triggers: set[asyncio.Task[object]] = set()


def _registration_changed(ctx: ApiContext, station_id: str, status: RegistrationStatus) -> None:
    """Apply it to the live connection; an accepted charger is asked to boot again now
    (TriggerMessage(BootNotification)) instead of waiting out its Pending interval."""
    if not ctx.gateway.set_registration(station_id, status) or status is not RegistrationStatus.ACCEPTED:
        return

    async def trigger() -> None:
        res = await ctx.gateway.send(station_id, cmd.TriggerMessage("BootNotification"))
        log.info("accepted station=%s trigger BootNotification status=%s detail=%s", station_id, res.status,
                 res.detail)

    task = asyncio.get_running_loop().create_task(trigger())
    _triggers.add(task)
    task.add_done_callback(_triggers.discard)


def _check_profile(cfg: Config, profile: int, *, has_password: bool) -> None:
    """The rules config.yaml follows (csms.config): servable, and 1 and 2 need a password."""
    if profile >= 2 and cfg.server.tls is None:
        raise InvalidRequest(f"security_profile: profile {profile} needs TLS (server.tls in config.yaml)")
    if profile == 3 and cfg.server.tls is not None and cfg.server.tls.ca_file is None:
        raise InvalidRequest("security_profile: profile 3 needs server.tls.ca_file in config.yaml")
    if profile in (1, 2) and not has_password:
        raise InvalidRequest(f"password: security profile {profile} needs a password (or security_profile 3 "
                             f"with a client certificate, or 0 for none at all)")


@router.delete("/{station_id}", status_code=204, response_class=Response)
async def delete_station(station_id: str, ctx: Ctx, _: Admin) -> Response:
    async with ctx.store.session() as s:
        if not await s.delete_station(station_id):
            raise UnknownStation(station_id)
    return Response(status_code=204)
