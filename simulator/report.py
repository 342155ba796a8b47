"""Run reports: aggregation (pure), thresholds (pure), JSON/Markdown writers and PNG plots (matplotlib, Agg).

Definitions (also in docs/simulator.md, "Scenarios"):

- **Site load** = base load (scenario) + the sum of the simulated chargers' *measured* power. Samples are
  piecewise constant per EVSE, so the peak and the violations are exact, not sampled.
- **Limit** at time t = the grid limit, or a ``limit_schedule`` window's limit while it is active.
- **Violation** = an interval where load > limit + ``violation_tolerance_kw`` (A/W rounding); reported as
  count of intervals, largest excess (kW, 0 when none) and total duration (min).
- **Deliverable** energy of a session = what the EV could have taken with no site limit during its actual stay:
  ``min(requested, battery room, charger/EV max power with taper x dwell)``.
- **Satisfied** driver: delivered >= 95 % of deliverable. Sessions still plugged in at the end of the run
  ("open") are left out of the share; a session that never started counts as not satisfied.
- **Overstay** minutes = actual departure - stated departure (> 0); **idle** minutes = plugged in after the EV
  stopped drawing power. Penalties and revenue come from the CSMS's invoices when the API has them, else "n/a".

Fields that depend on wall-clock time (``runtime``, ``solver``) are listed in :data:`WALL_CLOCK_KEYS` and
left out of :func:`deterministic_view`.
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from simulator.fleet import RunSummary
    from simulator.recorder import Recorder
    from simulator.scenario import RunPlan, Window

SATISFIED_SHARE = 0.95
WALL_CLOCK_KEYS = ("runtime", "solver")
WALL_CLOCK_METRICS = ("solve_", "outbox_delay_")

# -------------------------------------------------------------------------------------------- thresholds
_OPS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt,
        ">": operator.gt}
_THRESHOLD = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*(-?[0-9]+(?:\.[0-9]*)?(?:e-?[0-9]+)?)\s*$")

#: Flat metrics a threshold may name (report["metrics"]).
METRICS = {
    "max_violation_kw": "largest excess of site load over the limit (kW, beyond the tolerance)",
    "violations": "number of intervals with the site load over the limit",
    "violation_min": "total minutes with the site load over the limit",
    "peak_kw": "peak site load (base load + chargers' measured power)",
    "limit_kw": "grid limit (kW)",
    "energy_requested_kwh": "energy requested by the drivers",
    "energy_deliverable_kwh": "energy physically deliverable with no site limit",
    "energy_delivered_kwh": "energy delivered",
    "delivered_pct": "delivered / deliverable (%) over closed sessions",
    "satisfied_pct": "closed sessions with delivered >= 95 % of deliverable (%)",
    "sessions": "sessions that arrived",
    "sessions_started": "sessions whose transaction started",
    "sessions_failed": "sessions with an error (no start, rejected, ...)",
    "turned_away": "EVs that found no free charger",
    "overstay_min": "minutes drivers stayed past their stated departure",
    "idle_min": "minutes plugged in after charging stopped",
    "ocpp_errors": "errors recorded by the chargers (CALLERRORs, timeouts, connection errors)",
    "callerrors": "CALLERROR frames in either direction",
    "charger_limit_violations": "samples where a charger drew more than its own active profile allowed",
    "booted_pct": "chargers that booted (%)",
    "bookings_failed": "bookings the CSMS refused",
    "penalties": "overstay penalties invoiced (currency units)",
    "revenue": "invoiced total (currency units)",
    "invoices": "invoices the CSMS's API lists after the run",
    "ended_sessions": "transactions the chargers ended during the run",
    "invoiced_pct": "ended transactions with an invoice (%): exactly-once billing wants 100",
    "duplicate_invoices": "invoices beyond the first for one transaction (exactly-once billing wants 0)",
    "revenue_diff": "|CSMS revenue report total - sum of the invoices' totals| (currency units, exact)",
    "outbox_delay_p95_s": "95th percentile of the simulated seconds a charger's message waited to be sent "
                          "(CSMS answering too slowly for the speed-up makes every event reach it late)",
    "outbox_delay_max_s": "largest simulated seconds a charger's message waited to be sent",
    "log_errors": "ERROR log records during the run (simulator and, with --with-csms, the CSMS)",
    "solve_p95_s": "95th percentile planner solve time (s, wall clock)",
    "solve_max_s": "largest planner solve time (s, wall clock)",
}


@dataclass(frozen=True, slots=True)
class Threshold:
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_threshold(text: str) -> Threshold:
    m = _THRESHOLD.match(text)
    if not m:
        raise ValueError(f"{text!r} is not METRIC OP NUMBER (e.g. 'satisfied_pct>=95'; OP one of <= >= < > == !=)")
    if m.group(1) not in METRICS:
        raise ValueError(f"unknown metric {m.group(1)!r} (known: {', '.join(sorted(METRICS))})")
    return Threshold(m.group(1), m.group(2), float(m.group(3)))


def evaluate_thresholds(metrics: dict[str, Any], thresholds: list[str | Threshold]) -> list[dict[str, Any]]:
    """One row per threshold: ``{threshold, metric, value, ok, reason}``. A metric that is n/a fails."""
    out = []
    for t in thresholds:
        th = t if isinstance(t, Threshold) else parse_threshold(t)
        v = metrics.get(th.metric)
        if not isinstance(v, int | float) or isinstance(v, bool) or math.isnan(v):
            out.append({"threshold": str(th), "metric": th.metric, "value": v, "ok": False,
                        "reason": f"{th.metric} is n/a in this run"})
            continue
        ok = bool(_OPS[th.op](v, th.value))
        out.append({"threshold": str(th), "metric": th.metric, "value": v, "ok": ok,
                    "reason": "" if ok else f"{th.metric} = {v:g}, wanted {th.op} {th.value:g}"})
    return out


# --------------------------------------------------------------------------------------------- timeline
def _in_window(local: datetime, w: Window) -> bool:
    t = local.time()
    if w.end > w.start:
        return w.start <= t < w.end
    return t >= w.start or t < w.end     # wraps past midnight (end == start: all day)


def _window_value(at: datetime, tz: ZoneInfo, windows: list[Window]) -> float | None:
    local = at.astimezone(tz)
    for w in windows:
        if _in_window(local, w):
            return w.limit_kw
    return None


def _window_edges(start: datetime, end: datetime, tz: ZoneInfo, windows: list[Window]) -> list[datetime]:
    out = []
    day = start.astimezone(tz).date() - timedelta(days=1)
    while datetime.combine(day, time(0), tz) < end:
        for w in windows:
            for t in (w.start, w.end):
                e = datetime.combine(day, t, tz).astimezone(UTC)
                if start < e < end:
                    out.append(e)
        day += timedelta(days=1)
    return out


@dataclass(slots=True)
class SiteTimeline:
    """Piecewise-constant site series: value i holds on [times[i], times[i+1])."""

    times: list[datetime]
    chargers_kw: list[float]
    base_kw: list[float]
    limit_kw: list[float]
    per_charger_kw: dict[str, list[float]]

    def load_kw(self, i: int) -> float:
        return self.base_kw[i] + self.chargers_kw[i]


def site_timeline(plan: RunPlan, recorders: list[Recorder], end: datetime | None = None) -> SiteTimeline:
    scn = plan.scenario
    site = scn.site
    tz = ZoneInfo(site.timezone)
    start, end = plan.start, end or plan.end
    events: dict[datetime, list[tuple[str, int, float]]] = {}
    for r in recorders:
        for s in r.samples:
            if s.at < end:
                events.setdefault(max(s.at, start), []).append((r.charger_id, s.evse_id, s.power_w))
    edges = set(events) | {start} | set(_window_edges(start, end, tz, site.limit_schedule)) | set(
        _window_edges(start, end, tz, site.base_load.windows))
    times = sorted(edges)
    ids = [r.charger_id for r in recorders]
    current: dict[tuple[str, int], float] = {}
    tl = SiteTimeline([], [], [], [], {c: [] for c in ids})
    for t in times:
        for cid, evse, p in events.get(t, []):
            current[(cid, evse)] = p
        per: dict[str, float] = dict.fromkeys(ids, 0.0)
        for (cid, _), p in current.items():
            per[cid] += p / 1000
        lim = _window_value(t, tz, site.limit_schedule)
        base = _window_value(t, tz, site.base_load.windows)
        tl.times.append(t)
        tl.chargers_kw.append(sum(per.values()))
        tl.base_kw.append(site.base_load.constant_kw + (base or 0.0))
        tl.limit_kw.append(site.grid_limit_kw if lim is None else min(site.grid_limit_kw, lim))
        for c in ids:
            tl.per_charger_kw[c].append(per[c])
    tl.times.append(end)   # closing edge
    return tl


def violations(tl: SiteTimeline, tolerance_kw: float) -> dict[str, Any]:
    count, longest, total_s, max_excess, inside = 0, 0.0, 0.0, 0.0, False
    first: str | None = None
    for i in range(len(tl.times) - 1):
        excess = tl.load_kw(i) - tl.limit_kw[i]
        dur = (tl.times[i + 1] - tl.times[i]).total_seconds()
        if excess > tolerance_kw and dur > 0:
            if not inside:
                count += 1
                first = first or tl.times[i].isoformat()
            inside = True
            total_s += dur
            max_excess = max(max_excess, excess)
        elif dur > 0:
            inside = False
    return {"count": count, "max_excess_kw": round(max_excess, 3), "duration_min": round(total_s / 60, 2),
            "first_at": first, "tolerance_kw": tolerance_kw}


# ------------------------------------------------------------------------------------------ aggregation
def _pct(a: float, b: float) -> float | None:
    return round(100.0 * a / b, 2) if b > 0 else None


def _stats(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"count": 0}
    s = sorted(xs)
    q = lambda p: s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]  # noqa: E731
    return {"count": len(s), "mean_s": round(sum(s) / len(s), 4), "p50_s": round(q(0.5), 4),
            "p95_s": round(q(0.95), 4), "max_s": round(s[-1], 4)}


def _money(v: Any) -> float | None:
    try:
        return float(v["amount"] if isinstance(v, dict) else v)
    except (TypeError, ValueError, KeyError):
        return None


def invoice_totals(invoices: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Revenue and overstay penalties from GET /api/v1/invoices (shape tolerant; None -> n/a)."""
    if invoices is None:
        return {"invoices": "n/a", "revenue": "n/a", "penalties": "n/a", "currency": None}
    revenue = penalties = 0.0
    currency = None
    for inv in invoices:
        tot = inv.get("total")
        currency = currency or inv.get("currency") or (tot.get("currency") if isinstance(tot, dict) else None)
        revenue += _money(inv.get("total")) or 0.0
        for line in inv.get("lines") or []:
            if "overstay" in str(line.get("kind", "")).lower() or "overstay" in str(line.get("description", "")).lower():
                penalties += _money(line.get("amount")) or 0.0
    return {"invoices": len(invoices), "revenue": round(revenue, 2), "penalties": round(penalties, 2),
            "currency": currency}


