"""Overstay tracker: the live overstay phase of each open session, announced on the bus as it changes.

Phases (`csms.billing.overstay_state`): ok -> warning -> overstaying; "ended" is announced at the unplug
or when a session stops overstaying. The phase announced is persisted with the session (billing_sessions),
so a restart does not announce twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from csms.billing import OverstayPhase, OverstayPolicy, OverstayState, busy_intervals_from_occupancy, overstay_state
from csms.domain.events import OverstayChanged
from csms.domain.store_ports import StoreSession

from ..bus import EventBus
from .state import SessionTrack, occupancy_spans

log = logging.getLogger("csms.billing")


async def busy_intervals(s: StoreSession, site_id: str | None, since: datetime, until: datetime,
                         policy: OverstayPolicy | None) -> list[tuple[datetime, datetime]]:
    """Where the site's occupancy was at or above the policy's threshold (only_when_busy), from the stored
    connector status history."""
    if site_id is None or policy is None:
        return []
    stations = await s.station_ids_of_site(site_id)
    rows = await s.status_changes(stations, since, until)
    conns = [(c.station_id, c.evse.evse_id, c.evse.connector_id) for c in await s.connectors()
             if c.station_id in set(stations)]
    spans = occupancy_spans(rows, conns, since, until)
    return busy_intervals_from_occupancy(spans, policy.busy_occupancy_threshold)


class OverstayTracker:
    def __init__(self, bus: EventBus, currency: str, policy: OverstayPolicy | None) -> None:
        self.bus = bus
        self.currency = currency
        self.policy = policy
        #: Called with every OverstayChanged (also published on the bus).
        self.listeners: list[Callable[[OverstayChanged], None]] = []
        self.busy: dict[str, list[tuple[datetime, datetime]]] = {}  # site -> busy spans (only_when_busy)

    def live(self, track: SessionTrack, now: datetime, group: str | None,
             booking_end: datetime | None) -> OverstayState | None:
        if self.policy is None:
            return None
        at = min(now, track.unplugged_at) if track.unplugged_at else now
        if track.overstay_counted_until is not None:
            at = max(track.started_at, min(at, track.overstay_counted_until))
        busy = self.busy.get(track.site_id or "", []) if self.policy.only_when_busy else None
        return overstay_state(at, self.policy, group=group, booking_end=booking_end,
                              stated_departure=track.stated_departure,
                              charging_finished_at=track.charging_finished_at, busy_intervals=busy)

    def update_phase(self, track: SessionTrack, now: datetime, group: str | None,
                     booking_end: datetime | None) -> bool:
        """Announce a phase change of an open session; True when the track changed (to be saved)."""
        if self.policy is None or track.unplugged_at is not None or track.finalised:
            return False
        state = self.live(track, now, group, booking_end)
        assert state is not None
        phase = str(state.phase)
        if phase == track.overstay_phase:
            return False
        if phase == OverstayPhase.WARNING and track.overstay_phase == "ok":
            self.announce(track, "warning", now, state.minutes_so_far, state.fee_so_far.amount)
        elif phase == OverstayPhase.OVERSTAYING:
            self.announce(track, "started", state.billable_from or now, state.minutes_so_far,
                          state.fee_so_far.amount)
        elif phase == OverstayPhase.OK:
            self.ended(track, now, group, booking_end)
        track.overstay_phase = phase
        return True

    def ended(self, track: SessionTrack, at: datetime, group: str | None, booking_end: datetime | None) -> None:
        """The overstay (or its warning) is over: unplug, or no longer overstaying."""
        state = self.live(track, at, group, booking_end)
        minutes, fee = (state.minutes_so_far, state.fee_so_far.amount) if state else (0, Decimal(0))
        track.overstay_phase = "ok"
        self.announce(track, "ended", at, minutes, fee)

    def announce(self, track: SessionTrack, phase: str, at: datetime, minutes: int = 0,
                 fee: Decimal = Decimal(0)) -> None:
        ev = OverstayChanged(track.tx_key, track.station_id, track.evse_id, phase, minutes, str(fee),
                             self.currency, at)
        log.info("overstay %s tx=%s minutes=%d fee=%s", phase, track.tx_key, minutes, fee)
        self.bus.publish(ev)
        for fn in self.listeners:
            try:
                fn(ev)
            except Exception:  # noqa: BLE001 - a listener must not break billing
                log.exception("overstay listener failed")

    def view(self, track: SessionTrack, now: datetime, group: str | None,
             booking_end: datetime | None) -> dict[str, Any] | None:
        """Live overstay of an open session for the API: phase, minutes and fee so far."""
        st = self.live(track, now, group, booking_end)
        if st is None:
            return None
        return {
            "phase": str(st.phase), "charging_finished_at": track.charging_finished_at,
            "allotted_end": st.allotted_end, "billable_from": st.billable_from, "minutes": st.minutes_so_far,
            "fee": str(st.fee_so_far.amount), "currency": st.fee_so_far.currency,
            "unplugged_at": track.unplugged_at,
        }
