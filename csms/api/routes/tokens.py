"""Id tokens and driver groups (persisted; config.yaml seeds them); changes through services.tokens."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from csms.api.auth import Admin, Viewer
from csms.api.deps import Ctx
from csms.api.schemas import GroupIn, IdTokenIn, IdTokenOut, Limit, Offset, Page
from csms.domain.enums import AuthorizationStatus
from csms.domain.errors import InvalidRequest
from csms.domain.model import IdToken
from csms.services.tokens import UnknownGroup

router = APIRouter(tags=["id tokens and groups"])


def _out(t: IdToken) -> IdTokenOut:
    return IdTokenOut(value=t.value, type=t.type, status=t.status.value, expires_at=t.expires_at, group=t.group)


@router.get("/id-tokens", response_model=Page, summary="Id tokens (a page of IdTokenOut)")
async def list_tokens(ctx: Ctx, _: Viewer, offset: Offset = 0, limit: Limit = 100) -> Page:
    async with ctx.store.session() as s:
        return Page.slice([_out(t) for t in await s.id_tokens()], offset, limit)


@router.put("/id-tokens/{value}", response_model=IdTokenOut, summary="Create or replace an id token")
async def put_token(value: str, body: IdTokenIn, ctx: Ctx, _: Admin) -> IdTokenOut:
    if body.value is not None and body.value != value:
        raise InvalidRequest("value: must equal the token in the path (or be left out)")
    if not 1 <= len(value) <= 36:
        raise InvalidRequest("value: an id token has 1 to 36 characters")
    t = IdToken(value, body.type, AuthorizationStatus(body.status), body.expires_at, body.group)
    await ctx.tokens.put_token(t)
    return _out(t)


@router.delete("/id-tokens/{value}", status_code=204, response_class=Response)
async def delete_token(value: str, ctx: Ctx, _: Admin) -> Response:
    await ctx.tokens.delete_token(value)
    return Response(status_code=204)


@router.get("/groups", response_model=Page, summary="Driver groups (a page of {name, priority})")
async def list_groups(ctx: Ctx, _: Viewer, offset: Offset = 0, limit: Limit = 100) -> Page:
    async with ctx.store.session() as s:
        rows = [{"name": n, "priority": p} for n, p in sorted((await s.groups()).items())]
    return Page.slice(rows, offset, limit)


@router.put("/groups/{name}")
async def put_group(name: str, body: GroupIn, ctx: Ctx, _: Admin) -> dict[str, object]:
    if body.name != name:
        raise InvalidRequest("name: must equal the group in the path")
    await ctx.tokens.put_group(body.name, body.priority)
    return {"name": body.name, "priority": body.priority}


@router.delete("/groups/{name}", status_code=204, response_class=Response)
async def delete_group(name: str, ctx: Ctx, _: Admin) -> Response:
    try:
        await ctx.tokens.delete_group(name)
    except UnknownGroup:
        raise HTTPException(404, f"unknown group {name!r}") from None
    return Response(status_code=204)
