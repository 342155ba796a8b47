"""Prometheus metrics at /metrics, collected at scrape time from the running services.

A per-app CollectorRegistry (no module-level state): services keep plain counters and the collector
reads them, so no service imports prometheus_client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

SOLVE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROTOCOLS = ("ocpp1.6", "ocpp2.0.1")
CALL_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)


def _histogram(name: str, doc: str, values: list[float], buckets: tuple[float, ...]) -> HistogramMetricFamily:
    counts = [sum(1 for v in values if v <= b) for b in buckets]
    h = HistogramMetricFamily(name, doc)
    h.add_metric([], [(str(b), c) for b, c in zip(buckets, counts)] + [("+Inf", len(values))], sum(values))
    return h


class CsmsCollector:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        stats = getattr(ctx.gateway, "stats", None)
        conn = GaugeMetricFamily("csms_connected_chargers", "Chargers connected now, by protocol", labels=["protocol"])
        by_proto: dict[str, int] = {p: 0 for p in PROTOCOLS}  # both always present: a 0 is a value to alert on
        gw = ctx.gateway
        for station_id in (gw.connected_ids() if gw is not None else ()):
            proto = gw.protocol(station_id) or "unknown"
            by_proto[proto] = by_proto.get(proto, 0) + 1
        for proto, n in sorted(by_proto.items()):
            conn.add_metric([proto], n)
        yield conn
        if stats is not None:
            msgs = CounterMetricFamily("csms_ocpp_messages", "OCPP messages received, by action",
                                       labels=["action", "direction"])
            for (action, direction), n in sorted(stats.messages.items()):
                msgs.add_metric([action, direction], n)
            yield msgs
            yield _histogram("csms_ocpp_call_latency_seconds", "Round trip of CSMS-initiated CALLs",
                             list(stats.call_latencies_s), CALL_BUCKETS_S)
        smart = ctx.smart
        if smart is not None:
            yield _histogram("csms_plan_solve_seconds", "Wall time of each site plan (solve + fallback)",
                             list(smart.solve_times_s), SOLVE_BUCKETS_S)
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
            yield limit
            yield cap
        load = getattr(ctx, "site_load_w", None)
        if load:
            g = GaugeMetricFamily("csms_site_measured_load_watts", "Measured site load (sum of session power)",
                                  labels=["site"])
            for site_id, w in sorted(load.items()):
                g.add_metric([site_id], w)
            yield g


def make_router(ctx: Any) -> APIRouter:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CsmsCollector(ctx))  # type: ignore[arg-type]
    router = APIRouter(tags=["meta"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
