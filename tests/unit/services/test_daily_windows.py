"""One daily-window type (csms.domain.daily_window) behind every user: the same cases run through TOU prices
(billing), the limit schedule and the base load (site limits), each configured in YAML the way an operator
writes it (unquoted times included)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from csms.billing_config import parse_billing
from csms.config import SiteConfig, parse_config
from csms.domain.daily_window import DailyWindow
from csms.services.site_limits import SiteLimits

# (zone, start, end, instant, inside). The instant is the zone's wall-clock time, or UTC when it ends in Z
# (DST cases, where the wall clock is skipped or repeated).
CASES = {
    "00:00-00:00 is all day (noon)": ("UTC", "00:00", "00:00", "2026-03-02 12:00", True),
    "00:00-00:00 is all day (midnight)": ("UTC", "00:00", "00:00", "2026-03-02 00:00", True),
    "00:00-00:00 is all day (last second)": ("Europe/Berlin", "00:00", "00:00", "2026-03-02 23:59:59", True),
    "start == end is all day": ("Europe/Berlin", "06:00", "06:00", "2026-03-02 05:59", True),
    "before the window": ("Europe/Berlin", "17:00", "20:00", "2026-03-02 16:59:59", False),
    "at its start": ("Europe/Berlin", "17:00", "20:00", "2026-03-02 17:00", True),
    "its last minute": ("Europe/Berlin", "17:00", "20:00", "2026-03-02 19:59", True),
    "its end is outside": ("Europe/Berlin", "17:00", "20:00", "2026-03-02 20:00", False),
    "across midnight, evening": ("Europe/Berlin", "22:00", "06:00", "2026-03-02 23:30", True),
    "across midnight, after midnight": ("Europe/Berlin", "22:00", "06:00", "2026-03-03 00:00", True),
    "across midnight, morning": ("Europe/Berlin", "22:00", "06:00", "2026-03-03 05:59", True),
    "across midnight, its end": ("Europe/Berlin", "22:00", "06:00", "2026-03-03 06:00", False),
    "across midnight, before it": ("Europe/Berlin", "22:00", "06:00", "2026-03-02 21:59", False),
    "site-local time, not UTC": ("America/New_York", "22:00", "06:00", "2026-07-01T03:00:00Z", True),  # 23:00
    "site-local end, not UTC": ("America/New_York", "22:00", "06:00", "2026-07-01T10:00:00Z", False),  # 06:00
    # Berlin, 29 March 2026: 02:00 CET jumps to 03:00 CEST at 01:00 UTC.
    "spring forward: 01:59 CET": ("Europe/Berlin", "02:00", "03:00", "2026-03-29T00:59:59Z", False),
    "spring forward: the skipped hour never happens": ("Europe/Berlin", "02:00", "03:00", "2026-03-29T01:00:00Z",
                                                       False),
    "spring forward: a window starting in the gap opens at the jump": ("Europe/Berlin", "02:30", "05:00",
                                                                       "2026-03-29T01:00:00Z", True),
    "spring forward: not before the jump": ("Europe/Berlin", "02:30", "05:00", "2026-03-29T00:59:00Z", False),
    # Berlin, 25 October 2026: 03:00 CEST goes back to 02:00 CET at 01:00 UTC.
    "fall back: 02:30 CEST": ("Europe/Berlin", "02:00", "03:00", "2026-10-25T00:30:00Z", True),
    "fall back: 02:30 CET, the repeated hour": ("Europe/Berlin", "02:00", "03:00", "2026-10-25T01:30:00Z", True),
    "fall back: 03:00 CET": ("Europe/Berlin", "02:00", "03:00", "2026-10-25T02:00:00Z", False),
    "fall back: 01:59 CEST": ("Europe/Berlin", "02:00", "03:00", "2026-10-24T23:59:00Z", False),
}


def instant(zone: str, text: str) -> datetime:
    if text.endswith("Z"):
        return datetime.fromisoformat(text)
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def site_yaml(zone: str, key: str, start: str, end: str, kw: float) -> SiteConfig:
    """A site configured in YAML with unquoted times (17:00 is read by YAML 1.1 as the integer 1020)."""
    windows = f"[{{start: {start}, end: {end}, limit_kw: {kw}}}]"
    body = f"limit_schedule: {windows}" if key == "limit_schedule" else f"base_load: {{windows: {windows}}}"
    cfg = parse_config(f"sites: [{{id: s, grid_limit_kw: 100, timezone: {zone}, {body}}}]\n", env={})
    return cfg.sites[0]


def tou_price(zone: str, start: str, end: str, at: datetime) -> Decimal:
    bc = parse_billing({"tariff": {"energy_price_per_kwh": "0.30",
                                   "tou_windows": [{"start": start, "end": end, "price_per_kwh": "0.99"}]}})
    return bc.tariff_book(zone).default.price_at(at)


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_every_user_reads_a_daily_window_the_same_way(case: tuple[str, str, str, str, bool]) -> None:
    zone, start, end, text, inside = case
    at = instant(zone, text)
    window = DailyWindow(time.fromisoformat(start), time.fromisoformat(end))
    assert window.covers(at, ZoneInfo(zone)) is inside
    assert (tou_price(zone, start, end, at) == Decimal("0.99")) is inside  # tariff
    assert (SiteLimits(site_yaml(zone, "limit_schedule", start, end, 7)).power_limit_kw_at(at) == 7) is inside
    assert (SiteLimits(site_yaml(zone, "base_load", start, end, 5)).base_load_kw_at(at) == 5) is inside


@pytest.mark.parametrize(("start", "end", "expected"), [
    # Spring forward: 02:30-05:00 opens at the jump (01:00 UTC) and closes at 05:00 CEST (03:00 UTC).
    ("02:30", "05:00", ["2026-03-29T01:00:00+00:00", "2026-03-29T03:00:00+00:00"]),
    ("02:00", "03:00", []),  # the skipped hour: never open that day
    ("00:00", "00:00", []),  # all day: never changes
])
def test_window_edges_on_a_dst_day_are_the_same_for_tariffs_and_limits(start: str, end: str,
                                                                        expected: list[str]) -> None:
    a, b = datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 3, 29, 6, tzinfo=UTC)
    want = [datetime.fromisoformat(x) for x in expected]
    zone = ZoneInfo("Europe/Berlin")
    assert DailyWindow(time.fromisoformat(start), time.fromisoformat(end)).changes(a, b, zone) == want
    bc = parse_billing({"tariff": {"tou_windows": [{"start": start, "end": end, "price_per_kwh": "0.99"}]}})
    assert bc.tariff_book("Europe/Berlin").default.tou_boundaries(a, b) == want
    assert SiteLimits(site_yaml("Europe/Berlin", "limit_schedule", start, end, 7)).changes(a, b) == want


def test_fall_back_repeated_hour_is_one_span() -> None:
    """02:00-03:00 on 25 October 2026 (Berlin) opens at 02:00 CEST and closes at 03:00 CET: two hours."""
    a, b = datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 4, tzinfo=UTC)
    site = site_yaml("Europe/Berlin", "limit_schedule", "02:00", "03:00", 7)
    assert SiteLimits(site).limit_kw_spans(a, b) == [
        (a, datetime(2026, 10, 25, 0, tzinfo=UTC), 100),
        (datetime(2026, 10, 25, 0, tzinfo=UTC), datetime(2026, 10, 25, 2, tzinfo=UTC), 7),
        (datetime(2026, 10, 25, 2, tzinfo=UTC), b, 100),
    ]


def test_weekday_windows_start_on_their_day() -> None:
    """A tariff window on Fridays 22:00-06:00 covers Saturday morning, not Friday morning."""
    w = DailyWindow(time(22), time(6), frozenset({5}))
    utc = ZoneInfo("UTC")
    assert w.covers(datetime(2026, 3, 7, 5, tzinfo=UTC), utc)  # Saturday 05:00
    assert not w.covers(datetime(2026, 3, 6, 5, tzinfo=UTC), utc)  # Friday 05:00
    assert not DailyWindow(time(7), time(7), frozenset({1})).all_day
    assert DailyWindow(time(7), time(7), frozenset({1})).covers(datetime(2026, 3, 3, 6, 59, tzinfo=UTC), utc)


def test_unquoted_yaml_times_are_hours_and_minutes() -> None:
    site = site_yaml("UTC", "limit_schedule", "17:00", "20:00", 60)
    assert (site.limit_schedule[0].start, site.limit_schedule[0].end) == (time(17), time(20))


def test_a_window_needs_wall_clock_times_and_iso_weekdays() -> None:
    with pytest.raises(ValueError, match="weekdays"):
        DailyWindow(time(1), time(2), frozenset({0}))
    with pytest.raises(ValueError, match="wall-clock"):
        DailyWindow(time(1, tzinfo=UTC), time(2))
