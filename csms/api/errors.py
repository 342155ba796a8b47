"""The only module that knows HTTP status codes. Every error body is {"error": {"code", "message"}}."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from csms.domain.errors import (
    Conflict,
    DomainError,
    InvalidRequest,
    NotConfigured,
    StationOffline,
    StoreUnavailable,
    UnknownBooking,
    UnknownIdToken,
    UnknownSite,
    UnknownStation,
    UnknownTransaction,
)

log = logging.getLogger("csms.api")

#: exception -> (HTTP status, error code, what it names: the message of a bare id becomes "unknown <noun> 'id'")
TO_HTTP: dict[type[DomainError], tuple[int, str, str | None]] = {
    UnknownStation: (404, "unknown_station", "station"),
    UnknownTransaction: (404, "unknown_session", "session"),
    UnknownIdToken: (404, "unknown_id_token", "id token"),
    UnknownSite: (404, "unknown_site", "site"),
    UnknownBooking: (404, "unknown_booking", "booking"),
    InvalidRequest: (400, "invalid_request", None),
    Conflict: (409, "conflict", None),
    StationOffline: (409, "station_offline", None),
    StoreUnavailable: (503, "database_unavailable", None),
    NotConfigured: (501, "not_configured", None),
}

_BARE_ID = re.compile(r"^\S+$")


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def _status_for(exc: DomainError) -> tuple[int, str, str | None]:
    for cls in type(exc).__mro__:
        if cls in TO_HTTP:
            return TO_HTTP[cls]  # type: ignore[index]
    return 400, "rejected", None


def domain_message(exc: DomainError) -> str:
    _, code, noun = _status_for(exc)
    msg = str(exc)
    if noun is not None and _BARE_ID.match(msg):
        return f"unknown {noun} {msg!r}"  # services raise UnknownStation(station_id): say what is unknown
    return msg or code


def _loc(parts: tuple[object, ...]) -> str:
    """('body', 'start') -> 'start'; ('query', 'limit') -> 'limit (query)'; ('body', 'items', 0) -> 'items[0]'."""
    where = parts[0] if parts and parts[0] in ("query", "path", "header", "cookie") else None
    out = ""
    for p in parts[1:] if parts and parts[0] in ("body", "query", "path", "header", "cookie") else parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    if where and out:
        out += f" ({where})"
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        status, code, _noun = _status_for(exc)
        return JSONResponse(error_body(code, domain_message(exc)), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors():
            loc = _loc(tuple(e.get("loc", ())))
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            if e.get("type") == "json_invalid":
                msg = f"the body is not valid JSON ({e.get('ctx', {}).get('error', 'parse error')})"
                loc = ""
            problems.append(f"{loc}: {msg}" if loc else msg)
        return JSONResponse(error_body("invalid_request", "; ".join(problems) or "invalid request"),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code, "error")
        message = str(exc.detail)
        if message == "There was an error parsing the body":  # FastAPI's words for an undecodable body
            message = "the request body could not be parsed: send JSON (Content-Type: application/json)"
        return JSONResponse(error_body(code, message), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled API error")
        return JSONResponse(error_body("internal_error", "internal error; see the server log"), status_code=500)
