from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulator.arrivals import ArrivalConfig, plan_sessions

T0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)


def test_same_seed_same_sessions_different_seed_differs() -> None:
    cfg = ArrivalConfig()
    a = plan_sessions(cfg, 42, T0, 2 * 86400, 5)
    b = plan_sessions(cfg, 42, T0, 2 * 86400, 5)
    c = plan_sessions(cfg, 43, T0, 2 * 86400, 5)
    assert a == b
    assert a != c


def test_sessions_are_consistent() -> None:
    cfg = ArrivalConfig(mean_gap_s=3600, min_dwell_s=600, max_dwell_s=8 * 3600, min_energy_wh=1000)
    plans = plan_sessions(cfg, 1, T0, 3 * 86400, 4)
    assert len(plans) == 4
    for i, sessions in enumerate(plans):
        assert sessions, "every charger gets sessions over three days"
        for s in sessions:
            assert s.charger_index == i
            assert T0 <= s.arrival < T0 + timedelta(days=3)
            assert 600 <= s.dwell_s <= 8 * 3600
            assert s.energy_wh <= s.ev_model.capacity_wh * (1 - s.initial_soc) + 1e-6
            assert cfg.soc_range[0] <= s.initial_soc <= cfg.soc_range[1]
            assert s.stated_departure == s.departure
        for prev, nxt in zip(sessions, sessions[1:]):
            assert nxt.arrival >= prev.departure


def test_hourly_weights_restrict_arrivals() -> None:
    weights = tuple(1.0 if 7 <= h < 9 else 0.0 for h in range(24))
    plans = plan_sessions(ArrivalConfig(hourly_weights=weights, first_arrival_max_s=0), 3, T0, 5 * 86400, 3)
    later = [s for ss in plans for s in ss[1:]]
    assert later and all(7 <= s.arrival.hour < 9 for s in later)


def test_fixed_tokens_cycle() -> None:
    plans = plan_sessions(ArrivalConfig(id_tokens=("A", "B")), 1, T0, 86400, 2)
    assert {s.id_token for ss in plans for s in ss} <= {"A", "B"}


def test_idle_chargers_get_no_cars() -> None:
    from simulator.fleet import Fleet, FleetConfig

    cfg = ArrivalConfig(mean_gap_s=300, first_arrival_max_s=20)
    fleet = Fleet(FleetConfig(chargers=3, idle_chargers=1, start=T0, duration_s=3600, arrivals=cfg))
    assert [len(s) > 0 for s in fleet.sessions] == [True, True, False]
