"""Version-neutral handling of CSMS-initiated commands, mixed into :class:`simulator.charger.Charger`.

The 1.6 and 2.0.1 adapters parse the wire payload and call these synchronous methods from their ``@on``
handlers; anything that needs a CALL of its own (remote start, stop, reset) is spawned as a task.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from simulator import profiles as pf
from simulator.recorder import ProfileRecord
from simulator.station import Evse, Reservation

if TYPE_CHECKING:
    from simulator.charger import Charger


class CsmsCommandsMixin:
    """SetChargingProfile, ClearChargingProfile, GetCompositeSchedule, remote start/stop, availability,
    reservations, unlock and reset, in the neutral vocabulary."""

    def active_tx_id(self: Charger, evse_id: int) -> str | None:
        evse = self.evses.get(evse_id)
        return evse.tx.transaction_id if evse and evse.tx else None

    def validation_rules(self: Charger) -> pf.ValidationRules:
        return pf.ValidationRules(max_stack_level=self.config.max_stack_level,
                                  max_periods=self.config.max_schedule_periods,
                                  allowed_units=frozenset(pf.RateUnit(u) for u in self.config.rate_units),
                                  evse_ids=frozenset(self.evses))

    def handle_set_profile(self: Charger, parse: Callable[[datetime], pf.ChargingProfile], evse_id: int,
                           payload: dict[str, Any], *, action: str = "SetChargingProfile",
                           require_tx_id: bool = False) -> tuple[bool, str]:
        """Validate and install a profile (synchronous; physics is advanced to now first)."""
        now = self.clock.now()
        try:
            if self.reject_profiles:
                raise pf.ProfileError("fault injection: rejecting all profiles")
            profile = parse(now)
            pf.validate(profile, self.validation_rules(), active_tx_id=self.active_tx_id(profile.evse_id),
                        require_tx_id=require_tx_id)
        except pf.ProfileError as exc:
            self.recorder.profiles.append(ProfileRecord(now, evse_id, action, False, payload, str(exc)))
            self._notify()
            return False, str(exc)
        self.advance()
        self.installed_profiles = pf.install(self.installed_profiles, profile)
        self.recorder.profiles.append(ProfileRecord(now, evse_id, action, True, payload))
        self.advance()
        self.wake()
        return True, ""

    def handle_clear_profiles(self: Charger, **criteria: Any) -> bool:
        self.advance()
        self.installed_profiles, n = pf.clear(self.installed_profiles, **criteria)
        self.recorder.profiles.append(ProfileRecord(self.clock.now(), criteria.get("evse_id") or 0,
                                                    "ClearChargingProfile", n > 0, dict(criteria)))
        self.advance()
        self.wake()
        return n > 0

    def composite(self: Charger, evse_id: int, duration_s: int, unit: str | None) -> pf.CompositeSchedule:
        evse = self.evses.get(evse_id)
        tx = evse.tx if evse else None
        return pf.composite_schedule(
            self.installed_profiles, evse_id=evse_id, start=self.clock.now(), duration_s=duration_s,
            station_max_w=self.config.max_power_w * (len(self.evses) if evse_id == 0 else 1),
            unit=pf.RateUnit(unit.upper()) if unit else pf.RateUnit.W,
            transaction_id=tx.transaction_id if tx else None, tx_start=tx.started_at if tx else None,
            voltage_v=self.config.voltage_v, phases=self._phases(evse) if evse else self.config.phases)

    def handle_remote_start(self: Charger, id_token: str, evse_id: int | None, remote_start_id: int | None,
                            profile_parse: Callable[[datetime], pf.ChargingProfile] | None,
                            profile_payload: dict[str, Any] | None) -> bool:
        """RemoteStart/RequestStart: accept if an EVSE can take it; start now if plugged, else on plug-in."""
        candidates = [self.evses[evse_id]] if evse_id in self.evses else (
            [] if evse_id else sorted(self.evses.values(), key=lambda e: (not e.plugged, e.evse_id)))
        for evse in candidates:
            ok, _ = evse.may_start(id_token)
            if not ok or self._rt[evse.evse_id].pending_remote is not None:
                continue

            async def go(evse: Evse = evse) -> None:
                try:
                    if self.config.authorize_remote_start:
                        if not await self.enqueue(lambda: self.adapter.authorize(id_token), "Authorize"):
                            return
                    await self._start_tx(evse, id_token, remote_start_id=remote_start_id, trigger="RemoteStart")
                    if profile_parse is not None and profile_payload is not None:
                        self.handle_set_profile(profile_parse, evse.evse_id, profile_payload,
                                                action="RemoteStart")
                except Exception as exc:
                    self.recorder.error(self.clock.now(), "remote start", f"{type(exc).__name__}: {exc}")

            if evse.plugged:
                self.spawn(go())
            else:
                self._rt[evse.evse_id].pending_remote = (id_token, remote_start_id)
            return True
        return False

    def handle_remote_stop(self: Charger, transaction_id: str) -> bool:
        for evse_id, evse in self.evses.items():
            if evse.tx is not None and evse.tx.transaction_id == str(transaction_id):
                self.spawn(self.stop("Remote", evse_id=evse_id))
                return True
        return False

    def handle_change_availability(self: Charger, evse_id: int, operative: bool) -> str:
        targets = list(self.evses.values()) if evse_id == 0 else [self.evses[evse_id]] \
            if evse_id in self.evses else []
        if not targets:
            return "Rejected"
        results = []
        for evse in targets:
            status, intents = evse.set_operative(operative, self.clock.now())
            results.append(status)
            self._dispatch(intents)
        self.wake()
        return "Scheduled" if "Scheduled" in results else "Accepted"

    def handle_reserve(self: Charger, evse_id: int | None, reservation_id: int, id_token: str,
                       expiry: datetime) -> str:
        targets = [self.evses[evse_id]] if evse_id else list(self.evses.values())
        if evse_id and evse_id not in self.evses:
            return "Rejected"
        status = "Rejected"
        for evse in targets:
            status, intents = evse.reserve(Reservation(reservation_id, id_token, expiry), self.clock.now())
            if status == "Accepted":
                self._dispatch(intents)
                return status
        return status

    def handle_cancel_reservation(self: Charger, reservation_id: int) -> bool:
        for evse in self.evses.values():
            ok, intents = evse.cancel_reservation(reservation_id, self.clock.now())
            if ok:
                self._dispatch(intents)
                return True
        return False

    def handle_unlock(self: Charger, evse_id: int) -> str:
        evse = self.evses.get(evse_id)
        if evse is None:
            return "UnlockFailed"
        if evse.tx is not None:
            self.spawn(self.stop("UnlockCommand", evse_id=evse_id))
        return "Unlocked"

    def handle_reset(self: Charger, hard: bool) -> None:
        self.spawn(self.reboot("HardReset" if hard else "SoftReset"))
