"""What the CSMS knows about each EVSE it controls: the limits it *accepted*, and what its car does.

The safety accounting starts here. An EVSE may draw the most its accepted profiles allow: a profile that
timed out is assumed at the higher of old and new, a refusal leaves the old one, and an EVSE that never
accepted anything from us (`accepted is None`) counts at its maximum (see plan_input).

The car side feeds the plan: whether the EV is full, what it measurably draws (rate feedback) and on how
many phases. Plain state and rules, no I/O: the triggers feed it from events, delivery from command answers.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from csms.domain.enums import ChargingState, RateUnit
from csms.domain.model import Transaction

from ..limits import Piecewise, pointwise
from ..plan_input import evse_key
from .live import Live

#: Below this (IEC 61851's minimum pilot current) an EVSE offers the car nothing it could draw.
MIN_OFFER_A = 6.0

FEEDBACK_MARGIN_A = 2.0  # drawing this much below the limit counts as "cannot take more"
LIFT_MARGIN_A = 0.5  # a capped car drawing this close to its cap may want more: the cap lifts
RETRY_S = 60.0  # a charger that refused a profile is retried after this long (clock seconds)


def retry_time(now: datetime, timed_out: bool) -> datetime:
    """When a charger whose last command failed may be commanded again. A refusal: after RETRY_S (it holds
    what it held, which the plan counts). A timeout: at the next plan. It may have applied the command or
    not, so the plan counts the higher of the two, and a decrease that is still needed (a limit dropped, a
    neighbour refused its own) must be sent again now rather than a minute later: found by the safety
    property test (a charger stuck at 16 A, a neighbour's decrease to 0 timed out and was not retried, so
    the site could draw 16.0 kW under a 15 kW limit). The wait is the command's own timeout, so a charger
    that never answers is not hammered."""
    return now if timed_out else now + timedelta(seconds=RETRY_S)
FOREVER = timedelta(days=3650)


def station_of(key: str) -> str:
    return key.rsplit("#", 1)[0]


def evse_id_of(key: str) -> int:
    """The EVSE id of an EVSE key ("<station>#<evse id>", plan_input.evse_key)."""
    return int(key.rsplit("#", 1)[1])


@dataclass(frozen=True)
class Held:
    """A station's profiles as we knew them when it (re)connected (see ControlState.held)."""

    default_a: float | None  # its TxDefault (A per phase); None: unknown
    profiles: dict[str, tuple[Piecewise, str]]  # EVSE key -> (accepted TxProfile, charger transaction id)
    #: Every EVSE held a limit we knew: our TxDefault (idle, or a session that started while it was away: a
    #: charger applies its TxDefault to a transaction without a TxProfile) or one of `profiles`.
    complete: bool = False


@dataclass
class EvseControl:
    """What we know an EVSE accepted, and what is in flight."""

    accepted: Piecewise | None = None  # None: never accepted anything from us -> may draw its max
    uncontrolled: bool = False  # last command rejected / unanswered ...
    retry_at: datetime | None = None  # ... until then (clock time); then we try to control it again
    accepted_at: datetime | None = None  # when `accepted` took effect
    tx_id: str | None = None  # the transaction the accepted TxProfile belongs to


