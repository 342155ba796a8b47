"""Who am I (the dashboard shows what the key's role may do) and live change notices (server-sent events).

`GET /events` streams `text/event-stream`: a `change` event names what changed (event types and stations),
coalesced over `COALESCE_S` so a fleet's meter values make a few events a second, not hundreds; a `tick`
every `TICK_S` without changes keeps proxies from closing the stream and tells the page to refresh the
measured load. The page re-reads what changed through the ordinary endpoints: the stream carries no data a
role may not see, and the caller's key is checked once, when the stream opens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from csms.api.auth import RANK, Caller, ViewerOrDriver, authenticate
from csms.api.deps import Ctx

router = APIRouter(tags=["live"])

COALESCE_S = 0.5
TICK_S = 5.0
QUEUE_MAX = 10_000  # a stalled reader loses events (it refreshes everything on the next one), never memory


@router.get("/me", summary="The caller: key name, role, id tokens, and the roles it may act as")
async def me(caller: Annotated[Caller, Depends(authenticate)]) -> dict[str, Any]:
    return {"name": caller.name, "role": caller.role, "id_tokens": sorted(caller.id_tokens),
            "may": [r for r, rank in RANK.items() if r != "driver" and rank <= RANK.get(caller.role, 0)]}


def describe(event: object) -> tuple[str, str | None]:
    """(event type, station id or None) of a domain event."""
    station = getattr(event, "station_id", None)
    if station is None:
        tx = getattr(event, "transaction", None) or getattr(event, "needs", None)
        station = getattr(tx, "station_id", None)
    return type(event).__name__, station


async def _stream(request: Request, queue: asyncio.Queue[tuple[str, str | None]]) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    while not getattr(request.app.state, "stopping", False):
        try:
            first = await asyncio.wait_for(queue.get(), TICK_S)
        except TimeoutError:
            if await request.is_disconnected():
                return
            yield "event: tick\ndata: {}\n\n"
            continue
        await asyncio.sleep(COALESCE_S)  # gather the burst this event belongs to
        items = [first]
        while not queue.empty():
            items.append(queue.get_nowait())
        body = {"types": sorted({t for t, _ in items}), "stations": sorted({s for _, s in items if s})}
        yield f"event: change\ndata: {json.dumps(body)}\n\n"


@router.get("/events", summary="Server-sent events: what changed (stations, sessions, bookings), for live pages",
            response_class=StreamingResponse)
async def events(request: Request, ctx: Ctx, _: ViewerOrDriver) -> StreamingResponse:
    queue: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue(QUEUE_MAX)

    def on_event(event: object) -> None:
        if not queue.full():
            queue.put_nowait(describe(event))

    unsubscribe = ctx.bus.subscribe(on_event)

    async def body() -> AsyncIterator[str]:
        try:
            async for chunk in _stream(request, queue):
                yield chunk
        finally:
            unsubscribe()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
