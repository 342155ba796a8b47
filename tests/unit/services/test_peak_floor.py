"""The snapshot's peak floor: the highest EV load measured at a site this calendar month (site time), which
the planner's peak term does not count against (load under it costs no extra demand charge)."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.config import SiteConfig
from csms.services.smart.snapshot import SnapshotBuilder


def builder() -> SnapshotBuilder:
    # period_peak_kw only keeps its own memory: the collaborators are not used.
    return SnapshotBuilder(None, None, None, None)  # type: ignore[arg-type]


def test_the_floor_is_the_months_highest_measured_load() -> None:
    site = SiteConfig(id="s", grid_limit_kw=100)
    b = builder()
    assert b.period_peak_kw(site, datetime(2026, 5, 3, 9, tzinfo=UTC), 12.0) == 12.0
    assert b.period_peak_kw(site, datetime(2026, 5, 3, 10, tzinfo=UTC), 30.0) == 30.0
    assert b.period_peak_kw(site, datetime(2026, 5, 20, 10, tzinfo=UTC), 5.0) == 30.0     # kept all month
    assert b.period_peak_kw(site, datetime(2026, 6, 1, 10, tzinfo=UTC), 5.0) == 5.0      # a new month


def test_the_month_is_the_sites_local_month() -> None:
    site = SiteConfig(id="s", grid_limit_kw=100, timezone="America/Los_Angeles")
    b = builder()
    b.period_peak_kw(site, datetime(2026, 5, 31, 12, tzinfo=UTC), 40.0)
    # 2026-06-01 03:00 UTC is still 31 May in Los Angeles: the same demand period.
    assert b.period_peak_kw(site, datetime(2026, 6, 1, 3, tzinfo=UTC), 1.0) == 40.0
    assert b.period_peak_kw(site, datetime(2026, 6, 1, 12, tzinfo=UTC), 1.0) == 1.0
