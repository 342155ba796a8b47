"""API keys with roles. admin > operator > viewer; driver keys see only their own id tokens.

With no keys configured the API is open (every caller is admin): the embedded default listens on
127.0.0.1 only, and a warning is logged at startup. Configure keys before exposing it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from csms.config import ApiKeyConfig

RANK = {"driver": 0, "viewer": 1, "operator": 2, "admin": 3}


@dataclass(frozen=True)
class Caller:
    name: str
    role: str
    id_tokens: frozenset[str] = frozenset()

    @property
    def is_driver(self) -> bool:
        return self.role == "driver"


# Declared as security schemes so that the OpenAPI document and /docs ("Authorize") know about them; the
# check itself is ours (auto_error=False), so a missing key gets our 401 in our error shape.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key from config.yaml api.keys")
_bearer = HTTPBearer(auto_error=False, description="the same API key as a Bearer token")


def authenticate(request: Request, x_api_key: Annotated[str | None, Depends(_api_key_header)] = None,
                 bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None) -> Caller:
    keys: dict[str, ApiKeyConfig] = request.app.state.ctx.cfg.api.keys
    if not keys:
        return Caller("anonymous", "admin")
    presented = x_api_key or (bearer.credentials.strip() if bearer is not None else None)
    if presented:
        for name, k in keys.items():
            if hmac.compare_digest(presented.encode(), k.key.encode()):
                return Caller(name, k.role, frozenset(k.id_tokens))
    raise HTTPException(401, "missing or invalid API key (X-API-Key header or Bearer token)",
                        headers={"WWW-Authenticate": "Bearer"})


def require(min_role: str, *, drivers: bool = False):  # type: ignore[no-untyped-def]
    """Dependency: the caller must have at least `min_role` (drivers allowed where `drivers`)."""

    def dep(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if caller.is_driver and drivers:
            return caller
        if RANK[caller.role] < RANK[min_role]:
            raise HTTPException(403, f"this needs the {min_role} role; your key has {caller.role}")
        return caller

    return dep


Viewer = Annotated[Caller, Depends(require("viewer"))]
ViewerOrDriver = Annotated[Caller, Depends(require("viewer", drivers=True))]
Operator = Annotated[Caller, Depends(require("operator"))]
OperatorOrDriver = Annotated[Caller, Depends(require("operator", drivers=True))]
Admin = Annotated[Caller, Depends(require("admin"))]
