"""create_app(ctx) -> FastAPI. Routes under /api/v1, the dashboard at /, OpenAPI at /docs, metrics at /metrics."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from . import dashboard, errors, metrics
from .body_limit import BodyLimit
from .deps import ApiContext
from .routes import billing, bookings, certificates, commands, live, sessions, sites, stations, tokens


def create_app(ctx: ApiContext, extra_routers: tuple = ()) -> FastAPI:  # type: ignore[type-arg]
    app = FastAPI(
        title="gridcharge CSMS",
        version="1",
        description="Operator and scheduling API of an OCPP 1.6J/2.0.1 central system with smart charging.",
        docs_url=None,  # dashboard.install serves /docs from local files (no CDN)
    )
    app.state.ctx = ctx
    errors.install(app)
    api_cfg = ctx.cfg.api
    if api_cfg.cors_origins:
        # API keys travel in a header, never in cookies: no credentials mode.
        app.add_middleware(CORSMiddleware, allow_origins=api_cfg.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, max_bytes=api_cfg.max_body_bytes)  # added last: runs first
    for r in (stations.router, sessions.router, commands.router, tokens.router, sites.router, bookings.router,
              billing.router, live.router, certificates.router, *extra_routers):
        app.include_router(r, prefix="/api/v1")

    app.include_router(metrics.make_router(ctx))
    dashboard.install(app)

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
