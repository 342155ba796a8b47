"""HTTP Basic auth at the websocket handshake (OCPP security profile 1).

The username must equal the charger identity from the URL; the password is checked against the
station's salted PBKDF2 hash (csms.domain.passwords, constant-time compare). PBKDF2 costs ~50 ms, so:

* the check runs in a worker thread, never in the event loop;
* a successful (identity, hash) -> password check is remembered as an HMAC of the password under a
  per-process random key, so a reconnect storm of known-good chargers costs one HMAC each. A changed
  hash (new password) is a different cache key; wrong passwords are never cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections import OrderedDict

from websockets.exceptions import InvalidHeader
from websockets.headers import parse_authorization_basic

from csms.domain.passwords import verify_password


class BasicAuthChecker:
    def __init__(self, max_entries: int = 100_000) -> None:
        self._key = os.urandom(32)
        self._ok: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._max = max_entries

    async def check(self, identity: str, authorization: str | None, password_hash: str) -> bool:
        """True when `authorization` is `Basic base64(identity:password)` with the right password."""
        if not authorization:
            return False
        try:
            user, password = parse_authorization_basic(authorization)
        except InvalidHeader:
            return False
        if not hmac.compare_digest(user.encode("utf-8", "surrogateescape"), identity.encode()):
            return False
        secret = password.encode("utf-8", "surrogateescape")
        tag = hmac.new(self._key, secret, hashlib.sha256).digest()
        key = (identity, password_hash)
        known = self._ok.get(key)
        if known is not None and hmac.compare_digest(known, tag):
            self._ok.move_to_end(key)
            return True
        try:
            ok = await asyncio.to_thread(verify_password, secret.decode("utf-8", "surrogateescape"), password_hash)
        except (UnicodeError, ValueError):
            ok = False
        if ok:
            self._ok[key] = tag
            if len(self._ok) > self._max:
                self._ok.popitem(last=False)
        return ok
