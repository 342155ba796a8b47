"""End to end: the CI scenarios against the real CSMS started in-process (``--with-csms``), with reports.

ci-1.6 and ci-2.0.1 must pass their thresholds (no site-limit violation, drivers satisfied, all chargers booted)
with nothing logged as an error; a missed threshold, from the scenario YAML or from --assert, must make the CLI
exit non-zero and name it. About 45 s in total.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.__main__ import parse_args
from simulator.run import run_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scenario", ["ci-1.6", "ci-2.0.1"])
def test_ci_scenario_with_in_process_csms(scenario: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    ns = parse_args(["run", str(ROOT / "scenarios" / f"{scenario}.yaml"), "--with-csms", "--quiet",
                     "--report-dir", str(out)])
    assert run_command(ns) == 0
    rep = json.loads((out / "report.json").read_text())
    site = next(iter(rep["sites"].values()))
    assert rep["passed"] is True
    assert site["violations"]["count"] == 0 and rep["metrics"]["max_violation_kw"] == 0
    assert site["peak_kw"] <= site["grid_limit_kw"]
    assert site["energy"]["delivered_kwh"] > 0
    assert rep["ocpp"]["booted"] == rep["ocpp"]["chargers"] == 4
    assert rep["ocpp"]["charger_limit_violations"] == 0
    assert rep["ocpp"]["received"].get("SetChargingProfile", 0) > 0        # the CSMS did smart charging
    assert rep["runtime"]["csms"] == "in-process"
    m = rep["metrics"]  # exactly-once billing: every ended session has its one invoice
    assert m["ended_sessions"] > 0 and m["invoiced_pct"] == 100 and m["invoices"] == m["ended_sessions"]
    assert m["duplicate_invoices"] == 0 and m["revenue_diff"] == 0
    assert isinstance(rep["solver"]["count"], int) and rep["solver"]["count"] > 0
    # what users care about: drivers got (nearly) what their stay allowed, on both protocol versions alike
    assert rep["metrics"]["satisfied_pct"] >= 95, rep["sessions"]
    assert any(t["metric"] == "satisfied_pct" for t in rep["thresholds"])       # the scenario asserts it too
    assert rep["metrics"]["log_errors"] == 0, rep["log"]                         # nothing failed on the way
    assert (out / "report.md").exists() and (out / "site_load.png").exists() and (out / "energy.png").exists()


def test_impossible_threshold_fails_the_run(tmp_path: Path) -> None:
    out = tmp_path / "report"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "run", "scenarios/ci-1.6.yaml", "--with-csms", "--quiet",
         "--duration-h", "0.5", "--no-plots", "--report-dir", str(out), "--assert", "peak_kw>=1000"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "THRESHOLD FAILED: peak_kw>=1000" in proc.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["passed"] is False
    assert [t["ok"] for t in rep["thresholds"] if t["threshold"] == "peak_kw>=1000"] == [False]


def test_scenario_thresholds_fail_the_command_and_assert_adds_to_them(tmp_path: Path) -> None:
    """A threshold in the scenario YAML that is missed makes the CLI exit 1 (not only the report say FAILED),
    and --assert adds to the scenario's thresholds instead of replacing them."""
    text = (ROOT / "scenarios/ci-1.6.yaml").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("thresholds:")]
    scn = tmp_path / "ci-yaml-thresholds.yaml"
    scn.write_text("\n".join([*lines, 'thresholds: ["max_violation_kw<=0", "energy_delivered_kwh>=99999"]', ""]))
    out = tmp_path / "report"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "run", str(scn), "--with-csms", "--quiet", "--duration-h", "0.5",
         "--no-plots", "--report-dir", str(out), "--assert", "booted_pct>=100"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "THRESHOLD FAILED: energy_delivered_kwh>=99999" in proc.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["passed"] is False
    assert [(t["threshold"], t["ok"]) for t in rep["thresholds"]] == [
        ("max_violation_kw<=0", True), ("energy_delivered_kwh>=99999", False), ("booted_pct>=100", True)]


def test_bad_scenario_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "scenarios/ci-1.6.yaml").read_text().replace("count: 4", "count: -1"))
    assert run_command(parse_args(["run", str(bad), "--quiet"])) == 2
    assert run_command(parse_args(["run", str(ROOT / "scenarios/ci-1.6.yaml"), "--quiet",
                                   "--assert", "nonsense>=1"])) == 2


#: What scenario runs printed at their end (issue 13, first hour point 7), after PASSED: the planner's pool
#: refusing a plan requested while the CSMS stopped, in a task nobody awaited. Not reproduced since (50-odd
#: short and full runs, alone and four at a time); SolverThread.submit answers a cancelled future after
#: shutdown. (Under load a run may still end with SQLAlchemy's "Exception during reset or similar
#: [CancelledError]": a different error, not asserted here.)
SHUTDOWN_NOISE = ("cannot schedule new futures after shutdown", "Task exception was never retrieved")


@pytest.mark.parametrize("scenario", ["public", "ci-2.0.1"])
def test_a_short_scenario_ends_without_shutdown_errors(scenario: str, tmp_path: Path) -> None:
    """The user's command, cut short so that it ends while cars charge, bookings are open and the planner is
    busy (the moment a late plan request would hit a stopped planner): neither error is in its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "run", f"scenarios/{scenario}.yaml", "--with-csms", "--duration-h", "0.5",
         "--no-plots", "--report-dir", str(tmp_path / "report")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert (tmp_path / "report" / "report.json").exists(), out[-3000:]   # it ran to the end
    for noise in SHUTDOWN_NOISE:
        assert noise not in out, f"{noise!r} in the output:\n{out[-4000:]}"
