"""scripts/compare_reports.py: two scenario reports must agree on a metric (used by .ci/run for 1.6 vs 2.0.1)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "compare_reports.py"
_spec = importlib.util.spec_from_file_location("compare_reports", SCRIPT)
assert _spec and _spec.loader
cr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cr)


def _report(tmp: Path, name: str, **metrics: Any) -> Path:
    d = tmp / name
    d.mkdir()
    (d / "report.json").write_text(json.dumps({"scenario": {"name": name}, "metrics": metrics}))
    return d


def test_within_and_beyond_the_allowed_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _report(tmp_path, "ci-1.6", satisfied_pct=100.0, delivered_pct=99.0)
    b = _report(tmp_path, "ci-2.0.1", satisfied_pct=98.5, delivered_pct=80.0)
    assert cr.main([str(a), str(b)]) == 0
    assert "ok: satisfied_pct: 100 in ci-1.6" in capsys.readouterr().out
    assert cr.main([str(a), str(b / "report.json"), "--metric", "delivered_pct"]) == 1
    err = capsys.readouterr().err
    assert "COMPARISON FAILED: delivered_pct: 99 in ci-1.6" in err and "differ by 19, allowed 2" in err
    assert cr.main([str(a), str(b), "--metric", "delivered_pct", "--max-diff", "19"]) == 0


def test_na_or_missing_metric_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _report(tmp_path, "a", satisfied_pct=100.0)
    b = _report(tmp_path, "b", satisfied_pct=None)      # e.g. every session still open at the end
    assert cr.main([str(a), str(b)]) == 1
    assert "satisfied_pct is n/a in b" in capsys.readouterr().err
    assert cr.main([str(a), str(a), "--metric", "nonsense"]) == 1


def test_unreadable_report_exits_2(tmp_path: Path) -> None:
    a = _report(tmp_path, "a", satisfied_pct=100.0)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(a), str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not found" in proc.stderr
