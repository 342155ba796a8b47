"""Billing: invoices (one per session), CSV export, tariffs and overstay policy, revenue over a period.

Amounts are exact decimal strings in the invoice's currency (never floats). Invoices are filtered by
session end (`since <= session_end < until`). Drivers see only their own id tokens' invoices.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from csms.api.auth import Caller, Viewer, ViewerOrDriver
from csms.api.deps import ApiContext, Ctx
from csms.api.schemas import Page
from csms.domain.errors import InvalidRequest, UnknownTransaction

router = APIRouter(tags=["billing"])


def _billing(ctx: ApiContext) -> Any:
    if ctx.billing is None:
        raise InvalidRequest("billing is disabled (billing.enabled: false)")
    return ctx.billing


def _window(since: datetime | None, until: datetime | None) -> None:
    for name, v in (("since", since), ("until", until)):
        if v is not None and v.tzinfo is None:
            raise InvalidRequest(f"{name}: give a UTC offset, e.g. 2026-11-27T00:00:00Z")
    if since and until and since >= until:
        raise InvalidRequest("since: must be before until")


async def _invoices(ctx: ApiContext, caller: Caller, since: datetime | None, until: datetime | None,
                    station_id: str | None, site_id: str | None, offset: int, limit: int | None
                    ) -> list[dict[str, Any]]:
    _window(since, until)
    return await _billing(ctx).list_invoices(  # type: ignore[no-any-return]
        since=since, until=until, station_id=station_id, site_id=site_id,
        id_tokens=caller.id_tokens if caller.is_driver else None, offset=offset, limit=limit)


@router.get("/invoices", response_model=Page,
            summary="Invoices, newest session end first (drivers: their own)")
async def list_invoices(
    ctx: Ctx, caller: ViewerOrDriver, since: datetime | None = None, until: datetime | None = None,
    station_id: str | None = None, site_id: str | None = None,
    offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500),
) -> Page:
    rows = await _invoices(ctx, caller, since, until, station_id, site_id, offset, limit + 1)
    return Page(items=rows[:limit], offset=offset, limit=limit,
                next_offset=offset + limit if len(rows) > limit else None)


CSV_COLUMNS = ["tx_key", "station_id", "transaction_id", "evse_id", "site_id", "id_token", "group",
               "session_start", "session_end", "energy_kwh", "currency", "subtotal", "tax", "total",
               "overstay_minutes", "overstay_fee", "anomalies", "reason"]


@router.get("/invoices/export.csv", summary="CSV export of invoices (same filters)",
            response_class=StreamingResponse)
async def export_invoices(
    ctx: Ctx, caller: ViewerOrDriver, since: datetime | None = None, until: datetime | None = None,
    station_id: str | None = None, site_id: str | None = None,
) -> StreamingResponse:
    rows = await _invoices(ctx, caller, since, until, station_id, site_id, 0, None)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in rows:
        kwh = f"{float(r['energy_wh']) / 1000:.3f}"
        w.writerow([r["tx_key"], r["station_id"], r["transaction_id"], r["evse_id"], r["site_id"] or "",
                    r["id_token"] or "", r["group"] or "", r["session_start"].isoformat(),
                    r["session_end"].isoformat(), kwh, r["currency"], r["subtotal"], r["tax"], r["total"],
                    r["overstay_minutes"], r["overstay_fee"],
                    ";".join(a["kind"] for a in r["anomalies"]), r["reason"]])
    return StreamingResponse(iter([buf.getvalue()]), media_type="text/csv",
                             headers={"Content-Disposition": "attachment; filename=invoices.csv"})


@router.get("/invoices/{station_id}/{transaction_id}", summary="The invoice of one session (404 until final)")
async def get_invoice(station_id: str, transaction_id: str, ctx: Ctx,
                      caller: ViewerOrDriver) -> dict[str, Any]:
    inv = await _billing(ctx).invoice_for(station_id, transaction_id)
    if inv is None or (caller.is_driver and inv["id_token"] not in caller.id_tokens):
        raise UnknownTransaction(f"no invoice for {station_id}/{transaction_id} (yet)")
    return inv  # type: ignore[no-any-return]


@router.get("/tariffs", summary="Tariffs (default and per group, effective values) and the overstay policy")
async def get_tariffs(ctx: Ctx, _: ViewerOrDriver) -> dict[str, Any]:
    return _billing(ctx).tariffs_view()  # type: ignore[no-any-return]


@router.get("/reports/revenue", summary="Energy and revenue of the sessions that ended in [since, until)")
async def revenue(ctx: Ctx, _: Viewer, since: datetime | None = None, until: datetime | None = None,
                  site_id: str | None = None) -> dict[str, Any]:
    _window(since, until)
    return await _billing(ctx).revenue(since, until, site_id)  # type: ignore[no-any-return]


@router.get("/billing/status",
            summary="Exactly-once bookkeeping: ended sessions not invoiced yet, repairs by reconciliation")
async def billing_status(ctx: Ctx, _: Viewer) -> dict[str, Any]:
    return _billing(ctx).status()  # type: ignore[no-any-return]
