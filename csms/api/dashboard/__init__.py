"""The operator dashboard at `/` and the Swagger UI at `/docs`, both served from files in the package.

The dashboard is plain HTML, CSS and JavaScript (no build step, no framework, charts drawn as SVG): it
calls the REST API with the operator's key like any client and listens to `/api/v1/events`. Swagger UI's
assets come from the `fastapi-swagger` wheel instead of a CDN, so `/docs` works offline.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def swagger_assets() -> Path:
    return Path(str(resources.files("fastapi_swagger") / "resources"))


def install(app: FastAPI) -> None:
    """Mount the dashboard (/, /dashboard/*) and an offline /docs. The app is created with docs_url=None."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @router.get("/dashboard")
    async def dashboard() -> RedirectResponse:
        return RedirectResponse("/")

    @router.get("/docs")
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API",
                                   swagger_js_url="/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/swagger/swagger-ui.css",
                                   swagger_favicon_url="/dashboard/favicon.svg")

    app.include_router(router)
    app.mount("/dashboard", StaticFiles(directory=STATIC), name="dashboard")
    app.mount("/swagger", StaticFiles(directory=swagger_assets()), name="swagger")
