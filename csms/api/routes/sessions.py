"""Charging sessions: live and history, with pagination, time filters and CSV export.

A session is addressed as /sessions/{station_id}/{transaction_id}: its key is "station/transaction".
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from csms.api.auth import Caller, OperatorOrDriver, ViewerOrDriver
from csms.api.deps import ApiContext, Ctx
from csms.api.schemas import MAX_OFFSET, ChargingNeedsIn, Limit, Offset, Page, SessionOut, UtcDateTime, money
from csms.domain.errors import InvalidRequest, UnknownTransaction
from csms.domain.model import Transaction

router = APIRouter(prefix="/sessions", tags=["sessions"])


async def session_out(ctx: ApiContext, t: Transaction) -> SessionOut:
    cost = overstay = currency = None
    if ctx.billing is not None:
        currency = ctx.cfg.billing.currency
        cost = money(await ctx.billing.cost_so_far(t), currency)
        overstay = ctx.billing.overstay_view(t)
    return SessionOut(
        key=t.key, station_id=t.station_id, transaction_id=t.charger_tx_id, evse_id=t.evse.evse_id,
        connector_id=t.evse.connector_id, id_token=t.id_token, group=t.group, started_at=t.started_at,
        ended_at=t.ended_at, active=t.active, energy_wh=t.energy_wh, power_w=t.power_w, soc_pct=t.soc_pct,
        charging_state=t.charging_state.value if t.charging_state else None, stop_reason=t.stop_reason,
        cost_so_far=cost, currency=currency, overstay=overstay,
    )


def _tokens_filter(caller: Caller) -> frozenset[str] | None:
    return caller.id_tokens if caller.is_driver else None


async def _query(ctx: ApiContext, caller: Caller, since: datetime | None, until: datetime | None,
                 station_id: str | None, active: bool | None, offset: int, limit: int) -> list[Transaction]:
    """Sessions newest first, filtered by start time [since, until), station, token scope and state."""
    if since and until and since >= until:
        raise InvalidRequest("since: must be before until")
    async with ctx.store.session() as s:
        if active is None:
            return await s.transactions(since=since, until=until, station_id=station_id,
                                        id_tokens=_tokens_filter(caller), offset=offset, limit=limit)
        if active:
            txs = list(reversed(await s.active_transactions(station_id)))
        else:  # ended ones: the store has no such filter, so page over the whole filtered list
            txs = await s.transactions(since=since, until=until, station_id=station_id,
                                       id_tokens=_tokens_filter(caller), offset=0, limit=1_000_000)
    tokens = _tokens_filter(caller)
    txs = [t for t in txs if t.active == active and (tokens is None or t.id_token in tokens)
           and (since is None or t.started_at >= since) and (until is None or t.started_at < until)]
    txs.sort(key=lambda t: t.started_at, reverse=True)
    return txs[offset:offset + limit]


@router.get("", response_model=Page, summary="Sessions, newest first (drivers see only their own)")
async def list_sessions(
    ctx: Ctx, caller: ViewerOrDriver, since: UtcDateTime | None = None, until: UtcDateTime | None = None,
    station_id: str | None = None, active: bool | None = None,
    offset: int = Query(0, ge=0, le=MAX_OFFSET), limit: int = Query(50, ge=1, le=500),
) -> Page:
    txs = await _query(ctx, caller, since, until, station_id, active, offset, limit + 1)
    items = [await session_out(ctx, t) for t in txs[:limit]]
    return Page(items=items, offset=offset, limit=limit, next_offset=offset + limit if len(txs) > limit else None)


@router.get("/export.csv", summary="CSV export of sessions (same filters)", response_class=StreamingResponse)
async def export_sessions(
    ctx: Ctx, caller: ViewerOrDriver, since: UtcDateTime | None = None, until: UtcDateTime | None = None,
    station_id: str | None = None,
) -> StreamingResponse:
    txs = await _query(ctx, caller, since, until, station_id, None, 0, 100_000)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["key", "station_id", "transaction_id", "evse_id", "id_token", "group", "started_at", "ended_at",
                "energy_wh", "stop_reason"])
    for t in txs:
        w.writerow([t.key, t.station_id, t.charger_tx_id, t.evse.evse_id, t.id_token or "", t.group or "",
                    t.started_at.isoformat(), t.ended_at.isoformat() if t.ended_at else "", f"{t.energy_wh:.1f}",
                    t.stop_reason or ""])
    return StreamingResponse(iter([buf.getvalue()]), media_type="text/csv",
                             headers={"Content-Disposition": "attachment; filename=sessions.csv"})


async def _get(ctx: ApiContext, caller: Caller, station_id: str, transaction_id: str) -> Transaction:
    async with ctx.store.session() as s:
        t = await s.transaction_by_charger_id(station_id, transaction_id)
    if t is None or (caller.is_driver and t.id_token not in caller.id_tokens):
        raise UnknownTransaction(f"{station_id}/{transaction_id}")
    return t


@router.get("/{station_id}/{transaction_id}", response_model=SessionOut)
async def get_session(station_id: str, transaction_id: str, ctx: Ctx, caller: ViewerOrDriver) -> SessionOut:
    return await session_out(ctx, await _get(ctx, caller, station_id, transaction_id))


@router.get("/{station_id}/{transaction_id}/samples", response_model=Page,
            summary="Meter samples of a session (SI units), oldest first (a page, one item per sampled value)")
async def get_samples(station_id: str, transaction_id: str, ctx: Ctx, caller: ViewerOrDriver, offset: Offset = 0,
                      limit: Limit = 1000) -> Page:
    t = await _get(ctx, caller, station_id, transaction_id)
    async with ctx.store.session() as s:
        rows = await s.samples(t.key, offset=offset, limit=limit + 1)
    return Page.of([{"at": v.at, "measurand": v.measurand, "phase": v.phase, "value": v.value,
                     "context": v.context} for v in rows], offset, limit)


@router.put("/{station_id}/{transaction_id}/needs",
            summary="Set a session's charging needs, e.g. 'I leave at 17:30 and need 20 kWh'")
async def set_needs(station_id: str, transaction_id: str, body: ChargingNeedsIn, ctx: Ctx,
                    caller: OperatorOrDriver) -> dict[str, object]:
    t = await _get(ctx, caller, station_id, transaction_id)
    if not t.active:
        raise InvalidRequest("the session has ended")
    if body.departure_time is None and body.energy_kwh is None:
        raise InvalidRequest("give departure_time and/or energy_kwh")
    if body.departure_time is not None and body.departure_time <= ctx.clock.now():
        raise InvalidRequest("departure_time: must be in the future")
    from csms.domain.model import ChargingNeeds

    needs = ChargingNeeds(
        station_id=t.station_id, evse=t.evse, received_at=ctx.clock.now(),
        energy_amount_wh=body.energy_kwh * 1000 if body.energy_kwh is not None else None,
        departure_time=body.departure_time, source="driver",
    )
    await ctx.charging.charging_needs(needs)
    return {"status": "Accepted", "departure_time": body.departure_time, "energy_kwh": body.energy_kwh}
