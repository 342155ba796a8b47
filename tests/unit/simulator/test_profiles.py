from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulator import profiles as pf

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)        # a Wednesday
MAX_W = 22_080.0                                     # 32 A x 230 V x 3


def v16(pid: int, purpose: str, periods: list[tuple[int, float]] | list[tuple[int, float, int]], *,
        unit: str = "A", stack: int = 0, kind: str = "Absolute", start: datetime | None = T0,
        duration: int | None = None, connector: int = 1, tx: int | None = None,
        valid_from: datetime | None = None, valid_to: datetime | None = None,
        recurrency: str | None = None) -> pf.ChargingProfile:
    """A 1.6 csChargingProfiles in camelCase (wire shape)."""
    sched: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [
            {"startPeriod": p[0], "limit": p[1], **({"numberPhases": p[2]} if len(p) > 2 else {})}
            for p in periods],
    }
    if start is not None:
        sched["startSchedule"] = start.isoformat().replace("+00:00", "Z")
    if duration is not None:
        sched["duration"] = duration
    prof: dict[str, Any] = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
                            "chargingProfileKind": kind, "chargingSchedule": sched}
    if tx is not None:
        prof["transactionId"] = tx
    if valid_from:
        prof["validFrom"] = valid_from.isoformat()
    if valid_to:
        prof["validTo"] = valid_to.isoformat()
    if recurrency:
        prof["recurrencyKind"] = recurrency
    return pf.from_v16(prof, connector, received_at=T0)


def v201(pid: int, purpose: str, periods: list[tuple[int, float]], *, unit: str = "W", stack: int = 0,
         kind: str = "Absolute", start: datetime | None = T0, evse: int = 1, tx: str | None = None,
         duration: int | None = None) -> pf.ChargingProfile:
    """A 2.0.1 chargingProfile in snake_case (as the ocpp library hands it to a handler)."""
    sched: dict[str, Any] = {"id": pid, "charging_rate_unit": unit,
                             "charging_schedule_period": [{"start_period": s, "limit": lim} for s, lim in periods]}
    if start is not None:
        sched["start_schedule"] = start.isoformat()
    if duration is not None:
        sched["duration"] = duration
    prof: dict[str, Any] = {"id": pid, "stack_level": stack, "charging_profile_purpose": purpose,
                            "charging_profile_kind": kind, "charging_schedule": [sched]}
    if tx is not None:
        prof["transaction_id"] = tx
    return pf.from_v201(prof, evse, received_at=T0)


def limit_at(profiles: list[pf.ChargingProfile], at: datetime, *, tx: str | None = "1",
             tx_start: datetime | None = T0, phases: int = 3, evse: int = 1) -> pf.EffectiveLimit:
    return pf.effective_limit(profiles, evse_id=evse, now=at, station_max_w=MAX_W, transaction_id=tx,
                              tx_start=tx_start, voltage_v=230, phases=phases)


