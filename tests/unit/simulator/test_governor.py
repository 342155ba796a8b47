"""The scenario runner's governor: the clock shared with an in-process CSMS pauses while the CSMS lags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulator.clock import SimClock
from simulator.run import Governor

T0 = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)


class _Charger:
    def __init__(self) -> None:
        self.since: datetime | None = None

    def backlog_since(self) -> datetime | None:
        return self.since


def test_pauses_while_the_csms_is_behind_and_resumes_once_it_caught_up() -> None:
    t = [0.0]
    clock = SimClock(T0, speedup=100, monotonic=lambda: t[0])
    a, b = _Charger(), _Charger()
    gov = Governor(clock, [a, b], max_lag_s=60)
    t[0] = 1.0                                       # 100 simulated s
    gov.step()
    assert not clock.paused and gov.lag_s() == 0     # nothing waiting
    a.since = clock.now() - timedelta(seconds=50)
    gov.step()
    assert not clock.paused                          # 50 s behind: within the limit
    a.since = clock.now() - timedelta(seconds=61)
    b.since = clock.now() - timedelta(seconds=10)
    gov.step()
    assert clock.paused and gov.lag_s() == 61        # the oldest unanswered message counts
    t[0] += 3.0                                      # the CSMS works while simulated time stands still
    gov.step()
    assert clock.paused
    a.since = None                                   # answered; b's message is 10 s old (< 60 / 2)
    gov.step()
    assert not clock.paused
    assert gov.stats() == {"max_lag_s": 60, "pauses": 1, "paused_real_s": 3.0}
    assert gov.max_seen_lag_s == 61


def test_hysteresis_keeps_paused_until_half_the_limit() -> None:
    t = [0.0]
    clock = SimClock(T0, speedup=100, monotonic=lambda: t[0])
    a = _Charger()
    gov = Governor(clock, [a], max_lag_s=60)
    t[0] = 2.0
    a.since = clock.now() - timedelta(seconds=90)
    gov.step()
    assert clock.paused
    a.since = clock.now() - timedelta(seconds=45)    # the next message: still more than 30 s behind
    gov.step()
    assert clock.paused
    a.since = clock.now() - timedelta(seconds=30)
    gov.step()
    assert not clock.paused
