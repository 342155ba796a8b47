"""Prometheus metrics at /metrics.

A per-app CollectorRegistry (no module-level state). Latencies are histograms updated where things
happen: `Metrics` is the OCPP adapter's observer (csms.ocpp.observe), is fed each plan's time and
probes the event loop. Gauges of current state (connections, plans per site, site load, database
commits) are read at scrape time by `CsmsCollector`. No service imports prometheus_client.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

SOLVE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROTOCOLS = ("ocpp1.6", "ocpp2.0.1")
CALL_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)
MESSAGE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_PROBE_S = 0.1


class Metrics:
    """The app's registry and the metrics updated as things happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.messages = Histogram(
            "csms_ocpp_message_seconds", "Charger CALLs: time from taking one up to sending its answer (incl. "
            "the database commit), by action; _count is the number of messages", ["protocol", "action"],
            buckets=MESSAGE_BUCKETS_S, registry=r)
        self.call_errors = Counter("csms_ocpp_callerrors", "CALLERRORs sent to chargers, by action and kind",
                                   ["protocol", "action", "error"], registry=r)
        self.requests = Histogram(
            "csms_ocpp_call_latency_seconds", "Round trip of CSMS-initiated CALLs, by action and result "
            "(answered, or the command status: Timeout, Offline, Error)", ["protocol", "action", "result"],
            buckets=CALL_BUCKETS_S, registry=r)
        self.plan_seconds = Histogram("csms_plan_solve_seconds", "Wall time of each site plan (solve + fallback)",
                                      buckets=SOLVE_BUCKETS_S, registry=r)
        self.loop_lag = Histogram(
            "csms_event_loop_lag_seconds", f"How late a {LAG_PROBE_S} s timer fires: time the event loop "
            "could not run (planner holding the GIL, long callbacks)", buckets=LAG_BUCKETS_S, registry=r)
        self.loop_lag_max = Gauge("csms_event_loop_lag_max_seconds", "Largest event loop lag since start",
                                  registry=r)
        self._children: dict[tuple[str, str], Any] = {}
        self._lag_max = 0.0

    # --- csms.ocpp.observe.OcppObserver ----------------------------------------------------------
    def handled(self, protocol: str, action: str, seconds: float, error: str | None) -> None:
        child = self._children.get((protocol, action))
        if child is None:  # labels() costs a lock and a tuple per call: cached per label pair
            child = self._children[(protocol, action)] = self.messages.labels(protocol, action)
        child.observe(seconds)
        if error is not None:
            self.call_errors.labels(protocol, action, error).inc()

    def requested(self, protocol: str, action: str, seconds: float, result: str) -> None:
        self.requests.labels(protocol, action, result).observe(seconds)

    # --- plans and the event loop ----------------------------------------------------------------
    def plan_times(self, maxlen: int = 10_000) -> collections.deque[float]:
        """A deque for the planner's solve times (it appends to one) that also feeds the histogram."""
        return _ObservedDeque(self.plan_seconds.observe, maxlen=maxlen)

    async def probe_loop(self, every_s: float = LAG_PROBE_S) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(every_s)
            lag = max(0.0, loop.time() - t - every_s)
            self.loop_lag.observe(lag)
            if lag > self._lag_max:
                self._lag_max = lag
                self.loop_lag_max.set(lag)


class _ObservedDeque(collections.deque):  # type: ignore[type-arg]
    def __init__(self, observe: Any, maxlen: int) -> None:
        super().__init__(maxlen=maxlen)
        self._observe = observe

    def append(self, x: float) -> None:
        super().append(x)
        self._observe(x)


def _planner_metrics(workers: list[Any]) -> Iterator[Metric]:
    """Planner worker processes (none with planner_processes: 0): memory, and what it holds, per worker."""
    if not workers:
        return
    rss = GaugeMetricFamily("csms_planner_worker_rss_bytes", "Resident memory of a planner worker after its "
                            "last plan (kind=ready: after start-up, before any site)", labels=["worker", "kind"])
    evses = GaugeMetricFamily("csms_planner_worker_evses", "EVSEs of the sites pinned to a planner worker",
                              labels=["worker"])
    starts = CounterMetricFamily("csms_planner_worker_starts", "Planner worker starts (restarts after a death "
                                 "count)", labels=["worker"])
    models = GaugeMetricFamily("csms_planner_worker_model_evses", "EVSEs whose site model a planner worker keeps "
                               "between plans (state=hot: a live HiGHS instance; dormant: the LP and its bases)",
                               labels=["worker", "state"])
    for i, w in enumerate(workers):
        models.add_metric([str(i), "hot"], w.hot_evses)
        models.add_metric([str(i), "dormant"], w.dormant_evses)
        rss.add_metric([str(i), "now"], w.rss_bytes)
        rss.add_metric([str(i), "ready"], w.ready_rss_bytes)
        evses.add_metric([str(i)], w.evses)
        starts.add_metric([str(i)], w.starts)
    yield rss
    yield evses
    yield models
    yield starts


