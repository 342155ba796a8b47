"""The only module that knows HTTP status codes. Every error body is {"error": {"code", "message"}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from csms.domain.errors import (
    Conflict,
    DomainError,
    InvalidRequest,
    StationOffline,
    UnknownIdToken,
    UnknownStation,
    UnknownTransaction,
)

log = logging.getLogger("csms.api")

TO_HTTP: dict[type[DomainError], tuple[int, str]] = {
    UnknownStation: (404, "unknown_station"),
    UnknownTransaction: (404, "unknown_session"),
    UnknownIdToken: (404, "unknown_id_token"),
    InvalidRequest: (400, "invalid_request"),
    Conflict: (409, "conflict"),
    StationOffline: (409, "station_offline"),
}


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def _status_for(exc: DomainError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in TO_HTTP:
            return TO_HTTP[cls]  # type: ignore[index]
    return 400, "rejected"


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        status, code = _status_for(exc)
        return JSONResponse(error_body(code, str(exc) or code), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            problems.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
        return JSONResponse(error_body("invalid_request", "; ".join(problems)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled API error")
        return JSONResponse(error_body("internal_error", "internal error; see the server log"), status_code=500)
