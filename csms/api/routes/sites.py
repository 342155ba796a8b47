"""Sites: current load against the limit, headroom per circuit, the current plan, external limit signals."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from csms.api.auth import Operator, Viewer
from csms.api.deps import ApiContext, Ctx
from csms.api.schemas import Limit, Offset, Page
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