class CsmsCollector:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        conn = GaugeMetricFamily("csms_connected_chargers", "Chargers connected now, by protocol", labels=["protocol"])
        by_proto: dict[str, int] = {p: 0 for p in PROTOCOLS}  # both always present: a 0 is a value to alert on
        gw = ctx.gateway
        for station_id in (gw.connected_ids() if gw is not None else ()):
            proto = gw.protocol(station_id) or "unknown"
            by_proto[proto] = by_proto.get(proto, 0) + 1
        for proto, n in sorted(by_proto.items()):
            conn.add_metric([proto], n)
        yield conn
        gc = getattr(getattr(ctx, "store", None), "group_commit", None)
        if gc is not None:
            yield CounterMetricFamily("csms_db_commits", "Database transactions of the charger message path",
                                      value=gc.commits)
            yield CounterMetricFamily("csms_db_commit_units", "Charger messages (units of work) in them: "
                                      "units / commits is the mean group-commit batch", value=gc.units)
            yield CounterMetricFamily("csms_db_writer_busy_seconds", "Wall time the group commit's writer spent "
                                      "in transactions (its rate near 1: messages queue on the writer)",
                                      value=gc.busy_s)
            yield GaugeMetricFamily("csms_db_batch_units_max", "Largest group-commit batch so far",
                                    value=gc.max_units)
        smart = ctx.smart
        if smart is not None:
            plans = CounterMetricFamily("csms_plans", "Plans computed, by site and status", labels=["site", "status"])
            limit = GaugeMetricFamily("csms_site_planned_load_watts", "Planned site load in the current slot",
                                      labels=["site"])
            cap = GaugeMetricFamily("csms_site_limit_watts", "Site limit in the current slot", labels=["site"])
            for site_id, st in sorted(smart.sites.items()):
                plans.add_metric([site_id, "optimal"], st.plans - st.fallbacks)
                plans.add_metric([site_id, "fallback"], st.fallbacks)
                if st.last_schedule is not None:
                    limit.add_metric([site_id], st.last_schedule.site_power_w[0])
                    cap.add_metric([site_id], st.last_schedule.site_limit_w[0])
            yield plans
            reasons = CounterMetricFamily("csms_replan_requests", "Re-plan requests by what asked (requests made "
                                          "while a site's plan runs or waits join it)", labels=["reason"])
            for reason, n in sorted(smart.triggers.reasons.items()):
                reasons.add_metric([reason], n)
            yield reasons
            sent = CounterMetricFamily("csms_profiles_sent", "Charging profiles sent, by kind (tx_default, "
                                       "tx_profile) and why (decrease, rise, new, unknown, probe, reassert)",
                                       labels=["kind", "why"])
            for (kind, why), n in sorted(smart.delivery.sent.items()):
                sent.add_metric([kind, why], n)
            yield sent
            yield limit
            yield cap
            yield from _planner_metrics(smart.planners.stats())
        billing = getattr(ctx, "billing", None)
        if billing is not None and hasattr(billing, "status"):
            yield from _billing_metrics(billing.status())
        health = getattr(getattr(ctx, "store", None), "health", None)
        if health is not None:
            up = GaugeMetricFamily("csms_database_up", "1 while the database can be used, 0 during an outage")
            up.add_metric([], 1 if health.up else 0)
            yield up
            failed = CounterMetricFamily("csms_database_failures", "Operations failed: database unavailable")
            failed.add_metric([], health.failures_total)
            yield failed
        load = getattr(ctx, "site_load_w", None)
        if load:
            g = GaugeMetricFamily("csms_site_measured_load_watts", "Measured site load (sum of session power)",
                                  labels=["site"])
            for site_id, w in sorted(load.items()):
                g.add_metric([site_id], w)
            yield g


def _billing_metrics(st: dict[str, Any]) -> Iterator[Metric]:
    """Exactly-once billing: what is owed an invoice (as of the last reconciliation) and what was repaired."""
    for name, key, doc in (
            ("csms_billing_uninvoiced_ended", "uninvoiced_ended",
             "Ended transactions without an invoice yet (most wait for the unplug)"),
            ("csms_billing_overdue", "overdue",
             "Ended transactions without an invoice past the bound (finalize_after_h + reconcile interval)"),
            ("csms_billing_open_sessions", "open_sessions", "Sessions billing follows"),
            ("csms_billing_queued_events", "queued_events", "Events waiting for the billing worker")):
        yield GaugeMetricFamily(name, doc, value=st[key])
    repairs = CounterMetricFamily("csms_billing_repairs", "Sessions completed by reconciliation, by kind",
                                  labels=["kind"])
    for kind, n in sorted(st["repairs"].items()):
        repairs.add_metric([kind], n)
    yield repairs
    yield CounterMetricFamily("csms_billing_invoices", "Invoices created by this process",
                              value=st["invoices_created"])


def make_router(ctx: Any) -> APIRouter:
    metrics = getattr(ctx, "metrics", None)
    registry = metrics.registry if isinstance(metrics, Metrics) else Metrics().registry
    registry.register(CsmsCollector(ctx))  # type: ignore[arg-type]
    router = APIRouter(tags=["meta"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
