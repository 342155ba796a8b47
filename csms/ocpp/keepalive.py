"""Keepalive pings only for chargers that have gone quiet.

websockets pings every connection every `ping_interval_s`, whatever it last heard from it. A charger that sends
heartbeats and meter values is demonstrably alive, and at 10,000 chargers the pings and their pongs were as
many frames as all OCPP messages together (333 a second each way at a 30 s interval: docs/performance.md).
Here websockets' own keepalive loop runs unchanged, but its ping is skipped while the connection received
anything (a message, a pong, a ping) within the last `ping_interval_s`. A charger that goes silent is pinged
at most one interval after its last frame, and closed `ping_timeout_s` later without a pong, as before:
detection still takes at most ping_interval_s + ping_timeout_s (+ the close handshake).

`ping()` with data (a caller's own) is never skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from websockets.asyncio.server import ServerConnection


class QuietKeepaliveConnection(ServerConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_rx = time.monotonic()   # the last bytes read from the charger
        self.pings_sent = 0               # keepalive pings that went out (tests, diagnostics)

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        super().data_received(data)

    async def ping(self, data: Any = None) -> Awaitable[float]:
        if data is None and self.ping_interval is not None and time.monotonic() - self.last_rx < self.ping_interval:
            heard: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            heard.set_result(0.0)   # websockets' keepalive reads this as the pong's latency
            return heard
        self.pings_sent += 1
        return await super().ping(data)
