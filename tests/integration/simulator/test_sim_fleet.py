"""A small mixed fleet and the CLI against the minimal in-test central system."""

from __future__ import annotations

import json

import pytest

from simulator.__main__ import parse_args, run_fleet
from simulator.arrivals import ArrivalConfig
from simulator.fleet import FaultSpec, Fleet, FleetConfig

FAST_ARRIVALS = ArrivalConfig(mean_gap_s=600, first_arrival_max_s=300, mean_dwell_s=1800, sd_dwell_s=300,
                              min_dwell_s=900, max_dwell_s=2700, mean_energy_wh=5_000, sd_energy_wh=1_000)


async def test_mixed_fleet_runs_sessions(csms) -> None:  # type: ignore[no-untyped-def]
    events: list[dict] = []
    cfg = FleetConfig(url=csms.url, chargers=4, protocol="mixed", id_prefix="FLT", seed=7, speedup=3600,
                      duration_s=2 * 3600, arrivals=FAST_ARRIVALS,
                      faults=[FaultSpec(at_s=1200, kind="disconnect", chargers=(0,), duration_s=120)])
    summary = await Fleet(cfg, on_event=events.append).run()

    assert summary.chargers == summary.booted == 4
    assert {c for c, a, _ in csms.state.received if a == "BootNotification"} == {
        "FLT-0001", "FLT-0002", "FLT-0003", "FLT-0004"}
    started = [s for s in summary.sessions if s.started]
    assert len(started) >= 4
    assert all(s.delivered_wh > 0 for s in started)
    assert summary.energy_wh == pytest.approx(sum(s.delivered_wh for s in summary.sessions), rel=0.01)
    assert 0 < summary.peak_site_power_w <= 4 * 22_080
    assert summary.messages_sent["BootNotification"] >= 5        # + one reconnect
    assert "StartTransaction" in summary.messages_sent and "TransactionEvent" in summary.messages_sent
    assert summary.limit_violations == 0
    assert any(e["event"] == "fault" for e in events)
    json.dumps(summary.to_dict())


async def test_cli_fleet(csms, capsys) -> None:  # type: ignore[no-untyped-def]
    ns = parse_args(["--url", csms.url, "--chargers", "2", "--protocol", "2.0.1", "--speedup", "7200",
                     "--duration-s", "1800", "--seed", "3", "--id-prefix", "CLI", "--mean-gap-s", "300"])
    assert ns.command == "fleet"
    assert await run_fleet(ns) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["event"] == "booted"
    assert lines[-1]["event"] == "summary" and lines[-1]["booted"] == 2
    assert {c for c, a, _ in csms.state.received if a == "BootNotification"} == {"CLI-0001", "CLI-0002"}
