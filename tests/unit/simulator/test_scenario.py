"""Scenario schema and seeded expansion; ACN replay parsing; thresholds; report aggregation on synthetic data."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from simulator.arrivals import SessionPlan
from simulator.ev import EVModel
from simulator.fleet import RunSummary, SessionResult
from simulator.recorder import ErrorRecord, PowerSample, Recorder
from simulator.replay import ReplayError, parse_acn, read_acn, station_mapping, to_rows, window
from simulator.report import (
    build_report,
    deterministic_view,
    evaluate_thresholds,
    parse_threshold,
    site_timeline,
    to_markdown,
    violations,
    write_report,
)
from simulator.scenario import ScenarioError, assign_protocols, deliverable_wh, expand, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2024, 5, 6, 0, 0, tzinfo=UTC)

MINIMAL = """
name: t
start: 2024-05-06T00:00:00Z
duration_h: 12
site: {id: s1, grid_limit_kw: 50}
fleet: {count: 4, protocols: {"1.6": 0.5, "2.0.1": 0.5}}
arrivals:
  poisson:
    rate_per_hour: [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    dwell_h: {mean: 2, sd: 0.5, min: 0.5}
    energy_kwh: {mean: 10, sd: 3, min: 2}
"""


# ------------------------------------------------------------------------------------------ validation
def test_shipped_scenarios_validate_and_expand() -> None:
    files = sorted((ROOT / "scenarios").glob("*.yaml"))
    names = {f.stem for f in files}
    assert {"office", "depot", "public", "replay-caltech-week", "ci-1.6", "ci-2.0.1"} <= names
    for f in files:
        scn = load_scenario(f)
        assert scn.name == f.stem
        if scn.arrivals.replay is not None and not (ROOT / ".." / "shared" / "data" / "acn").exists():
            continue
        plan = expand(scn)
        assert plan.stats["sessions"] > 0, f.name
    office = load_scenario(ROOT / "scenarios/office.yaml")
    assert office.fleet.count == 50 and office.site.grid_limit_kw == 150


@pytest.mark.parametrize(("patch", "key"), [
    ("fleet: {count: 0}", "fleet.count"),
    ("fleet: {count: 2, colour: red}", "fleet.colour"),
    ("site: {id: s1, grid_limit_kw: -5}", "site.grid_limit_kw"),
    ("site: {id: s1, grid_limit_kw: 5, timezone: Mars/Olympus}", "site.timezone"),
    ("thresholds: ['satisfied_pct >= ninety']", "thresholds[0]"),
    ("thresholds: ['happiness>=1']", "thresholds[0]"),
    ("faults: [{kind: disconnect, at_h: 1}]", "faults[0]"),
    ("faults: [{kind: reboot, at_h: 1, probability: 0.5}]", "faults[0]"),
    ("faults: [{kind: reboot, at_h: 1, chargers: [9]}]", "faults[0].chargers"),
    ("fleet: {count: 2, protocols: {'1.5': 1}}", "fleet.protocols"),
])
def test_invalid_scenarios_name_the_key(patch: str, key: str) -> None:
    import yaml

    raw = yaml.safe_load(MINIMAL)
    raw.update(yaml.safe_load(patch))
    with pytest.raises(ScenarioError) as e:
        parse_scenario(yaml.safe_dump(raw), source="x.yaml")
    assert key in str(e.value) and str(e.value).startswith("x.yaml: ")


def test_exactly_one_arrival_process_and_start_required() -> None:
    with pytest.raises(ScenarioError, match="exactly one of poisson, fixed, replay"):
        parse_scenario(MINIMAL.replace("arrivals:", "arrivals:\n  fixed: {arrive: '18:00', depart: '06:00', "
                                                    "energy_kwh: {mean: 5}}"))
    with pytest.raises(ScenarioError, match="start: required"):
        parse_scenario(MINIMAL.replace("start: 2024-05-06T00:00:00Z\n", ""))


def test_not_yaml_and_missing_file() -> None:
    with pytest.raises(ScenarioError, match="not valid YAML"):
        parse_scenario("a: [1,")
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario("/nonexistent/x.yaml")


# ----------------------------------------------------------------------------------------- expansion
def test_expansion_is_deterministic_per_seed() -> None:
    scn = parse_scenario(MINIMAL)
    a, b, c = expand(scn), expand(scn), expand(scn, seed=2)
    assert a.to_dict() == b.to_dict() and a.digest() == b.digest()
    assert a.digest() != c.digest()


def test_poisson_sessions_never_overlap_on_a_charger_and_respect_the_window() -> None:
    plan = expand(parse_scenario(MINIMAL))
    assert [c.protocol for c in plan.charger_configs] == ["1.6", "2.0.1", "1.6", "2.0.1"]
    for sessions in plan.sessions:
        for s, nxt in zip(sessions, sessions[1:], strict=False):
            assert nxt.arrival >= s.departure
        for s in sessions:
            assert plan.start <= s.arrival < plan.end
            assert s.energy_wh <= s.ev_model.capacity_wh * (1 - s.initial_soc) + 1e-6
    assert set(plan.id_tokens) >= {s.id_token for ss in plan.sessions for s in ss}


def test_protocol_mix_is_interleaved_in_proportion() -> None:
    p = assign_protocols({"1.6": 0.25, "2.0.1": 0.75}, 8)
    assert p.count("1.6") == 2 and p.count("2.0.1") == 6
    assert assign_protocols({"2.0.1": 1.0}, 3) == ["2.0.1"] * 3


def test_driver_behaviour_overstay_and_bookings() -> None:
    scn = parse_scenario(MINIMAL + """
drivers:
  overstay: {probability: 1.0, minutes: {mean: 30, sd: 0}}
  bookings: {probability: 1.0, no_show_probability: 0.5, lead_min: 30}
""")
    plan = expand(scn)
    sessions = [s for ss in plan.sessions for s in ss]
    for s in sessions:
        assert s.stated_departure is not None
        assert (s.departure - s.stated_departure) == timedelta(minutes=30)
    assert plan.bookings and plan.stats["no_shows"] == sum(b.no_show for b in plan.bookings)
    assert 0 < plan.stats["no_shows"] < len(plan.bookings)
    assert len(sessions) == len(plan.bookings) - plan.stats["no_shows"]
    for b in plan.bookings:
        assert b.create_at == max(plan.start, b.start - timedelta(minutes=30))


def test_fixed_depot_arrivals_and_probabilistic_faults() -> None:
    scn = parse_scenario("""
name: depot
start: 2024-05-06T12:00:00Z
duration_h: 24
site: {id: d, grid_limit_kw: 100}
fleet: {count: 6}
arrivals:
  fixed: {arrive: "18:00", arrive_sd_min: 30, depart: "06:00", energy_kwh: {mean: 30, sd: 5}}
faults:
  - {kind: reboot, probability: 1.0}
  - {kind: disconnect, at_h: 2, chargers: ["1-3"], duration_min: 5}
""")
    plan = expand(scn)
    assert all(len(ss) == 1 for ss in plan.sessions)
    for ss in plan.sessions:
        s = ss[0]
        assert s.departure == datetime(2024, 5, 7, 6, 0, tzinfo=UTC)
        assert abs((s.arrival - datetime(2024, 5, 6, 18, 0, tzinfo=UTC)).total_seconds()) < 4 * 3600
    assert sum(f.kind == "reboot" for f in plan.faults) == 6
    d = [f for f in plan.faults if f.kind == "disconnect"]
    assert d[0].chargers == (0, 1, 2) and d[0].at_s == 7200 and d[0].duration_s == 300


def test_deliverable_is_bounded_by_need_power_and_battery() -> None:
    m = EVModel("x", capacity_wh=40_000, max_power_w=7_000, phases=1)
    short = SessionPlan(0, T0, T0 + timedelta(hours=1), 20_000, 0.2, m, "A")
    assert deliverable_wh(short, 22_000) == pytest.approx(7_000, rel=1e-3)
    assert deliverable_wh(short, 3_000) == pytest.approx(3_000, rel=1e-3)
    long = SessionPlan(0, T0, T0 + timedelta(hours=10), 20_000, 0.2, m, "A")
    assert deliverable_wh(long, 22_000) == pytest.approx(20_000)
    full = SessionPlan(0, T0, T0 + timedelta(hours=10), 50_000, 0.5, m, "A")
    assert deliverable_wh(full, 22_000) == pytest.approx(20_000, rel=1e-3)   # battery room, with taper


# --------------------------------------------------------------------------------------------- replay
ACN = """arrival,departure,requested_energy (kWh),delivered_energy (kWh),station_id,session_id,estimated_departure,claimed
2019-07-01 08:00:00-07:00,2019-07-01 17:00:00-07:00,20.0,15.5,CA-1,s1,2019-07-01 16:00:00-07:00,True
2019-07-01 09:30:00-07:00,2019-07-01 12:00:00-07:00,5.0,5.0,CA-2,s2,2019-07-01 12:00:00-07:00,False
2019-07-02 23:30:00-07:00,2019-07-03 07:00:00-07:00,0.0,0.0,CA-1,s3,2019-07-03 07:00:00-07:00,False
2019-07-05 08:00:00-07:00,2019-07-05 10:00:00-07:00,8.0,8.0,CA-3,s4,2019-07-05 10:00:00-07:00,True
"""


def test_parse_acn_and_window() -> None:
    rows = parse_acn(io.StringIO(ACN))
    assert len(rows) == 4 and rows[0].station_id == "CA-1" and rows[0].claimed
    assert rows[0].arrival == datetime(2019, 7, 1, 15, 0, tzinfo=UTC)
    assert [s.session_id for s in window(rows, date(2019, 7, 1), 1, "America/Los_Angeles")] == ["s1", "s2"]
    # 2019-07-02 23:30 local is 06:30 UTC on the 3rd, but still inside the second local day
    assert [s.session_id for s in window(rows, date(2019, 7, 1), 2, "America/Los_Angeles")] == ["s1", "s2", "s3"]
    assert [s.session_id for s in window(rows, date(2019, 7, 3), 3, "America/Los_Angeles")] == ["s4"]


def test_parse_acn_errors() -> None:
    with pytest.raises(ReplayError, match="missing columns"):
        parse_acn(io.StringIO("a,b\n1,2\n"))
    with pytest.raises(ReplayError, match="line 2: arrival"):
        parse_acn(io.StringIO(ACN.splitlines()[0] + "\nyesterday,2019-07-01 17:00:00-07:00,1,1,X,s,"
                              "2019-07-01 17:00:00-07:00,True\n"))
    with pytest.raises(ReplayError, match="--data-dir"):
        read_acn(Path("/nonexistent/acn.csv.gz"))


def test_station_map_and_rows() -> None:
    rows = parse_acn(io.StringIO(ACN))
    m = station_mapping(rows, "auto", 3, {})
    assert m == {"CA-1": 0, "CA-2": 1, "CA-3": 2}
    with pytest.raises(ReplayError, match="fleet.count is 2"):
        station_mapping(rows, "auto", 2, {})
    assert station_mapping(rows, {"CA-3": 1, "CA-1": "X-0002"}, 2, {"X-0002": 1}) == {"CA-3": 0, "CA-1": 1}
    out, stats = to_rows(rows, {"CA-1": 0, "CA-2": 1}, "requested")
    assert [r.session_id for r in out] == ["s1", "s2"]
    assert stats == {"replay_rows": 4, "replay_unmapped": 1, "replay_no_energy": 1}
    assert out[0].energy_wh == 20_000 and out[0].stated_departure < out[0].departure
    out2, _ = to_rows(rows, {"CA-1": 0}, "delivered")
    assert out2[0].energy_wh == 15_500


def test_replay_scenario_from_data_dir(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "mini.csv.gz", "wt") as fh:
        fh.write(ACN)
    text = """
name: r
site: {id: s, grid_limit_kw: 20, timezone: America/Los_Angeles}
fleet: {count: 3, phases: 1}
arrivals: {replay: {csv: mini.csv.gz, start: 2019-07-01, days: 7}}
"""
    scn = parse_scenario(text)
    plan = expand(scn, data_dir=tmp_path)
    assert plan.start == datetime(2019, 7, 1, 7, 0, tzinfo=UTC) and plan.duration_s == 7 * 86400
    s = plan.sessions[0][0]
    assert s.arrival == datetime(2019, 7, 1, 15, 0, tzinfo=UTC)
    assert s.departure == datetime(2019, 7, 2, 0, 0, tzinfo=UTC)               # the real departure
    assert s.stated_departure == datetime(2019, 7, 1, 23, 0, tzinfo=UTC)       # the driver's estimate
    assert plan.stats["sessions"] == 3
    with pytest.raises(ReplayError, match="not found"):
        expand(scn, data_dir=tmp_path / "nope")


# ----------------------------------------------------------------------------------------- thresholds
def test_threshold_parser() -> None:
    t = parse_threshold(" satisfied_pct >= 95 ")
    assert (t.metric, t.op, t.value) == ("satisfied_pct", ">=", 95.0)
    assert str(parse_threshold("max_violation_kw<=0")) == "max_violation_kw<=0"
    assert parse_threshold("peak_kw<1.5e2").value == 150.0
    for bad in ("satisfied_pct=>95", "satisfied_pct>=", ">=3", "nope<=1", "peak_kw<=abc"):
        with pytest.raises(ValueError):
            parse_threshold(bad)


def test_threshold_evaluation() -> None:
    m = {"max_violation_kw": 0.0, "satisfied_pct": 93.5, "revenue": "n/a", "violations": 2}
    res = evaluate_thresholds(m, ["max_violation_kw<=0", "satisfied_pct>=95", "revenue>0", "violations!=0",
                                  "violations<2"])
    assert [r["ok"] for r in res] == [True, False, False, True, False]
    assert res[1]["reason"] == "satisfied_pct = 93.5, wanted >= 95"
    assert "n/a" in res[2]["reason"]


# ------------------------------------------------------------------------------------- report (synthetic)
def _synthetic() -> tuple:  # type: ignore[type-arg]
    scn = parse_scenario("""
name: syn
start: 2024-05-06T00:00:00Z
duration_h: 4
site:
  id: s1
  grid_limit_kw: 20
  limit_schedule: [{start: "02:00", end: "03:00", limit_kw: 10}]
  base_load: {constant_kw: 2}
fleet: {count: 2}
arrivals:
  poisson:
    rate_per_hour: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    dwell_h: {mean: 1}
    energy_kwh: {mean: 5}
thresholds: ["max_violation_kw<=0"]
violation_tolerance_kw: 0.05
""")
    plan = expand(scn)
    m = EVModel("m", capacity_wh=60_000, max_power_w=11_000, phases=3)
    h = lambda x: T0 + timedelta(hours=x)  # noqa: E731
    plan.sessions = [[SessionPlan(0, h(0.5), h(3.5), 20_000, 0.2, m, "A", h(3), {"stated_departure": h(3).isoformat()})],
                     [SessionPlan(1, h(1), h(5), 30_000, 0.2, m, "B", h(5), {"stated_departure": h(5).isoformat()})]]
    r1, r2 = Recorder("SIM-0001"), Recorder("SIM-0002")
    # charger 1: 8 kW from 0:30 to 2:30 (16 kWh), then idle until it leaves at 3:30
    r1.samples += [PowerSample(h(0.5), 1, 11_000, 8_000, 0, 0.2, "Charging"),
                   PowerSample(h(2.5), 1, 11_000, 0, 16_000, 0.5, "SuspendedEV"),
                   PowerSample(h(3.5), 1, 11_000, 0, 16_000, 0.5, "Available")]
    # charger 2: 11 kW from 1:00 to 4:00 -> 2:00-2:30 load 2+8+11 = 21 > 10 limit; 2:30-3:00 13 > 10
    r2.samples += [PowerSample(h(1), 1, 11_000, 11_000, 0, 0.2, "Charging")]
    r2.errors.append(ErrorRecord(h(1), "MeterValues", "TimeoutError"))
    summary = RunSummary(T0, h(4), 2, 2,
                         [SessionResult("SIM-0001", "1", "A", h(0.5), h(3.5), 20_000, 16_000, True),
                          SessionResult("SIM-0002", "2", "B", h(1), h(5), 30_000, 33_000, True)],
                         11_000, 49_000, {"BootNotification": 2, "MeterValues": 10}, {"SetChargingProfile": 4},
                         1, {"SIM-0002": 1}, 0)
    return plan, summary, [r1, r2]


def test_site_timeline_and_violations_are_exact() -> None:
    plan, _, recs = _synthetic()
    tl = site_timeline(plan, recs)
    assert max(tl.load_kw(i) for i in range(len(tl.times) - 1)) == pytest.approx(21.0)
    v = violations(tl, 0.05)
    # 1:00-2:00: 21 > 20; 2:00-2:30: 21 > 10; 2:30-3:00: 13 > 10 -> one contiguous interval of 2 h
    assert v["count"] == 1 and v["max_excess_kw"] == pytest.approx(11.0) and v["duration_min"] == pytest.approx(120)
    assert v["first_at"] == "2024-05-06T01:00:00+00:00"


def test_report_aggregation(tmp_path: Path) -> None:
    plan, summary, recs = _synthetic()
    rep = build_report(plan, summary, recs, solve_times_s=[0.1, 0.2, 0.3], invoices=None,
                       runtime={"wall_s": 1.0}, extra_thresholds=["satisfied_pct>=95"])
    site = rep["sites"]["s1"]
    assert site["peak_kw"] == pytest.approx(21.0) and site["violations"]["count"] == 1
    assert site["energy"]["requested_kwh"] == pytest.approx(50.0)
    assert site["energy"]["delivered_kwh"] == pytest.approx(49.0)
    s1, s2 = rep["sessions"]
    assert s1["deliverable_kwh"] == pytest.approx(20.0) and s1["satisfied"] is False   # 16 < 0.95 x 20
    assert s1["overstay_min"] == pytest.approx(30) and s1["idle_min"] == pytest.approx(60)
    assert s2["open"] is True and s2["satisfied"] is None            # still plugged in at the end
    assert site["satisfied_pct"] == 0.0 and site["sessions"]["open"] == 1
    assert rep["metrics"]["max_violation_kw"] == pytest.approx(11.0)
    assert rep["passed"] is False
    assert [t["ok"] for t in rep["thresholds"]] == [False, False]
    assert rep["solver"]["count"] == 3 and rep["solver"]["max_s"] == 0.3
    assert rep["billing"]["revenue"] == "n/a" and rep["metrics"]["penalties"] == "n/a"
    assert rep["ocpp"]["errors_by_kind"] == {"MeterValues": 1}
    det = deterministic_view(rep)
    assert "runtime" not in det and "solver" not in det and "solve_p95_s" not in det["metrics"]
    md = to_markdown(rep)
    assert "**FAILED**" in md and "max_violation_kw<=0" in md
    files = write_report(rep, tmp_path, plan=plan, recorders=recs)
    assert json.loads((tmp_path / "report.json").read_text())["sites"]["s1"]["peak_kw"] == pytest.approx(21.0)
    assert {f.name for f in files} >= {"report.json", "report.md", "site_load.png", "energy.png"}
    assert (tmp_path / "site_load.png").stat().st_size > 10_000


def test_report_outbox_delay_and_logged_errors() -> None:
    plan, summary, recs = _synthetic()
    recs[0].outbox_delays_s += [1.0, 2.0, 3.0, 300.0]
    recs[1].outbox_delays_s += [0.5]
    rep = build_report(plan, summary, recs, log_errors=["csms.smart: re-plan failed site=s1 [RuntimeError: x]"],
                       extra_thresholds=["log_errors<=0", "outbox_delay_p95_s<=60"])
    assert rep["ocpp"]["outbox_delay"] == {"messages": 5, "p50_s": 2.0, "p95_s": 300.0, "max_s": 300.0}
    assert rep["metrics"]["outbox_delay_max_s"] == 300.0 and rep["metrics"]["log_errors"] == 1
    assert [t["ok"] for t in rep["thresholds"]][-2:] == [False, False]
    md = to_markdown(rep)
    assert "1 ERROR log record(s)" in md and "re-plan failed" in md and "Outbox delay" in md
    quiet = build_report(plan, summary, [_without_delays(r) for r in recs])
    assert quiet["metrics"]["log_errors"] == "n/a" and quiet["metrics"]["outbox_delay_p95_s"] == "n/a"


def _without_delays(r: Recorder) -> Recorder:
    r.outbox_delays_s = []
    return r


def test_invoice_totals() -> None:
    from simulator.report import invoice_totals

    inv = [{"currency": "EUR", "total": "9.08", "lines": [{"kind": "energy", "amount": "4.13"},
                                                         {"kind": "overstay", "amount": "3.00"}]},
           {"total": {"amount": "1.00", "currency": "EUR"}, "lines": []}]
    assert invoice_totals(inv) == {"invoices": 2, "revenue": 10.08, "penalties": 3.0, "currency": "EUR"}


def test_shipped_replay_week_runs_from_a_fresh_clone() -> None:
    """The replay scenario's week ships in scenarios/data/acn/: no --data-dir needed."""
    root = Path(__file__).resolve().parents[3]
    scn = load_scenario(root / "scenarios" / "replay-caltech-week.yaml")
    plan = expand(scn)
    assert plan.stats["replay_rows"] == 129
    assert plan.stats["sessions"] >= 120
    assert (root / "scenarios" / "data" / "acn" / "LICENSE-CC-BY-4.0.txt").exists()


def test_progress_lines_without_a_terminal_every_few_percent_with_eta() -> None:
    from simulator.run import Progress

    out, now = io.StringIO(), [0.0]
    p = Progress(out, tty=False, every_pct=5, monotonic=lambda: now[0])
    for i in range(101):
        now[0] = i * 2.0          # 2 s per percent: 200 s in all
        p.show("state", i / 100)
    p.done()
    lines = out.getvalue().splitlines()
    assert len(lines) == 20                                     # 5, 10, ..., 100 %
    assert lines[0] == "  5.0% state | ETA 3m10s"                # 10 s for 5 %: 190 s left
    assert lines[-1] == "100.0% state | ETA 0m00s"
    assert "\r" not in out.getvalue()
    tty = io.StringIO()
    p = Progress(tty, tty=True, monotonic=lambda: 0.0)
    p.show("a", 0.0)
    p.show("b", 0.5)
    p.done()
    assert tty.getvalue().startswith("\r  0.0% a | ETA ?") and tty.getvalue().endswith("\n")
    quiet = io.StringIO()
    Progress(quiet, enabled=False, tty=False).show("x", 1.0)
    assert quiet.getvalue() == ""


def test_billing_check_matches_invoices_to_ended_transactions() -> None:
    from simulator.report import billing_check

    ended = {("CP-1", "1"), ("CP-2", "t-2"), ("CP-3", "3")}
    inv = [{"station_id": "CP-1", "transaction_id": "1", "total": "1.10"},
           {"station_id": "CP-2", "transaction_id": "t-2", "total": "2.205"},
           {"station_id": "CP-2", "transaction_id": "t-2", "total": "2.205"}]   # billed twice
    got = billing_check(inv, ended, {"total": "5.51"})
    assert (got["ended_sessions"], got["invoiced_sessions"], got["invoiced_pct"]) == (3, 2, 66.67)
    assert got["duplicate_invoices"] == 1 and got["not_invoiced"] == ["CP-3/3"]
    assert got["revenue_diff"] == 0.0  # exact decimals: 1.10 + 2.205 + 2.205
    assert billing_check(inv, ended, {"total": "5.50"})["revenue_diff"] == 0.01
    assert billing_check(None, ended, None)["invoiced_pct"] == "n/a"
    assert billing_check([], set(), None)["invoiced_pct"] == 100.0
