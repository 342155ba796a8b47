"""StoreHealth: one log line per state change, every failure counted."""

import logging

import pytest

from csms.store.health import StoreHealth


def test_logged_once_per_change_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    t = [100.0]
    h = StoreHealth(clock=lambda: t[0])
    with caplog.at_level(logging.INFO, logger="csms.store"):
        for _ in range(50):
            h.failed(ConnectionRefusedError(111, "refused"))
        t[0] += 12.5
        h.succeeded()
        h.succeeded()
        h.failed(OSError("again"))
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 3
    assert msgs[0].startswith("database unavailable: ConnectionRefusedError")
    assert msgs[1] == "database available again after 12.5 s, 50 failed operations"
    assert msgs[2].startswith("database unavailable: OSError")
    assert (h.failures_total, h.outages_total, h.up) == (51, 2, False)