class ControlState:
    def __init__(self, live: Live) -> None:
        self.live = live
        self.evses: dict[str, EvseControl] = {}
        #: Station -> its EVSE keys ever put in `evses` (may name keys since cleared: read through .get).
        #: _set_after runs on every TxDefault a station accepts; scanning all EVSEs there made a boot ramp of
        #: N chargers cost N^2 (7.5 % of the CSMS's CPU with 3,000 chargers, py-spy, issue 10).
        self._keys_of: dict[str, set[str]] = {}
        #: TxDefaultProfile limit each station accepted (A per phase); absent: unknown (it may hold anything).
        self.tx_default_a: dict[str, float] = {}
        self.station_limit_a: dict[str, float] = {}  # from 2.0.1 NotifyChargingLimit, per EVSE key
        self.station_site: dict[str, str] = {}
        #: EVSEs whose EV stopped drawing while offered power (SuspendedEV): it wants nothing more until it
        #: draws again (Charging) or the EV or driver states a need. SuspendedEVSE - paused by our own 0 A -
        #: does not change it, otherwise a full car would flip between "full" and "paused" on every message.
        self.ev_full: dict[str, bool] = {}
        #: Latest measured power per EVSE, with the time it was measured (rate feedback, see ev_limit_a).
        self.measured: dict[str, tuple[datetime, float]] = {}
        self.ev_phases: dict[str, int] = {}  # phases the car on an EVSE draws on, when known
        self.caps_used: dict[str, float | None] = {}  # feedback cap per EVSE in the last snapshot
        # Recently ended sessions: a TxProfile for one of them that crossed its end is rightly refused.
        self.ended: collections.deque[str] = collections.deque(maxlen=1000)

    def ctl(self, key: str) -> EvseControl:
        c = self.evses.get(key)
        if c is None:
            c = self.evses[key] = EvseControl()
            self._keys_of.setdefault(station_of(key), set()).add(key)
        return c

    def first_default_pending(self, key: str) -> bool:
        """Nothing accepted on `key` yet and no command of ours failed on it: it just connected."""
        ctl = self.evses.get(key)
        return ctl is None or (ctl.accepted is None and ctl.retry_at is None)

    def uncontrolled(self, key: str, now: datetime) -> bool:
        ctl = self.evses.get(key)
        return ctl is not None and ctl.uncontrolled and (ctl.retry_at is None or now < ctl.retry_at)

    # --- the car ---------------------------------------------------------------------------------
    def note_transaction(self, tx: Transaction, started: bool, ended: bool, at: datetime) -> bool:
        """Update from a transaction fact; True if it is worth a re-plan."""
        key = evse_key(tx.station_id, tx.evse.evse_id)
        if ended:
            ctl = self.evses.get(key)
            if ctl is not None:
                # Whatever TxProfile it held died with the transaction, and a refusal of one that crossed the
                # end means nothing: the TxDefault it holds applies again (unknown: counted at its maximum).
                ctl.accepted, ctl.tx_id, ctl.uncontrolled = self.idle_profile(tx.station_id, at), None, False
            self.ended.append(tx.key)
        if started or ended:
            for d in (self.ev_full, self.measured, self.caps_used, self.ev_phases):
                d.pop(key, None)
        # The phases the car draws on, once measured, change what it can take: worth a re-plan.
        replan = bool(tx.ev_phases) and not ended and self.ev_phases.get(key) != tx.ev_phases
        if tx.ev_phases and not ended:
            self.ev_phases[key] = tx.ev_phases
        if tx.power_w is not None and not ended:
            self.measured[key] = (at, tx.power_w)
            replan = self.cap_moved(key, at) or replan
        if started or ended:
            return True
        return self.note_charging_state(key, tx.charging_state, at) or replan

    def note_charging_state(self, key: str, state: ChargingState | None, at: datetime | None = None) -> bool:
        """Track whether the EV on `key` is full; True if that changed (worth a re-plan). SuspendedEV means
        full only while the EVSE offers the car at least its minimum current: a charger may report it at a
        transaction's start, before the car had anything to draw (then SuspendedEVSE follows, which does not
        clear the mark), and a car marked full at 0 A would never be offered current again."""
        if state is ChargingState.SUSPENDED_EV:
            if at is not None and self.offered_a(key, at) < MIN_OFFER_A:
                return False
            full = True
        elif state is ChargingState.CHARGING:
            full = False
        else:
            return False
        changed = self.ev_full.get(key, False) != full
        self.ev_full[key] = full
        return changed

    def offered_a(self, key: str, at: datetime) -> float:
        """What the EVSE offers at `at` as far as we know (A per phase); inf if it never accepted our limit."""
        ctl = self.evses.get(key)
        if ctl is None or ctl.accepted is None:
            return math.inf
        return ctl.accepted.at(at)

    def note_needs(self, key: str) -> None:
        """The EV or driver stated a need: plan the car for it again even if it looked full. A car held at
        0 A never reports Charging, so without this a stated need could never lift the "full" mark; and
        what a full car drew (nothing) says nothing about the rate it takes once it wants energy again."""
        for d in (self.ev_full, self.measured, self.caps_used):
            d.pop(key, None)

    def watts_per_amp(self, key: str) -> float:
        """Watts per amp (per phase) of the car on `key`: the phases it draws on when known (a one-phase
        car drawing 1,380 W at 230 V draws 6 A), else the EVSE's."""
        c = self.live.charger(station_of(key))
        voltage, phases = (c.voltage_v, c.phases) if c else (230.0, 3)
        return voltage * min(self.ev_phases.get(key, phases), phases)

    def ev_limit_a(self, key: str, stated_a: float | None, now: datetime) -> float | None:
        """Rate feedback: an EV that drew well below what it was allowed, measured after that limit took
        effect, is planned at what it draws plus 1 A to ramp. Otherwise capacity given to a car that cannot
        take it (an 11 kW car on a 22 kW EVSE, a battery tapering near full) sits unused while others wait.
        The cap lifts as soon as the car draws near its limit again."""
        ctl = self.evses.get(key)
        measured = self.measured.get(key)
        if ctl is None or ctl.accepted is None or ctl.accepted_at is None or measured is None:
            return stated_a
        at, power_w = measured
        if at <= ctl.accepted_at:
            # No sample since the EVSE took its latest limit: keep the cap the last plan used, if any (a new
            # cap needs a sample taken under the limit it is judged against). Dropping it planned the car
            # at its full limit again after every profile we sent it, and its next meter value capped it
            # again: a re-plan and two profiles per session per meter value (issue 10, load run).
            held = self.caps_used.get(key)
            return stated_a if held is None else held if stated_a is None else min(stated_a, held)
        allowed_a = ctl.accepted.at(now)
        wpa = self.watts_per_amp(key)
        if allowed_a <= 0 or wpa <= 0:
            return stated_a
        drawn_a = power_w / wpa
        # Hysteresis: capped at what it draws + 1 A, a car that cannot take more draws 1 A below its cap,
        # which must not count as "near its limit" (the cap would lift and return on every meter value).
        capped = self.caps_used.get(key) is not None
        if drawn_a >= allowed_a - (LIFT_MARGIN_A if capped else FEEDBACK_MARGIN_A):
            return stated_a
        c = self.live.charger(station_of(key))
        cap = max(drawn_a + 1.0, c.min_current_a if c else 6.0)  # never below the minimum: that would stop it
        return cap if stated_a is None else min(stated_a, cap)

    def cap_moved(self, key: str, now: datetime) -> bool:
        """Whether the rate-feedback cap of `key` moved by 1 A or more since the last plan used it."""
        cap = self.ev_limit_a(key, None, now)
        used = self.caps_used.get(key)
        if cap is None and used is None:
            return False
        return cap is None or used is None or abs(cap - used) >= 1.0

    # --- the station -----------------------------------------------------------------------------
    def set_station_limit(self, station_id: str, evse_id: int | None, limit: float | None,
                          unit: RateUnit | None) -> None:
        """2.0.1 NotifyChargingLimit. A limit in W is converted over the EVSE's phases: the lower current,
        whichever phases the car uses."""
        c = self.live.charger(station_id)
        wpa = (c.voltage_v * c.phases) if c else 230.0 * 3
        keys = [evse_key(station_id, evse_id)] if evse_id else [
            evse_key(station_id, n) for n in range(1, (c.evse_count if c else 1) + 1)]
        for k in keys:
            if limit is None:
                self.station_limit_a.pop(k, None)
            else:
                self.station_limit_a[k] = limit / wpa if unit is RateUnit.WATTS else limit

    def held(self, station_id: str, evse_ids: list[int]) -> "Held":
        """What the station held as far as we know, before `station_ready` forgets it: its TxDefault and the
        TxProfiles its EVSEs accepted (by EVSE key, with their transaction). Upper bounds, like all of this
        state: a command that timed out counts at the higher of old and new."""
        profiles = {}
        known = True
        for n in evse_ids:
            k = evse_key(station_id, n)
            ctl = self.evses.get(k)
            known = known and ctl is not None and ctl.accepted is not None
            if ctl is not None and ctl.accepted is not None and ctl.tx_id is not None:
                profiles[k] = (ctl.accepted, ctl.tx_id)
        return Held(self.tx_default_a.get(station_id), profiles, known)

    def profile_accepted(self, key: str, p: Piecewise, tx_id: str, now: datetime) -> None:
        ctl = self.ctl(key)
        ctl.accepted, ctl.uncontrolled, ctl.tx_id, ctl.retry_at = p, False, tx_id, None
        ctl.accepted_at = now

    def station_ready(self, station_id: str, evse_ids: list[int]) -> None:
        """A (re)connected station may hold any profile: every EVSE counts at its maximum until it accepts
        one of ours (a TxDefault when idle, a TxProfile or the probe when in a session)."""
        self.tx_default_a.pop(station_id, None)
        keys = self._keys_of.setdefault(station_id, set())
        for n in evse_ids:
            k = evse_key(station_id, n)
            self.evses[k] = EvseControl()
            keys.add(k)

    def idle_profile(self, station_id: str, now: datetime) -> Piecewise | None:
        """What an EVSE without a transaction may draw: the station's TxDefault (None: unknown)."""
        a = self.tx_default_a.get(station_id)
        return None if a is None else Piecewise.constant(a, now - timedelta(days=1), now + FOREVER, a)

    def after_a(self, station_id: str) -> float:
        """What an EVSE falls back to once a TxProfile of ours ends: the station's TxDefault, or its maximum."""
        a = self.tx_default_a.get(station_id)
        if a is not None:
            return a
        c = self.live.charger(station_id)
        return c.max_current_a if c else 32.0

    def default_accepted(self, station_id: str, limit_a: float, idle_keys: list[str], now: datetime) -> None:
        self.tx_default_a[station_id] = limit_a
        for key in idle_keys:
            ctl = self.ctl(key)
            ctl.accepted, ctl.tx_id, ctl.uncontrolled = self.idle_profile(station_id, now), None, False
            ctl.accepted_at = now
        self._set_after(station_id, lambda _: limit_a)

    def default_unknown(self, station_id: str, limit_a: float, idle_keys: list[str], now: datetime,
                        timed_out: bool) -> None:
        """A TxDefault was refused (the old one stands) or unanswered (it may hold either: the higher)."""
        old = self.tx_default_a.get(station_id)
        if timed_out and old is not None:
            self.tx_default_a[station_id] = max(old, limit_a)
            self._set_after(station_id, lambda a: max(a, limit_a))
        for key in idle_keys:
            ctl = self.ctl(key)
            if timed_out and ctl.accepted is not None:
                ctl.accepted = pointwise(ctl.accepted, self.idle_profile(station_id, now) or ctl.accepted, max)
            ctl.uncontrolled = True
            ctl.retry_at = retry_time(now, timed_out)

    def _set_after(self, station_id: str, fn: Callable[[float], float]) -> None:
        """Profiles fall back to the station's TxDefault when they end: keep their `after` in step."""
        for key in self._keys_of.get(station_id, ()):
            ctl = self.evses.get(key)
            if ctl is not None and ctl.accepted is not None and ctl.tx_id is not None:
                ctl.accepted = replace(ctl.accepted, after=fn(ctl.accepted.after))

    def retry_site(self, site_id: str, now: datetime) -> None:
        """A limit changed: try again at once to control EVSEs whose last command was refused or timed out.
        The plan's first phase only sends decreases, which are safe whatever they did with that command;
        waiting out the retry delay would leave them above the new limit."""
        for key, ctl in self.evses.items():
            if ctl.uncontrolled and self.station_site.get(station_of(key)) == site_id:
                ctl.retry_at = now
