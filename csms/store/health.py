"""Database reachability as a state with counters, logged once per change instead of once per message.

Why: during an outage every charger message fails the same way; a traceback per message (150 lines/s at
1,000 chargers) buries the one line that matters. The first failure is logged with its cause, the rest
are counted; the first success afterwards logs the outage's length and count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("csms.store")


class StoreHealth:
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._now = clock or time.monotonic
        self.up = True
        self.failures_total = 0  # operations that failed because the database could not be used
        self.outages_total = 0
        self._down_since = 0.0
        self._down_failures = 0

    def failed(self, exc: BaseException) -> None:
        self.failures_total += 1
        self._down_failures += 1
        if self.up:
            self.up = False
            self.outages_total += 1
            self._down_since = self._now()
            log.error("database unavailable: %s: %s (further failures are counted, not logged, until it is back)",
                      type(exc).__name__, str(exc)[:300], exc_info=exc)

    def succeeded(self) -> None:
        if not self.up:
            log.warning("database available again after %.1f s, %d failed operations",
                        self._now() - self._down_since, self._down_failures)
            self.up = True
            self._down_failures = 0
