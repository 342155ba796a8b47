"""Request-size limit for the REST API: a pure ASGI middleware, so an oversized body is refused before any
route parses or hashes it.

A declared Content-Length above the limit is answered 413 at once, without reading the body. A body
without one (chunked) is counted while the route reads it; past the limit reading raises an HTTPException
413, which FastAPI re-raises from its body parsing and errors.py answers in the one error shape.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException

from .errors import error_body

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        try:
            too_big = declared is not None and int(declared) > self.max_bytes
        except ValueError:
            too_big = False  # the server refuses a malformed Content-Length itself
        if too_big:
            await self._refuse(send)
            return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            msg: Message = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._message())
            return msg

        await self.app(scope, counted_receive, send)

    def _message(self) -> str:
        return f"request body larger than {self.max_bytes} bytes (api.max_body_bytes)"

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(error_body("payload_too_large", self._message()))
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body.encode()})
