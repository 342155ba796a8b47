"""Invoicer: prices a session with the pure `csms.billing` library and stores its one invoice.

There is one price path: the live cost a 2.0.1 charger displays (`cost_as_if_ended`) is the invoice this
session would get if it ended now, computed by the same `price` as the final invoice.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime
from decimal import Decimal
from csms.billing import Invoice, OverstayInputs, OverstayPolicy, TariffBook, meter_session, price_session
from csms.billing_config import BillingConfig
from csms.config import Config
from csms.domain.model import Transaction
from csms.domain.records import InvoiceRecord
from csms.domain.store_ports import StorePort, StoreSession
from .overstay import busy_intervals
from .site_load import SiteLoadMeter, StationInfo
from .state import SessionTrack, readings_from_samples

log = logging.getLogger("csms.billing")
DEFAULT_MAX_POWER_W = 32 * 230.0 * 3


class Invoicer:
    def __init__(self, cfg: Config, bc: BillingConfig, store: StorePort, infos: StationInfo,
                 meter: SiteLoadMeter) -> None:
        self.store = store
        self.infos = infos
        self.meter = meter
        self.configure(cfg, bc)

    def configure(self, cfg: Config, bc: BillingConfig) -> None:
        self.cfg = cfg
        self.bc = bc
        self.policy: OverstayPolicy | None = bc.overstay_policy()

    def book(self, site_id: str | None) -> TariffBook:
        site = self.cfg.site(site_id) if site_id else None
        return self.bc.tariff_book(site.timezone if site else "UTC")

    async def price(self, tx: Transaction, track: SessionTrack, session_end: datetime,
                    booking_end: datetime | None) -> Invoice:
        """Price `tx` as if its session ended at `session_end` with what `track` knows."""
        end = max(session_end, tx.started_at)
        async with self.store.session() as s:
            samples = await s.samples(tx.key)
            info = await self.infos.get(tx.station_id, s)
            site_id = track.site_id or (info.site_id if info else None)
            rows = await s.site_load(site_id, tx.started_at, end) if site_id else []
            busy = None
            if self.policy is not None and self.policy.only_when_busy:
                busy = await busy_intervals(s, site_id, tx.started_at, end, self.policy)
        metered = meter_session(readings_from_samples(samples, tx),
                                max_power_w=Decimal(str((info.max_power_w if info else None) or DEFAULT_MAX_POWER_W)),
                                tolerance=self.bc.meter_tolerance)
        overstay = None
        if self.policy is not None:
            overstay = OverstayInputs(self.policy, booking_end=booking_end, stated_departure=track.stated_departure,
                                      charging_finished_at=track.charging_finished_at, busy_intervals=busy,
                                      # what billing saw decides, not an inference from the meter
                                      derive_finished=False, counted_until=track.overstay_counted_until)
        return price_session(metered.intervals, self.book(site_id), tx.group, session_start=tx.started_at,
                             session_end=end, utilisation=self.meter.utilisation(site_id, rows, end), overstay=overstay,
                             anomalies=metered.anomalies)

    async def cost_as_if_ended(self, tx: Transaction, track: SessionTrack, now: datetime,
                               booking_end: datetime | None) -> Invoice:
        """The invoice `tx` would get if its session ended at `now` (or at its unplug, if earlier): the
        transaction ends now unless it already did, and the car leaves now unless it already did."""
        t = copy.copy(track)
        end = min(now, t.unplugged_at) if t.unplugged_at is not None else now
        if t.ended_at is None:
            t.on_ended(end, None)
        return await self.price(tx, t, end, booking_end)

    async def finalise(self, tx: Transaction, track: SessionTrack, session_end: datetime, reason: str,
                       now: datetime, booking_end: datetime | None) -> tuple[Invoice, bool]:
        """Price and store the invoice and the finalised session in one store transaction. Returns the
        invoice and whether it was created now (False: the transaction already had one)."""
        invoice = await self.price(tx, track, session_end, booking_end)
        o = invoice.overstay
        record = InvoiceRecord(
            tx_key=tx.key, station_id=tx.station_id, charger_tx_id=tx.charger_tx_id,
            evse_id=tx.evse.evse_id,
            site_id=track.site_id, id_token=tx.id_token, group=tx.group, currency=invoice.currency,
            session_start=invoice.session_start, session_end=invoice.session_end, finalised_at=now,
            reason=reason, energy_wh=str(invoice.energy_wh), subtotal=str(invoice.subtotal.amount),
            tax=str(invoice.tax.amount), total=str(invoice.total.amount),
            overstay_minutes=o.minutes if o else 0, overstay_fee=str(o.fee.amount) if o else "0",
            lines=tuple(line.to_dict() for line in invoice.lines),
            anomalies=tuple(a.to_dict() for a in invoice.anomalies), data=invoice.to_dict())
        finalised = track.to_record(now, finalised=True)

        async def work(s: StoreSession) -> bool:
            created = await s.add_invoice(record)
            await s.save_billing_session(finalised)
            return created
        # Through the group commit (one writer on SQLite, see SiteLoadMeter._write); both rows in one transaction.
        created = await self.store.write(work)
        if created:
            log.info("invoice tx=%s total=%s %s energy_wh=%s overstay_min=%s reason=%s anomalies=%d", tx.key,
                     invoice.total.amount, invoice.currency, invoice.energy_wh, o.minutes if o else 0, reason,
                     len(invoice.anomalies))
        return invoice, created

    async def stored_total(self, tx_key: str) -> Decimal | None:
        async with self.store.session() as s:
            inv = await s.invoice(tx_key)
        return None if inv is None else Decimal(inv.total)
