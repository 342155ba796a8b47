#!/usr/bin/env python3
"""Fail unless two scenario reports agree on a metric, e.g. the OCPP 1.6 and 2.0.1 CI runs of the same sessions.

    scripts/compare_reports.py reports/ci-1.6 reports/ci-2.0.1                 # satisfied_pct within 2 points
    scripts/compare_reports.py A/report.json B/report.json --metric delivered_pct --max-diff 5

Each argument is a report directory (``--report-dir`` of ``python -m simulator run``) or its ``report.json``.
Reads ``report["metrics"][METRIC]``. Exit status: 0 the two values are within ``--max-diff`` of each other;
1 they are not, or a value is missing / n/a (the message says which and why); 2 bad arguments or unreadable
reports. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def load(path: str) -> tuple[dict[str, Any], Path]:
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    try:
        return json.loads(p.read_text()), p
    except FileNotFoundError:
        raise SystemExit(f"error: {p} not found (did the scenario run write its report there?)") from None
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: cannot read {p}: {e}") from None


def value(report: dict[str, Any], metric: str) -> float | None:
    v = (report.get("metrics") or {}).get(metric)
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
        return None
    return float(v)


def name(report: dict[str, Any], path: Path) -> str:
    sc = report.get("scenario") or {}
    return f"{sc.get('name', '?')} ({path})"


def compare(a: dict[str, Any], pa: Path, b: dict[str, Any], pb: Path, metric: str, max_diff: float) -> tuple[bool, str]:
    """(ok, message) for ``|a[metric] - b[metric]| <= max_diff``."""
    va, vb = value(a, metric), value(b, metric)
    missing = [f"{metric} is n/a in {name(r, p)} (value {r.get('metrics', {}).get(metric)!r})"
               for r, p, v in ((a, pa, va), (b, pb, vb)) if v is None]
    if missing:
        return False, "; ".join(missing)
    assert va is not None and vb is not None
    diff = abs(va - vb)
    text = (f"{metric}: {va:g} in {name(a, pa)} vs {vb:g} in {name(b, pb)}: differ by {diff:g}, "
            f"allowed {max_diff:g}")
    return diff <= max_diff + 1e-9, text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="report directory or report.json")
    ap.add_argument("b", help="report directory or report.json")
    ap.add_argument("--metric", default="satisfied_pct", help="flat metric name in report['metrics'] (default satisfied_pct)")
    ap.add_argument("--max-diff", type=float, default=2.0, help="largest allowed absolute difference (default 2)")
    ns = ap.parse_args(argv)
    if ns.max_diff < 0:
        ap.error("--max-diff must be >= 0")
    try:
        (ra, pa), (rb, pb) = load(ns.a), load(ns.b)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    ok, text = compare(ra, pa, rb, pb, ns.metric, ns.max_diff)
    if ok:
        print(f"ok: {text}")
        return 0
    print(f"COMPARISON FAILED: {text}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
