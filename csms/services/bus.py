"""In-process publish/subscribe for committed domain events.

Subscribers are plain callables run synchronously in publish order; they must not block (schedule a
task or put on a queue). A failing subscriber is logged and never breaks the OCPP message path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from csms.domain.events import DomainEvent

log = logging.getLogger("csms.bus")
Subscriber = Callable[[DomainEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn)

    def publish(self, event: DomainEvent) -> None:
        for fn in list(self._subscribers):
            try:
                fn(event)
            except Exception:  # noqa: BLE001 - one subscriber must not break the others
                log.exception("subscriber failed event=%s", type(event).__name__)
