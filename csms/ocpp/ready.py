"""How many connections discover capabilities and report ready at once (a boot storm's back-pressure).

After an Accepted BootNotification the CSMS asks the charger what its smart charging supports (1.6
GetConfiguration, 2.0.1 GetVariables) and then reports it ready (smart charging sends its profiles).
None of that is what the charger waits for; its BootNotification and StatusNotifications are. In a
boot storm (bench/load.py --storm: 1,000 chargers reconnecting within 20 s) these requests and the
validation of their answers were 17 % of the CSMS's CPU, taken from the answers chargers wait for.
Here at most `limit` connections run that step at a time; the others queue in connect order. On an
event loop with thousands of busy connections `limit` tasks get a small share of it, so in a storm the
readiness work trails the boots instead of competing with them; on a quiet CSMS it starts at once.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

#: Capability discoveries at once. 16: at a round trip of 100-200 ms under a storm that is still 80-160
#: chargers ready per second, the rate of 10,000 reconnecting within 60-120 s.
READY_AT_ONCE = 16


class ReadyGate:
    """`async with gate:` admits `limit` holders at a time (None: no limit)."""

    def __init__(self, limit: int | None = READY_AT_ONCE) -> None:
        self.limit = limit
        self._sem: asyncio.Semaphore | None = None  # made on first use: on the loop that runs the server

    @property
    def waiting(self) -> int:
        sem = self._sem
        return len(sem._waiters or ()) if sem is not None else 0  # for tests and logs

    async def __aenter__(self) -> None:
        if self.limit is None:
            return
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limit)
        await self._sem.acquire()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._sem is not None:
            self._sem.release()


#: No limit: a connection made outside an OcppServer (tests).
UNLIMITED = ReadyGate(None)
