"""What the OCPP adapter reports about each message, for metrics. The adapter does not know Prometheus:
the composition root passes an observer (csms.api.metrics.Metrics) or gets the no-op one."""

from __future__ import annotations

from typing import Protocol


class OcppObserver(Protocol):
    def handled(self, protocol: str, action: str, seconds: float, error: str | None) -> None:
        """A charger's CALL answered `seconds` after it was taken up; `error` is the CALLERROR kind, if any."""

    def requested(self, protocol: str, action: str, seconds: float, result: str) -> None:
        """A CSMS-initiated CALL ended after `seconds`: "answered", or the CommandStatus why not."""


class NullObserver:
    def handled(self, protocol: str, action: str, seconds: float, error: str | None) -> None:
        pass

    def requested(self, protocol: str, action: str, seconds: float, result: str) -> None:
        pass


NULL_OBSERVER = NullObserver()