def _decimal(v: Any) -> Decimal | None:
    try:
        return Decimal(str(v["amount"] if isinstance(v, dict) else v))
    except (TypeError, ValueError, KeyError, ArithmeticError):
        return None


def billing_check(invoices: list[dict[str, Any]] | None, ended: set[tuple[str, str]],
                  revenue_report: dict[str, Any] | None) -> dict[str, Any]:
    """Exactly-once billing as the report sees it: each transaction a charger ended has an invoice (matched by
    station and transaction id), none has two, and the CSMS's revenue report adds up to its invoices
    (exact decimals). n/a without the CSMS's API."""
    if invoices is None:
        return {"ended_sessions": len(ended), "invoiced_sessions": "n/a", "invoiced_pct": "n/a",
                "duplicate_invoices": "n/a", "revenue_diff": "n/a", "not_invoiced": []}
    keys = [(str(i.get("station_id")), str(i.get("transaction_id"))) for i in invoices]
    invoiced = ended & set(keys)
    total = sum((_decimal(i.get("total")) or Decimal(0) for i in invoices), Decimal(0))
    reported = _decimal((revenue_report or {}).get("total")) if revenue_report else None
    return {
        "ended_sessions": len(ended), "invoiced_sessions": len(invoiced),
        "invoiced_pct": _pct(len(invoiced), len(ended)) if ended else 100.0,
        "duplicate_invoices": len(keys) - len(set(keys)),
        "revenue_diff": float(abs(reported - total)) if reported is not None else "n/a",
        "not_invoiced": [f"{c}/{t}" for c, t in sorted(ended - invoiced)][:20],
    }


