"""Sites: current load against the limit, headroom per circuit, the current plan, external limit signals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from csms.api.auth import Operator, Viewer
from csms.api.deps import ApiContext, Ctx
from csms.api.schemas import Limit, Offset, Page, UtcDateTime
from csms.domain.errors import InvalidRequest, UnknownSite
from csms.services.site_status import current_load

router = APIRouter(prefix="/sites", tags=["sites"])


class LimitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit_kw: float | None = Field(..., ge=0, description="new cap in kW; null clears the override")


def _site(ctx: ApiContext, site_id: str) -> Any:
    site = ctx.cfg.site(site_id)
    if site is None:
        raise UnknownSite(site_id)
    return site


async def site_load(ctx: ApiContext, site_id: str) -> dict[str, Any]:
    _site(ctx, site_id)
    now = ctx.clock.now()
    # `at`: the CSMS clock's now (a simulated one in a scenario run), for clients that chart the load
    return {**await current_load(ctx.cfg, ctx.store, ctx.smart, site_id, now=now), "at": now}


@router.get("", response_model=Page, summary="Sites with their current load against the limit (a page)")
async def list_sites(ctx: Ctx, _: Viewer, offset: Offset = 0, limit: Limit = 100) -> Page:
    sites = ctx.cfg.sites[offset:offset + limit + 1]
    return Page.of([await site_load(ctx, s.id) for s in sites], offset, limit)


@router.get("/{site_id}", summary="Current load, limit and headroom of a site and its circuits")
async def get_site(site_id: str, ctx: Ctx, _: Viewer) -> dict[str, Any]:
    return await site_load(ctx, site_id)


#: The window `GET /sites/{id}/load-history` answers when none is given: enough for the chart's past.
LOAD_HISTORY_DEFAULT = timedelta(hours=6)


@router.get("/{site_id}/load-history", response_model=Page,
            summary="Measured site load per bucket (mean power and the limit in force then), oldest first (a page)")
async def load_history(site_id: str, ctx: Ctx, _: Viewer, since: UtcDateTime | None = None,
                       until: UtcDateTime | None = None, offset: Offset = 0, limit: Limit = 500) -> Page:
    """The billing site-load meter's closed buckets (`billing.utilisation_bucket_s`, 5 min by default): the
    same numbers demand tiers are priced from, so a chart opened now has the hours before it. With billing
    off nothing is metered and the page is empty."""
    _site(ctx, site_id)
    until = until or ctx.clock.now()
    since = since or until - LOAD_HISTORY_DEFAULT
    if since >= until:
        raise InvalidRequest("since: must be before until")
    async with ctx.store.session() as s:
        rows = await s.site_load(site_id, since, until, offset=offset, limit=limit + 1)
    return Page.of([{"start": r.start, "end": r.end, "load_w": round(r.mean_power_w, 1),
                     "limit_w": None if r.limit_w is None else round(r.limit_w, 1)} for r in rows],
                   offset, limit)


@router.get("/{site_id}/plan", summary="The current plan: forecast load against the limit, each session's schedule")
async def get_plan(site_id: str, ctx: Ctx, _: Viewer) -> dict[str, Any]:
    _site(ctx, site_id)
    if ctx.smart is None:
        return {"site_id": site_id, "planned": False}
    return ctx.smart.plan_view(site_id)  # type: ignore[no-any-return]


@router.put("/{site_id}/limit", summary="External grid signal: cap the site (kW); null clears. Re-plans at once.")
async def set_limit(site_id: str, body: LimitIn, ctx: Ctx, _: Operator) -> dict[str, Any]:
    _site(ctx, site_id)
    if ctx.smart is None:
        raise InvalidRequest("smart charging is disabled")
    schedule = await ctx.smart.set_site_limit(site_id, body.limit_kw)
    return {"site_id": site_id, "limit_kw": body.limit_kw, "plan_status": schedule.status if schedule else None}
