"""create_app(ctx) -> FastAPI. Routes under /api/v1, OpenAPI at /docs, metrics at /metrics."""

from __future__ import annotations

from fastapi import FastAPI

from . import errors, metrics
from .deps import ApiContext
from .routes import billing, bookings, commands, sessions, sites, stations, tokens


def create_app(ctx: ApiContext, extra_routers: tuple = ()) -> FastAPI:  # type: ignore[type-arg]
    app = FastAPI(
        title="gridcharge CSMS",
        version="1",
        description="Operator and scheduling API of an OCPP 1.6J/2.0.1 central system with smart charging.",
    )
    app.state.ctx = ctx
    errors.install(app)
    for r in (stations.router, sessions.router, commands.router, tokens.router, sites.router, bookings.router, billing.router, *extra_routers):
        app.include_router(r, prefix="/api/v1")

    app.include_router(metrics.make_router(ctx))

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