def _finish_time(rec: Recorder | None, arrival: datetime, departure: datetime) -> datetime | None:
    """When the EV stopped drawing power (the start of the last zero-power run inside the stay)."""
    if rec is None:
        return None
    last_on: datetime | None = None
    off_after: datetime | None = None
    for s in rec.samples:
        if s.at < arrival or s.at > departure:
            continue
        if s.power_w > 1.0:
            last_on, off_after = s.at, None
        elif last_on is not None and off_after is None:
            off_after = s.at
    return off_after


def _percentile(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]


def build_report(plan: RunPlan, summary: RunSummary, recorders: list[Recorder], *,
                 solve_times_s: list[float] | None = None, invoices: list[dict[str, Any]] | None = None,
                 revenue_report: dict[str, Any] | None = None,
                 bookings: dict[str, Any] | None = None, runtime: dict[str, Any] | None = None,
                 extra_thresholds: list[str] | None = None, source: str = "",
                 log_errors: list[str] | None = None) -> dict[str, Any]:
    """``log_errors``: ERROR log lines captured during the run (None: not captured, the metric is n/a)."""
    scn = plan.scenario
    end = plan.end
    tl = site_timeline(plan, recorders, end)
    viol = violations(tl, scn.violation_tolerance_kw)
    peak_i = max(range(len(tl.times) - 1), key=tl.load_kw, default=0)
    recs = {r.charger_id: r for r in recorders}
    cfgs = {c.charger_id: c for c in plan.charger_configs}
    by_key = {(scn.charger_id(s.charger_index), s.arrival): s for ss in plan.sessions for s in ss}

    rows = []
    for res in sorted(summary.sessions, key=lambda r: (r.arrival, r.charger_id)):
        sp = by_key.get((res.charger_id, res.arrival))
        if sp is None:
            continue
        cfg = cfgs[res.charger_id]
        is_open = sp.departure > end
        deliverable = deliverable_wh(sp, cfg.max_power_w, end)
        stated = sp.stated_departure or datetime.fromisoformat(sp.meta.get("stated_departure", sp.departure.isoformat()))
        fin = _finish_time(recs.get(res.charger_id), sp.arrival, min(sp.departure, end))
        idle_min = max(0.0, (min(sp.departure, end) - fin).total_seconds() / 60) if fin else 0.0
        satisfied = None if is_open else (res.delivered_wh >= SATISFIED_SHARE * deliverable - 1.0)
        rows.append({
            "charger": res.charger_id, "protocol": cfg.protocol, "id_token": res.id_token, "ev": sp.ev_model.name,
            "arrival": sp.arrival.isoformat(), "departure": sp.departure.isoformat(), "stated_departure":
            stated.isoformat(), "requested_kwh": round(sp.energy_wh / 1000, 3),
            "deliverable_kwh": round(deliverable / 1000, 3), "delivered_kwh": round(res.delivered_wh / 1000, 3),
            "started": res.started, "open": is_open, "satisfied": satisfied,
            "overstay_min": round(max(0.0, (sp.departure - stated).total_seconds() / 60), 1),
            "idle_min": round(idle_min, 1), "booked": sp.meta.get("booked") == "True", "error": res.error,
        })
    closed = [r for r in rows if not r["open"]]
    req = sum(r["requested_kwh"] for r in rows)
    dlv = sum(r["delivered_kwh"] for r in rows)
    dlb = sum(r["deliverable_kwh"] for r in rows)
    closed_dlb = sum(r["deliverable_kwh"] for r in closed)
    closed_dlv = sum(r["delivered_kwh"] for r in closed)

    sent, received = dict(sorted(summary.messages_sent.items())), dict(sorted(summary.messages_received.items()))
    callerrors = sum(1 for r in recorders for m in r.messages if m.kind == "CALLERROR")
    err_kinds: dict[str, int] = {}
    err_samples: dict[str, str] = {}
    for r in recorders:
        for e in r.errors:
            k = e.where.split(" ")[0]
            err_kinds[k] = err_kinds.get(k, 0) + 1
            err_samples.setdefault(k, f"{r.charger_id} {e.at.isoformat()} {e.where}: {e.error[:200]}")
    delays = [d for r in recorders for d in r.outbox_delays_s]
    p95, dmax = _percentile(delays, 0.95), max(delays, default=None)
    outbox = {"messages": len(delays), "p50_s": _round(_percentile(delays, 0.5)), "p95_s": _round(p95),
              "max_s": _round(dmax)}
    money = invoice_totals(invoices)
    ended = {(r.charger_id, s.transaction_id) for r in recorders for s in r.sessions if s.stopped_at is not None}
    money.update(billing_check(invoices, ended, revenue_report))
    solver: dict[str, Any] = _stats(solve_times_s) if solve_times_s is not None else {"count": "n/a"}

    site = {
        "id": scn.site.id, "grid_limit_kw": scn.site.grid_limit_kw,
        "min_limit_kw": round(min(tl.limit_kw), 3) if tl.limit_kw else scn.site.grid_limit_kw,
        "peak_kw": round(tl.load_kw(peak_i), 3) if tl.limit_kw else 0.0,
        "peak_at": tl.times[peak_i].isoformat() if tl.limit_kw else None,
        "peak_chargers_kw": round(max(tl.chargers_kw, default=0.0), 3),
        "base_load_peak_kw": round(max(tl.base_kw, default=0.0), 3),
        "violations": viol,
        "energy": {"requested_kwh": round(req, 3), "deliverable_kwh": round(dlb, 3), "delivered_kwh": round(dlv, 3),
                   "metered_kwh": round(summary.energy_wh / 1000, 3)},
        "sessions": {"arrived": len(rows), "started": sum(r["started"] for r in rows), "open": len(rows) - len(closed),
                     "failed": sum(1 for r in rows if r["error"]), "turned_away": plan.stats.get("turned_away", 0),
                     "booked": sum(r["booked"] for r in rows)},
        "satisfied_pct": _pct(sum(1 for r in closed if r["satisfied"]), len(closed)),
        "delivered_pct": _pct(closed_dlv, closed_dlb),
        "overstay_min": round(sum(r["overstay_min"] for r in rows), 1),
        "idle_min": round(sum(r["idle_min"] for r in rows), 1),
        "penalties": money["penalties"], "revenue": money["revenue"], "currency": money["currency"],
    }
    metrics: dict[str, Any] = {
        "max_violation_kw": viol["max_excess_kw"], "violations": viol["count"], "violation_min": viol["duration_min"],
        "peak_kw": site["peak_kw"], "limit_kw": scn.site.grid_limit_kw,
        "energy_requested_kwh": site["energy"]["requested_kwh"],
        "energy_deliverable_kwh": site["energy"]["deliverable_kwh"],
        "energy_delivered_kwh": site["energy"]["delivered_kwh"], "delivered_pct": site["delivered_pct"],
        "satisfied_pct": site["satisfied_pct"], "sessions": len(rows), "sessions_started": site["sessions"]["started"],
        "sessions_failed": site["sessions"]["failed"], "turned_away": site["sessions"]["turned_away"],
        "overstay_min": site["overstay_min"], "idle_min": site["idle_min"],
        "ocpp_errors": summary.errors, "callerrors": callerrors,
        "charger_limit_violations": summary.limit_violations,
        "booted_pct": _pct(summary.booted, summary.chargers),
        "bookings_failed": (bookings or {}).get("failed", 0) if bookings and bookings.get("enabled") else 0,
        "penalties": money["penalties"], "revenue": money["revenue"],
        "invoices": money["invoices"], "ended_sessions": money["ended_sessions"],
        "invoiced_pct": money["invoiced_pct"], "duplicate_invoices": money["duplicate_invoices"],
        "revenue_diff": money["revenue_diff"],
        "outbox_delay_p95_s": outbox["p95_s"] if delays else "n/a",
        "outbox_delay_max_s": outbox["max_s"] if delays else "n/a",
        "log_errors": len(log_errors) if log_errors is not None else "n/a",
        "solve_p95_s": solver.get("p95_s", "n/a"), "solve_max_s": solver.get("max_s", "n/a"),
    }
    thresholds = list(dict.fromkeys([*scn.thresholds, *(extra_thresholds or [])]))
    results = evaluate_thresholds(metrics, thresholds)
    return {
        "scenario": {"name": scn.name, "source": source, "description": scn.description, "seed": plan_seed(plan),
                     "start": plan.start.isoformat(), "end": end.isoformat(), "duration_h": round(plan.duration_s / 3600, 3),
                     "speedup": scn.speedup, "chargers": len(plan.charger_configs),
                     "protocols": {p: sum(c.protocol == p for c in plan.charger_configs)
                                   for p in sorted({c.protocol for c in plan.charger_configs})},
                     "plan_digest": plan.digest(), "plan_stats": plan.stats},
        "sites": {scn.site.id: site},
        "ocpp": {"booted": summary.booted, "chargers": summary.chargers, "sent": sent, "received": received,
                 "messages": sum(sent.values()) + sum(received.values()), "callerrors": callerrors,
                 "errors": summary.errors, "errors_by_kind": dict(sorted(err_kinds.items())),
                 "error_examples": dict(sorted(err_samples.items())),
                 "errors_by_charger": dict(sorted(summary.errors_by_charger.items())),
                 "charger_limit_violations": summary.limit_violations, "outbox_delay": outbox},
        "log": {"errors": len(log_errors) if log_errors is not None else "n/a",
                "examples": (log_errors or [])[:5]},
        "bookings": bookings or {"enabled": False},
        "billing": money,
        "metrics": metrics,
        "thresholds": results,
        "passed": all(r["ok"] for r in results),
        "sessions": rows,
        "solver": solver,
        "runtime": runtime or {},
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def plan_seed(plan: RunPlan) -> int:
    return int(plan.stats.get("seed", plan.scenario.seed))


def deliverable_wh(*a: Any, **k: Any) -> float:
    from simulator.scenario import deliverable_wh as d
    return d(*a, **k)


def deterministic_view(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the wall-clock fields (runtime, solver times, how long messages waited for the CSMS
    and the metrics derived from them)."""
    out = {k: v for k, v in report.items() if k not in WALL_CLOCK_KEYS}
    out["metrics"] = {k: v for k, v in report.get("metrics", {}).items() if not k.startswith(WALL_CLOCK_METRICS)}
    out["thresholds"] = [t for t in report.get("thresholds", []) if not t["metric"].startswith(WALL_CLOCK_METRICS)]
    if isinstance(out.get("ocpp"), dict):
        out["ocpp"] = {k: v for k, v in out["ocpp"].items() if k != "outbox_delay"}
    return out


# ------------------------------------------------------------------------------------------------ output
def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.0f}"
    return str(v)


def to_markdown(report: dict[str, Any], plots: list[str] | None = None) -> str:
    sc = report["scenario"]
    lines = [f"# Scenario `{sc['name']}` (seed {sc['seed']})", ""]
    if sc.get("description"):
        lines += [sc["description"].strip(), ""]
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines += [f"**{verdict}** — {sc['chargers']} chargers ({', '.join(f'{k}: {v}' for k, v in sc['protocols'].items())}), "
              f"{sc['start']} → {sc['end']} ({sc['duration_h']} h simulated at ×{sc['speedup']:g}), "
              f"plan digest `{sc['plan_digest']}`.", ""]
    if report["thresholds"]:
        lines += ["## Thresholds", "", "| threshold | value | result |", "|---|---|---|"]
        for t in report["thresholds"]:
            lines.append(f"| `{t['threshold']}` | {_fmt(t['value'])} | {'ok' if t['ok'] else 'FAILED: ' + t['reason']} |")
        lines.append("")
    for sid, s in report["sites"].items():
        v, e, n = s["violations"], s["energy"], s["sessions"]
        cur = f" {s['currency']}" if s.get("currency") else ""
        bl = report.get("billing") or {}
        lines += [f"## Site `{sid}`", "", "| | |", "|---|---|",
                  f"| grid limit | {_fmt(s['grid_limit_kw'])} kW (lowest scheduled {_fmt(s['min_limit_kw'])} kW) |",
                  f"| peak load (base + chargers) | {_fmt(s['peak_kw'])} kW at {s['peak_at']} |",
                  f"| peak of the chargers alone | {_fmt(s['peak_chargers_kw'])} kW (base load up to {_fmt(s['base_load_peak_kw'])} kW) |",
                  f"| violations | {v['count']} (largest {_fmt(v['max_excess_kw'])} kW, {_fmt(v['duration_min'])} min; tolerance {v['tolerance_kw']} kW) |",
                  f"| energy requested / deliverable / delivered | {_fmt(e['requested_kwh'])} / {_fmt(e['deliverable_kwh'])} / {_fmt(e['delivered_kwh'])} kWh |",
                  f"| delivered of deliverable (closed sessions) | {_fmt(s['delivered_pct'])} % |",
                  f"| drivers satisfied (≥95 % of deliverable) | {_fmt(s['satisfied_pct'])} % |",
                  f"| sessions arrived / started / open at end / failed / turned away / booked | {n['arrived']} / {n['started']} / {n['open']} / {n['failed']} / {n['turned_away']} / {n['booked']} |",
                  f"| overstay past stated departure | {_fmt(s['overstay_min'])} min |",
                  f"| idle after charging | {_fmt(s['idle_min'])} min |",
                  f"| penalties / revenue | {_fmt(s['penalties'])}{cur} / {_fmt(s['revenue'])}{cur} |",
                  f"| invoices / ended sessions / invoiced | {_fmt(bl.get('invoices'))} / "
                  f"{_fmt(bl.get('ended_sessions'))} / {_fmt(bl.get('invoiced_pct'))} % |", ""]
    if bl.get("not_invoiced"):
        lines += ["Ended without an invoice: " + ", ".join(f"`{k}`" for k in bl["not_invoiced"]), ""]
    o = report["ocpp"]
    lines += ["## OCPP", "", f"{o['booted']}/{o['chargers']} chargers booted; {o['messages']} CALLs "
              f"({sum(o['sent'].values())} sent by chargers, {sum(o['received'].values())} from the CSMS); "
              f"{o['callerrors']} CALLERRORs; {o['errors']} recorded errors; "
              f"{o['charger_limit_violations']} samples above a charger's own limit."
              + _outbox_md(o.get("outbox_delay") or {}), "",
              "| action | sent | received |", "|---|---|---|"]
    for a in sorted(set(o["sent"]) | set(o["received"])):
        lines.append(f"| {a} | {o['sent'].get(a, 0)} | {o['received'].get(a, 0)} |")
    if o["errors_by_kind"]:
        lines += ["", "Errors by kind: " + ", ".join(f"{k} {v}" for k, v in o["errors_by_kind"].items()), ""]
        lines += [f"- e.g. `{v}`" for v in o.get("error_examples", {}).values()]
    lg = report.get("log") or {}
    if isinstance(lg.get("errors"), int) and lg["errors"]:
        lines += ["", f"**{lg['errors']} ERROR log record(s) during the run** (the verdict does not count them):", ""]
        lines += [f"- `{e}`" for e in lg.get("examples", [])]
    b = report["bookings"]
    lines += ["", "## Bookings", ""]
    if b.get("enabled"):
        lines.append(f"{b.get('made', 0)} made, {b.get('failed', 0)} refused, {b.get('no_shows', 0)} no-shows planned."
                     + (f" {b['note']}" if b.get("note") else ""))
    else:
        lines.append(b.get("note", "none in this scenario"))
    sv = report.get("solver") or {}
    rt = report.get("runtime") or {}
    lines += ["", "## Solver and runtime (wall clock; not part of the determinism check)", ""]
    lines.append("Planner solve times: " + (f"{sv['count']} solves, mean {sv['mean_s']} s, p95 {sv['p95_s']} s, "
                                            f"max {sv['max_s']} s" if isinstance(sv.get("count"), int) and sv["count"]
                                            else "n/a"))
    if rt:
        lines.append("Runtime: " + ", ".join(f"{k} {v}" for k, v in rt.items()))
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _outbox_md(d: dict[str, Any]) -> str:
    if not d.get("messages"):
        return ""
    return (f" Outbox delay (simulated s a message waited to be sent): p50 {_fmt(d['p50_s'])}, "
            f"p95 {_fmt(d['p95_s'])}, max {_fmt(d['max_s'])}; delays of minutes mean the CSMS saw events late "
            f"(lower the speed-up).")


def write_report(report: dict[str, Any], out_dir: Path, *, plots: bool = True, plan: RunPlan | None = None,
                 recorders: list[Recorder] | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    names: list[str] = []
    if plots and plan is not None and recorders is not None:
        names = [p.name for p in plot_report(report, plan, recorders, out_dir)]
        files += [out_dir / n for n in names]
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out_dir / "report.md").write_text(to_markdown(report, names))
    return [out_dir / "report.json", out_dir / "report.md", *files]


# ------------------------------------------------------------------------------------------------- plots
def plot_report(report: dict[str, Any], plan: RunPlan, recorders: list[Recorder], out_dir: Path) -> list[Path]:
    try:
        import matplotlib
    except ImportError:  # the `report` extra is not installed
        return []
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    scn = plan.scenario
    tz = ZoneInfo(scn.site.timezone)
    tl = site_timeline(plan, recorders, plan.end)
    # resample the exact step series onto a grid fine enough to show every change that lasts a step
    n = len(tl.times) - 1
    step = max(30.0, plan.duration_s / 4000)
    grid = [plan.start + timedelta(seconds=k * step) for k in range(int(plan.duration_s // step) + 1)]
    idx, j = [], 0
    for g in grid:
        while j + 1 < n and tl.times[j + 1] <= g:
            j += 1
        idx.append(j)
    xs = [g.astimezone(tz).replace(tzinfo=None) for g in grid]
    site = report["sites"][scn.site.id]
    paths = []

    fig, ax = plt.subplots(figsize=(13, 5.5), dpi=110)
    ids = sorted(tl.per_charger_kw, key=lambda c: -sum(tl.per_charger_kw[c]))
    cmap = plt.get_cmap("tab20")
    layers = [[tl.base_kw[i] for i in idx]]
    colors: list[Any] = ["#bdbdbd"]
    labels = ["base load"]
    if len(ids) <= 12:  # one colour per charger can still be told apart
        layers += [[tl.per_charger_kw[c][i] for i in idx] for c in ids]
        colors += [cmap(k % 20) for k in range(len(ids))]
        labels += ids
    else:  # more colours than an eye separates: one layer per OCPP version
        proto = {c.charger_id: c.protocol for c in plan.charger_configs}
        for k, version in enumerate(sorted({proto.get(c, "?") for c in ids})):
            members = [c for c in ids if proto.get(c, "?") == version]
            layers.append([sum(tl.per_charger_kw[c][i] for c in members) for i in idx])
            colors.append(["#4c78a8", "#72b7b2", "#f58518"][k % 3])
            labels.append(f"OCPP {version} chargers ({len(members)})")
    ax.stackplot(xs, *layers, colors=colors, labels=labels, step="post", linewidth=0)
    ax.step(xs, [tl.limit_kw[i] for i in idx], where="post", color="#d62728", lw=2, label="grid limit")
    ax.step(xs, [tl.load_kw(i) for i in idx], where="post", color="black", lw=0.7, label="site load")
    ax.axhline(site["peak_kw"], color="black", ls=":", lw=1)
    ax.annotate(f"peak {site['peak_kw']:.1f} kW", xy=(0.005, site["peak_kw"]), xycoords=("axes fraction", "data"),
                va="bottom", fontsize=9)
    ax.legend(loc="upper right", fontsize=8 if len(ids) <= 12 else 9, ncol=2 if len(ids) <= 12 else 1,
              framealpha=0.9)
    v = site["violations"]
    ax.set_title(f"{scn.name}: site '{scn.site.id}' load against the limit — {len(ids)} chargers, "
                 f"{v['count']} violations (max {v['max_excess_kw']:.2f} kW)", fontsize=11)
    ax.set_ylabel("kW")
    ax.set_xlabel(f"local time ({scn.site.timezone})")
    ax.set_ylim(0, max(max(tl.limit_kw, default=1), site["peak_kw"]) * 1.15)
    ax.set_xlim(xs[0], xs[-1])
    loc = mdates.AutoDateLocator(minticks=6, maxticks=14)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = out_dir / "site_load.png"
    fig.savefig(p)
    plt.close(fig)
    paths.append(p)

    rows = report["sessions"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5.5), dpi=110, gridspec_kw={"width_ratios": [1, 1.6]})
    groups = [("satisfied", "#2ca02c", lambda r: r["satisfied"] is True),
              ("not satisfied", "#d62728", lambda r: r["satisfied"] is False),
              ("open at end", "#7f7f7f", lambda r: r["satisfied"] is None)]
    top = max([r["requested_kwh"] for r in rows] + [r["delivered_kwh"] for r in rows] + [1.0]) * 1.05
    for name, col, pred in groups:
        sel = [r for r in rows if pred(r)]
        a1.scatter([r["requested_kwh"] for r in sel], [r["delivered_kwh"] for r in sel], s=30 if len(rows) < 100 else 14, c=col,
                   alpha=0.8, label=f"{name} ({len(sel)})", edgecolors="none")
    a1.plot([0, top], [0, top], color="black", lw=0.8, label="delivered = requested")
    a1.set_xlim(0, top)
    a1.set_ylim(0, top)
    a1.set_xlabel("requested kWh")
    a1.set_ylabel("delivered kWh")
    a1.set_title("per session (satisfied: ≥95 % of deliverable)", fontsize=10)
    a1.legend(fontsize=8, loc="upper left")
    a1.grid(alpha=0.3)
    k = list(range(len(rows)))
    a2.bar(k, [r["requested_kwh"] for r in rows], color="#c6dbef", width=0.85, label="requested")
    a2.bar(k, [r["deliverable_kwh"] for r in rows], color="#6baed6", width=0.55, label="deliverable (no site limit)")
    a2.bar(k, [r["delivered_kwh"] for r in rows], color="#08519c", width=0.3, label="delivered")
    a2.set_xlim(-1, max(len(rows), 1))
    a2.set_xlabel("session (in order of arrival)")
    a2.set_ylabel("kWh")
    a2.set_title(f"{len(rows)} sessions: {site['energy']['delivered_kwh']:.0f} of {site['energy']['requested_kwh']:.0f} "
                 f"kWh requested delivered; satisfied {site['satisfied_pct'] if site['satisfied_pct'] is not None else 'n/a'} %",
                 fontsize=10)
    a2.legend(fontsize=8, loc="upper right")
    a2.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{scn.name}: energy delivered vs requested", fontsize=11)
    fig.tight_layout()
    p = out_dir / "energy.png"
    fig.savefig(p)
    plt.close(fig)
    paths.append(p)
    return paths
