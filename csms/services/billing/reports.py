"""Read side of billing, pure: stored invoices -> API views, revenue over a period, readable tariffs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from csms.billing_config import BillingConfig
from csms.domain.ids import transaction_key
from csms.domain.records import InvoiceRecord
from csms.domain.store_ports import StorePort


def revenue_report(rows: list[InvoiceRecord], since: datetime | None, until: datetime | None,
                   site_id: str | None, currency: str) -> dict[str, Any]:
    """Totals of stored invoice rows (exact decimals as strings), overall and per station."""
    tot = {k: Decimal(0) for k in ("energy_wh", "subtotal", "tax", "total", "overstay_fee")}
    by_station: dict[str, dict[str, Any]] = {}
    minutes = 0
    for r in rows:
        for k in tot:
            tot[k] += Decimal(getattr(r, k))
        minutes += r.overstay_minutes
        st = by_station.setdefault(r.station_id, {"sessions": 0, "energy_wh": Decimal(0), "total": Decimal(0)})
        st["sessions"] += 1
        st["energy_wh"] += Decimal(r.energy_wh)
        st["total"] += Decimal(r.total)
    return {
        "since": since, "until": until, "site_id": site_id, "currency": currency,
        "sessions": len(rows), "energy_kwh": str((tot["energy_wh"] / 1000).quantize(Decimal("0.001"))),
        "subtotal": str(tot["subtotal"]), "tax": str(tot["tax"]), "total": str(tot["total"]),
        "overstay_minutes": minutes, "overstay_fee": str(tot["overstay_fee"]),
        "by_station": {k: {"sessions": v["sessions"],
                           "energy_kwh": str((v["energy_wh"] / 1000).quantize(Decimal("0.001"))),
                           "total": str(v["total"])} for k, v in sorted(by_station.items())},
    }


def tariffs_view(bc: BillingConfig) -> dict[str, Any]:
    """The configured tariffs (default and per group, effective values) and the overstay policy."""
    book = bc.tariff_book(bc.timezone or "UTC")
    groups = {g: _tariff_out(book.for_group(g)) for g in bc.groups}
    p = bc.overstay
    return {
        "currency": bc.currency,
        "timezone": bc.timezone or "site",
        "default": _tariff_out(book.default),
        "groups": groups,
        "overstay": None if p is None else {
            "allotted_by": p.allotted_by, "grace_min": p.grace_min, "fee_per_minute": str(p.fee_per_minute),
            "fee_per_minute_by_group": {g: str(v) for g, v in p.fee_per_minute_by_group.items()},
            "cap": None if p.cap is None else str(p.cap), "exempt_groups": p.exempt_groups,
            "only_when_busy": p.only_when_busy, "busy_occupancy_threshold": p.busy_occupancy_threshold,
            "warn_before_min": p.warn_before_min},
    }


def _tariff_out(t: Any) -> dict[str, Any]:
    return {
        "name": t.name, "timezone": t.timezone, "energy_price_per_kwh": str(t.energy_price_per_kwh),
        "tou_windows": [{"days": sorted(w.days), "start": w.start.strftime("%H:%M"),
                         "end": w.end.strftime("%H:%M"),
                         "price_per_kwh": str(w.price_per_kwh), "name": w.name} for w in t.tou_windows],
        "session_fee": str(t.session_fee), "time_fee_per_hour": str(t.time_fee_per_hour),
        "time_fee_basis": str(t.time_fee_basis), "tax_rate": str(t.tax_rate),
        "demand_tiers": [{"name": d.name, "from_utilisation": str(d.from_utilisation),
                          "multiplier": str(d.multiplier)} for d in t.demand_tiers],
    }


def invoice_out(row: InvoiceRecord) -> dict[str, Any]:
    """A stored invoice as the API shows it (amounts as decimal strings)."""
    data = row.data
    return {
        "tx_key": row.tx_key, "station_id": row.station_id, "transaction_id": row.charger_tx_id,
        "evse_id": row.evse_id, "site_id": row.site_id, "id_token": row.id_token, "group": row.group,
        "currency": row.currency, "tariff": data.get("tariff"), "session_start": row.session_start,
        "session_end": row.session_end, "finalised_at": row.finalised_at, "reason": row.reason,
        "energy_wh": row.energy_wh, "lines": list(row.lines), "subtotal": row.subtotal,
        "tax_rate": data.get("tax_rate"),
        "tax": row.tax, "total": row.total, "overstay_minutes": row.overstay_minutes,
        "overstay_fee": row.overstay_fee, "overstay": data.get("overstay"), "anomalies": list(row.anomalies),
    }


class BillingQueries:
    """Read side for the API: stored invoices, revenue over a period, the configured tariffs."""

    def __init__(self, store: StorePort, bc: BillingConfig) -> None:
        self.store = store
        self.bc = bc

    async def invoice_for(self, station_id: str, charger_tx_id: str) -> dict[str, Any] | None:
        async with self.store.session() as s:
            row = await s.invoice(transaction_key(station_id, charger_tx_id))
        return invoice_out(row) if row else None

    async def list_invoices(self, **filters: Any) -> list[dict[str, Any]]:
        async with self.store.session() as s:
            return [invoice_out(r) for r in await s.invoices(**filters)]

    async def revenue(self, since: datetime | None, until: datetime | None, site_id: str | None = None
                      ) -> dict[str, Any]:
        """Energy and revenue of the sessions that ended in [since, until), exact decimals as strings."""
        async with self.store.session() as s:
            rows = await s.invoices(since=since, until=until, site_id=site_id, limit=None)
        return revenue_report(rows, since, until, site_id, self.bc.currency)

    def tariffs_view(self) -> dict[str, Any]:
        """The configured tariffs (per group, effective values) and the overstay policy, readable."""
        return tariffs_view(self.bc)