def mins(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


CASES: list[tuple[str, list[pf.ChargingProfile], datetime, dict[str, Any], float]] = [
    ("no profile -> station max", [], mins(1), {}, MAX_W),
    ("1.6 TxDefault 16 A, 3 phases", [v16(1, "TxDefaultProfile", [(0, 16)], connector=0)], mins(1), {}, 11_040),
    ("1.6 A with numberPhases=1", [v16(1, "TxDefaultProfile", [(0, 16, 1)], connector=0)], mins(1), {}, 3_680),
    ("1-phase EV on 3-phase A limit", [v16(1, "TxDefaultProfile", [(0, 16)], connector=0)], mins(1),
     {"phases": 1}, 3_680),
    ("W limit independent of phases", [v201(1, "TxDefaultProfile", [(0, 5_000)], evse=0)], mins(1),
     {"phases": 1}, 5_000),
    ("absolute periods: second period", [v16(1, "TxDefaultProfile", [(0, 16), (600, 8)], connector=0)],
     mins(11), {}, 5_520),
    ("absolute before start -> no limit", [v16(1, "TxDefaultProfile", [(0, 6)], start=mins(60), connector=0)],
     mins(10), {}, MAX_W),
    ("duration over -> no limit", [v16(1, "TxDefaultProfile", [(0, 6)], duration=600, connector=0)],
     mins(11), {}, MAX_W),
    ("higher stack wins", [v16(1, "TxDefaultProfile", [(0, 16)], stack=1, connector=0),
                           v16(2, "TxDefaultProfile", [(0, 10)], stack=2, connector=0)], mins(1), {}, 6_900),
    ("higher stack expired -> fall back",
     [v16(1, "TxDefaultProfile", [(0, 16)], stack=1, connector=0),
      v16(2, "TxDefaultProfile", [(0, 10)], stack=2, duration=300, connector=0)], mins(6), {}, 11_040),
    ("validTo passed -> ignored",
     [v16(1, "TxDefaultProfile", [(0, 10)], valid_to=mins(5), connector=0)], mins(6), {}, MAX_W),
    ("validFrom not yet -> ignored",
     [v16(1, "TxDefaultProfile", [(0, 10)], valid_from=mins(30), connector=0)], mins(6), {}, MAX_W),
    ("TxProfile overrides TxDefault (even higher)",
     [v16(1, "TxDefaultProfile", [(0, 6)], stack=5, connector=0), v16(2, "TxProfile", [(0, 20)])],
     mins(1), {}, 13_800),
    ("TxProfile for another transaction ignored",
     [v16(1, "TxDefaultProfile", [(0, 6)], connector=0), v16(2, "TxProfile", [(0, 20)], tx=99)],
     mins(1), {}, 4_140),
    ("TxProfile without transaction ignored",
     [v16(2, "TxProfile", [(0, 20)])], mins(1), {"tx": None}, MAX_W),
    ("EVSE TxDefault overrides EVSE-0 TxDefault",
     [v16(1, "TxDefaultProfile", [(0, 6)], stack=3, connector=0),
      v16(2, "TxDefaultProfile", [(0, 10)], stack=0, connector=1)], mins(1), {}, 6_900),
    ("station max caps TxProfile", [v16(1, "ChargePointMaxProfile", [(0, 8)], connector=0),
                                    v16(2, "TxProfile", [(0, 32)])], mins(1), {}, 5_520),
    ("2.0.1 station max caps", [v201(1, "ChargingStationMaxProfile", [(0, 7_000)], evse=0),
                                v201(2, "TxProfile", [(0, 11_000)], tx="1")], mins(1), {}, 7_000),
    ("2.0.1 external constraints cap", [v201(1, "ChargingStationExternalConstraints", [(0, 3_000)], evse=0)],
     mins(1), {}, 3_000),
    ("relative: from tx start", [v16(1, "TxProfile", [(0, 16), (1800, 6)], kind="Relative", start=None)],
     mins(40), {"tx_start": mins(0)}, 4_140),
    ("relative: tx started later", [v16(1, "TxProfile", [(0, 16), (1800, 6)], kind="Relative", start=None)],
     mins(40), {"tx_start": mins(20)}, 11_040),
    ("recurring daily, next day",
     [v16(1, "TxDefaultProfile", [(0, 16), (3600, 6)], kind="Recurring", recurrency="Daily", connector=0)],
     T0 + timedelta(days=1, minutes=90), {}, 4_140),
    ("recurring daily, before startSchedule's time of day",
     [v16(1, "TxDefaultProfile", [(0, 16), (3600, 6)], kind="Recurring", recurrency="Daily", connector=0)],
     T0 + timedelta(days=2, minutes=-30), {}, 4_140),
    ("recurring weekly",
     [v16(1, "TxDefaultProfile", [(0, 16), (86400, 6)], kind="Recurring", recurrency="Weekly", connector=0)],
     T0 + timedelta(days=7, hours=2), {}, 11_040),
    ("limit 0", [v201(1, "TxProfile", [(0, 0)], tx="1")], mins(1), {}, 0.0),
]


@pytest.mark.parametrize("name, profiles, at, kw, expected_w", CASES, ids=[c[0] for c in CASES])
def test_effective_limit(name: str, profiles: list[pf.ChargingProfile], at: datetime, kw: dict[str, Any],
                         expected_w: float) -> None:
    assert limit_at(profiles, at, **kw).limit_w == pytest.approx(expected_w)


def test_limit_in_amps_and_next_change() -> None:
    p = v16(1, "TxDefaultProfile", [(0, 16), (600, 8), (1200, 0)], connector=0)
    eff = limit_at([p], mins(1))
    assert eff.limit_a == pytest.approx(16)
    assert eff.next_change == mins(10)
    assert eff.sources == (1,)
    assert limit_at([p], mins(15)).next_change == mins(20)
    assert limit_at([p], mins(25)).next_change is None


def test_next_change_includes_future_profiles() -> None:
    later = v16(2, "TxDefaultProfile", [(0, 6)], stack=1, start=mins(30), connector=0)
    assert limit_at([later], mins(1)).next_change == mins(30)


def test_recurring_next_change_is_next_occurrence() -> None:
    p = v16(1, "TxDefaultProfile", [(0, 16), (3600, 6)], kind="Recurring", recurrency="Daily", connector=0)
    assert limit_at([p], mins(90)).next_change == T0 + timedelta(days=1)


def test_composite_schedule_merges_profiles() -> None:
    profiles = [
        v16(1, "ChargePointMaxProfile", [(0, 20)], connector=0),
        v16(2, "TxDefaultProfile", [(0, 32), (1800, 10)], connector=0),
    ]
    cs = pf.composite_schedule(profiles, evse_id=1, start=T0, duration_s=3600, station_max_w=MAX_W,
                               unit=pf.RateUnit.A, transaction_id="1", tx_start=T0)
    assert [(p.start_s, p.limit) for p in cs.periods] == [(0, 20.0), (1800, 10.0)]
    cs_w = pf.composite_schedule(profiles, evse_id=1, start=T0 + timedelta(minutes=10), duration_s=3600,
                                 station_max_w=MAX_W)
    assert [(p.start_s, p.limit) for p in cs_w.periods] == [(0, 13_800.0), (1200, 6_900.0)]


def test_composite_schedule_station_level() -> None:
    cs = pf.composite_schedule([v16(1, "ChargePointMaxProfile", [(0, 20)], connector=0)], evse_id=0,
                               start=T0, duration_s=600, station_max_w=MAX_W, unit=pf.RateUnit.A)
    assert [(p.start_s, p.limit) for p in cs.periods] == [(0, 20.0)]


RULES = pf.ValidationRules(max_stack_level=8, max_periods=5,
                           allowed_units=frozenset({pf.RateUnit.A, pf.RateUnit.W}), evse_ids=frozenset({1}))

INVALID = [
    ("stack too high", v16(1, "TxDefaultProfile", [(0, 10)], stack=9), "1"),
    ("first period not 0", v16(1, "TxDefaultProfile", [(60, 10)]), "1"),
    ("periods not increasing", v16(1, "TxDefaultProfile", [(0, 10), (0, 8)]), "1"),
    ("too many periods", v16(1, "TxDefaultProfile", [(i * 60, 10) for i in range(6)]), "1"),
    ("station max on connector", v16(1, "ChargePointMaxProfile", [(0, 10)], connector=1), "1"),
    ("TxProfile without tx", v16(1, "TxProfile", [(0, 10)]), None),
    ("TxProfile on connector 0", v16(1, "TxProfile", [(0, 10)], connector=0), "1"),
    ("TxProfile wrong tx", v16(1, "TxProfile", [(0, 10)], tx=5), "1"),
    ("unknown connector", v16(1, "TxDefaultProfile", [(0, 10)], connector=3), None),
    ("recurring without recurrency", v16(1, "TxDefaultProfile", [(0, 10)], kind="Recurring"), None),
    ("negative limit", v16(1, "TxDefaultProfile", [(0, -1)]), None),
]


@pytest.mark.parametrize("name, profile, tx", INVALID, ids=[c[0] for c in INVALID])
def test_validate_rejects(name: str, profile: pf.ChargingProfile, tx: str | None) -> None:
    with pytest.raises(pf.ProfileError):
        pf.validate(profile, RULES, active_tx_id=tx)


def test_validate_accepts_and_v201_requires_tx_id() -> None:
    pf.validate(v16(1, "TxProfile", [(0, 10)]), RULES, active_tx_id="7")
    pf.validate(v16(1, "TxProfile", [(0, 10)], tx=7), RULES, active_tx_id="7")
    with pytest.raises(pf.ProfileError):
        pf.validate(v201(1, "TxProfile", [(0, 10)]), RULES, active_tx_id="abc", require_tx_id=True)
    pf.validate(v201(1, "TxProfile", [(0, 10)], tx="abc"), RULES, active_tx_id="abc", require_tx_id=True)


def test_unit_not_allowed() -> None:
    rules = pf.ValidationRules(allowed_units=frozenset({pf.RateUnit.A}))
    with pytest.raises(pf.ProfileError):
        pf.validate(v201(1, "TxDefaultProfile", [(0, 1000)]), rules, active_tx_id=None)


def test_malformed_profiles_raise_profile_error() -> None:
    with pytest.raises(pf.ProfileError):
        pf.from_v16({"chargingProfileId": 1}, 1)
    with pytest.raises(pf.ProfileError):
        pf.from_v201({"id": 1, "stackLevel": 0, "chargingProfilePurpose": "Bogus", "chargingProfileKind": "Absolute",
                      "chargingSchedule": [{"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": []}]}, 1)


def test_install_replaces_same_id_and_same_purpose_stack_evse() -> None:
    a = v16(1, "TxDefaultProfile", [(0, 10)], stack=1)
    b = v16(2, "TxDefaultProfile", [(0, 12)], stack=1)                 # same purpose/stack/connector
    c = v16(1, "TxDefaultProfile", [(0, 14)], stack=2)                 # same id
    d = v16(3, "TxDefaultProfile", [(0, 14)], stack=1, connector=0)    # other connector: kept
    assert [p.id for p in pf.install(pf.install([a], b), d)] == [2, 3]
    assert [(p.id, p.stack_level) for p in pf.install([a, d], c)] == [(3, 1), (1, 2)]


def test_clear_by_id_and_by_criteria() -> None:
    ps = [v16(1, "TxDefaultProfile", [(0, 10)], stack=1, connector=0),
          v16(2, "TxProfile", [(0, 10)], stack=1),
          v16(3, "ChargePointMaxProfile", [(0, 10)], connector=0)]
    kept, n = pf.clear(ps, profile_id=2)
    assert n == 1 and [p.id for p in kept] == [1, 3]
    kept, n = pf.clear(ps, evse_id=0)
    assert n == 2 and [p.id for p in kept] == [2]
    kept, n = pf.clear(ps, purpose=pf.Purpose.STATION_MAX)
    assert n == 1
    kept, n = pf.clear(ps)
    assert n == 3 and kept == []
    assert pf.clear(ps, profile_id=42)[1] == 0


def test_parse_time_variants() -> None:
    assert pf.parse_time("2024-05-01T08:00:00Z") == T0
    assert pf.parse_time("2024-05-01T10:00:00.123+02:00") == T0 + timedelta(milliseconds=123)
    assert pf.parse_time("2024-05-01T08:00:00") == T0
