"""Delivery: a plan becomes charging profiles, sent in an order that keeps the site within its limits.

Why two phases: if every old profile and every new one keep the site within its limits, a mix of old and
new (while the commands are in flight) may not. Phase 1 sends min(old, new) - only decreases, TxDefault
decreases included -, phase 2 sends new, and only once phase 1 fully landed; a decrease that did not land
means a re-plan with that charger counted at what it may still draw (see limits.py and control.py).

Profiles follow the plan's real slot times: slot 0 from now to the next grid boundary, later slots on the
grid (`Schedule.slot_starts()`). An EVSE in a session that never accepted a profile from us is *probed* with a
0 A TxProfile to gain control of it; a charger that refused is retried after RETRY_S clock seconds.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta

from csms.config import ChargerConfig
from csms.domain import commands as cmd
from csms.domain.clock import Clock
from csms.domain.enums import ProfilePurpose, RateUnit
from csms.domain.model import ChargingProfile, SchedulePeriod
from csms.domain.ports import ChargerGateway
from csms.scheduling import Schedule

from ..limits import Piecewise, floor_to, never_above, pointwise, same_from
from ..plan_input import evse_key
from .control import RETRY_S, ControlState, Held, evse_id_of, retry_time
from .live import Live
from .snapshot import Snapshot

log = logging.getLogger("csms.smart")

TX_DEFAULT_PROFILE_ID = 1
TX_PROFILE_ID_BASE = 1000  # + evse id: one TxProfile per EVSE, replaced on each change
CLOCK_SKEW_S = 60  # the first period starts this much early: a charger whose clock lags must not see a gap
DEFAULT_TOLERANCE_A = 0.05
#: A TxDefault rises only by this much or more: each plan moves the leftover a little, and resending every
#: idle station's TxDefault on every plan would be chatter. It falls whenever it must.
DEFAULT_RAISE_STEP_A = 1.0
#: Likewise a TxProfile is re-sent for a rise only if it rises by this much somewhere (a car offered 0 A that
#: may now charge rises by its min current, 6 A: always material). The car then draws up to this much less
#: than planned until a material change; never more, so safety does not depend on it. Falls always go out.
PROFILE_RAISE_STEP_A = 1.0
#: A site is booting while at least BOOT_READIES of its chargers became ready within the last BOOT_WINDOW_S real
#: seconds (a ramp or a storm, not one charger rebooting): its TxDefault rises wait until that is over (see
#: _defaults), and are then sent in one plan, paced (SENDS_AT_ONCE).
BOOT_READIES = 3
BOOT_WINDOW_S = 5.0
#: Profiles of one delivery phase in flight at once (see _send_all).
SENDS_AT_ONCE = 16

#: (station, evse id, charger transaction id) a TxProfile is for.
Target = tuple[str, int, str]
#: A command of a phase: a TxProfile (EVSE key, limits) or a TxDefault (station id, A), and why it is sent
#: ("decrease", "rise", "new": never accepted or another transaction, "unknown": a TxDefault we do not know).
Item = tuple[str, "Piecewise | float", str]


class Delivery:
    def __init__(self, live: Live, gateway: ChargerGateway, clock: Clock, state: ControlState, *,
                 request: Callable[[str, bool], None], retry_later: Callable[[str, float], None],
                 request_after: Callable[[str, float], None] | None = None) -> None:
        self.live = live
        self.gateway = gateway
        self.clock = clock
        self.state = state
        self._request = request
        self._retry_later = retry_later
        self._request_after = request_after
        #: Per site: when its chargers became ready lately (monotonic, the last BOOT_READIES).
        self._readies: dict[str, collections.deque[float]] = {}
        #: Profiles sent, by (kind, why): kind "tx_default" or "tx_profile"; why "decrease", "rise", "new",
        #: "unknown", "probe", "reassert" (`/metrics` csms_profiles_sent: what a boot ramp or storm costs).
        self.sent: collections.Counter[tuple[str, str]] = collections.Counter()
        #: Stations whose `secure` commands are in flight: a plan meanwhile counts them at their maximum and
        #: sends them nothing (their own re-plan follows).
        self._securing: set[str] = set()

    def note_ready(self, site_id: str) -> None:
        self._readies.setdefault(site_id, collections.deque(maxlen=BOOT_READIES)).append(time.monotonic())

    def booting_for_s(self, site_id: str) -> float:
        """How long the site still counts as booting (0: not booting): until BOOT_WINDOW_S after the oldest of
        its last BOOT_READIES readies."""
        readies = self._readies.get(site_id)
        if readies is None or len(readies) < BOOT_READIES:
            return 0.0
        return max(0.0, readies[0] + BOOT_WINDOW_S - time.monotonic())

    async def deliver(self, snap: Snapshot, schedule: Schedule, defaults: dict[str, float]) -> None:
        """Send what changed: TxProfiles of planned sessions and the idle EVSEs' TxDefault per station."""
        inp = snap.input
        now = inp.start
        # Compare profiles only up to two slots before the horizon ends: differences beyond it are the
        # horizon rolling forward, and the plan is re-sent well before they matter.
        until = inp.slot_start(max(1, inp.horizon_slots - 2))
        starts = schedule.slot_starts()
        targets: dict[str, Target] = {}
        phase1: list[Item] = []
        phase2: list[Item] = []
        for plan in schedule.sessions:
            info = snap.sessions[plan.session_key]
            if info.station_id in self._securing:
                continue
            key, tx_id = plan.evse_key, info.transaction_id
            targets[key] = (info.station_id, info.evse_id, tx_id)
            new = Piecewise.from_breaks(starts, [floor_to(v) for v in plan.current_a],
                                        after=self.state.after_a(info.station_id))
            ctl = self.state.ctl(key)
            old = ctl.accepted if ctl.tx_id in (None, tx_id) else None
            if old is not None and same_from(old, new, now, until) and ctl.tx_id == tx_id:
                continue  # unchanged profiles are not resent
            if old is None:
                phase2.append((key, new, "new"))  # never accepted: its draw is already counted as its max
                continue
            low = pointwise(old, new, min).since(now)
            lower = not same_from(low, old, now, until)
            if lower:
                phase1.append((key, low, "decrease"))
            if not never_above(new, low, now, until):
                # A rise. Immaterial ones (< PROFILE_RAISE_STEP_A everywhere) stay unsent: the EVSE keeps `low`
                # (or `old`), below the plan. A profile of another transaction is replaced whatever the rise.
                if ctl.tx_id != tx_id or not never_above(new, low, now, until, PROFILE_RAISE_STEP_A):
                    phase2.append((key, new, "rise" if ctl.tx_id == tx_id else "new"))
            elif not lower:
                phase1.append((key, new, "new"))  # the same limits, for the session's new transaction
        quiet_in_s = self.booting_for_s(snap.site_id)
        hold = quiet_in_s > 0 or self._first_defaults_pending(snap)
        gained = self._defaults(defaults, phase1, phase2, hold_rises=hold)
        if hold and self._request_after is not None and self._rises_held:
            self._request_after(snap.site_id, max(quiet_in_s, 0.0))  # the shares, once the boots are over
        if not await self._send_all(snap, targets, phase1):
            # A decrease did not land: increases planned on top of it would overload. Re-plan with that
            # charger counted at what it may still draw.
            self._request(snap.site_id, False)
            return
        if not await self._send_all(snap, targets, phase2):
            self._request(snap.site_id, True)
        elif any(self.state.tx_default_a.get(s) is not None for s in gained):
            # Newly controlled idle EVSEs: plan with their real default; while chargers still boot, once
            # they stopped (the re-plan asked for above then does it).
            if quiet_in_s > 0 and self._request_after is not None:
                self._request_after(snap.site_id, quiet_in_s)
            else:
                self._request(snap.site_id, False)

    def _first_defaults_pending(self, snap: Snapshot) -> bool:
        """Whether an idle EVSE of the site waits for its first TxDefault (just connected, not yet refused or
        unanswered): it counts at its maximum until it takes our 0 A, which shrinks everyone's share for
        one plan only."""
        return any(not e.controlled and self.state.first_default_pending(e.evse_key) for e in snap.idle)

    def _defaults(self, defaults: dict[str, float], phase1: list[Item], phase2: list[Item], *,
                  hold_rises: bool = False) -> list[str]:
        """Queue TxDefault changes: decreases (and stations whose TxDefault we do not know, which count at
        their maximum) in phase 1, increases in phase 2. Returns the stations not yet controlled.

        `hold_rises`: increases wait while the site boots (BOOT_READIES within BOOT_WINDOW_S) or
        still waits for its first TxDefault. In a boot storm the shares fall while newcomers count at their
        maximum (they may hold any profile: that fall is safety, it is always sent) and rise once they took
        0 A, then fall again with the next newcomers: idle stations went 0 -> 16 -> 0 A several times
        (docs/performance.md). Held, each gets its 0 A and then one share once the boots are over (a re-plan
        is asked for then). Holding a rise is always safe; decreases are never held."""
        unknown: list[str] = []
        self._rises_held = False
        for station_id, new in defaults.items():
            if station_id in self._securing:
                continue
            old = self.state.tx_default_a.get(station_id)
            if old is None:
                unknown.append(station_id)
                phase1.append((station_id, new, "unknown"))
            elif new < old - DEFAULT_TOLERANCE_A:
                phase1.append((station_id, new, "decrease"))
            elif hold_rises:
                self._rises_held |= new > old + DEFAULT_TOLERANCE_A
            elif new >= old + DEFAULT_RAISE_STEP_A or (new > old + DEFAULT_TOLERANCE_A and old == 0):
                phase2.append((station_id, new, "rise"))
        return unknown

    async def secure(self, station_id: str, evse_ids: list[int], held: Held, busy: Mapping[int, str]) -> bool:
        """A station just (re)connected and counts at its maximum until it accepts a profile of ours. Left to
        the plan, that maximum shrank every other EVSE's share for a plan or two: a storm of reconnects sent
        about twelve profiles per charger, most of them to chargers that had not moved (a decrease, then
        the rise back), and probed every running session with 0 A. So before its site is planned, send it
        what it held as far as we know - its TxDefault, and the TxProfile of each session still running on
        the same transaction - or a 0 A TxDefault if we knew nothing. Neither is more than the plans before
        counted for it, so once it is accepted no other EVSE has to change. Only what it accepts counts;
        anything else stays at its maximum for the plan to deal with, as before. `busy`: EVSE id ->
        charger transaction id of its open sessions (from the database). True if it took every command: then
        nothing about it is urgent any more."""
        self._securing.add(station_id)
        try:
            return await self._secure(station_id, evse_ids, held, busy)
        finally:
            self._securing.discard(station_id)

    async def _secure(self, station_id: str, evse_ids: list[int], held: Held, busy: Mapping[int, str]) -> bool:
        now = self.clock.now()
        idle = [evse_key(station_id, n) for n in evse_ids if n not in busy]
        default_a = held.default_a if held.default_a is not None else 0.0
        self.sent["tx_default", "reassert" if held.default_a is not None else "first"] += 1
        res = await self.gateway.send(station_id, cmd.SetChargingProfile(0, self._tx_default(station_id, default_a)))
        if not res.accepted:
            return False
        self.state.default_accepted(station_id, default_a, idle, self.clock.now())
        sends = []
        for n, tx_id in busy.items():
            key = evse_key(station_id, n)
            p_tx = held.profiles.get(key)
            if p_tx is None or p_tx[1] != tx_id or p_tx[0].end <= now:
                continue  # never controlled, or another session: the plan probes it
            p = replace(p_tx[0].since(now), after=self.state.after_a(station_id))
            self.sent["tx_profile", "reassert"] += 1
            sends.append(self._reassert((station_id, n, tx_id), p))
        # A session we held no profile for is probed by the plan: urgent too.
        return all(await asyncio.gather(*sends)) and len(sends) == len(busy)

    async def _reassert(self, target: Target, p: Piecewise) -> bool:
        station_id, evse_id, tx_id = target
        res = await self.gateway.send(station_id, cmd.SetChargingProfile(
            evse_id, tx_profile(evse_id, tx_id, p, self.live.charger(station_id))))
        if res.accepted:
            self.state.profile_accepted(evse_key(station_id, evse_id), p, tx_id, self.clock.now())
        return res.accepted

    async def probe(self, snap: Snapshot) -> bool:
        """Gain control of EVSEs in a session that never accepted a profile from us, by sending a 0 A
        TxProfile. Only a decrease is safe whatever they hold now (we counted them at their maximum, but
        a command that timed out may have left them lower); the next plan raises them in its second
        phase. Returns True if any took it."""
        inp = snap.input
        fixed = {f.evse_key for f in inp.fixed_draws}
        gained = False
        for info in snap.sessions.values():
            key = info.evse_key
            ctl = self.state.evses.get(key)
            if key not in fixed or (ctl is not None and (ctl.accepted is not None or ctl.uncontrolled)):
                continue
            if not self.gateway.is_connected(info.station_id) or info.station_id in self._securing:
                continue
            p = Piecewise.constant(0.0, inp.start, inp.end, after=self.state.after_a(info.station_id))
            self.sent["tx_profile", "probe"] += 1
            gained |= await self._send_profile((info.station_id, info.evse_id, info.transaction_id), p)
        return gained

    async def release(self, station_ids: list[str]) -> None:
        """Smart charging was switched off: take back every profile we installed, so no charger stays held
        at a limit nobody maintains any more."""
        for station_id in station_ids:
            if not self.gateway.is_connected(station_id):
                continue
            res = await self.gateway.send(station_id, cmd.ClearChargingProfile(profile_id=TX_DEFAULT_PROFILE_ID))
            log.info("tx default profile cleared station=%s status=%s", station_id, res.status)
            prefix = f"{station_id}#"
            for key in [k for k in self.state.evses if k.startswith(prefix)]:
                await self.gateway.send(station_id,
                                        cmd.ClearChargingProfile(profile_id=TX_PROFILE_ID_BASE + evse_id_of(key)))
        self.state.evses.clear()
        self.state.tx_default_a.clear()

    async def _send_all(self, snap: Snapshot, targets: dict[str, Target], items: list[Item]) -> bool:
        if not items:
            return True
        for _, v, why in items:
            self.sent["tx_profile" if isinstance(v, Piecewise) else "tx_default", why] += 1
        # At most SENDS_AT_ONCE in flight: a plan of a 1,000-EVSE site may change 500 profiles at once, and
        # starting them all in one go (each encoded, validated and written before the loop turns) held the
        # chargers' own messages back for a second (issue 10, a p99 burst at the end of a boot ramp).
        pace = asyncio.Semaphore(SENDS_AT_ONCE)

        async def one(k: str, v: "Piecewise | float") -> bool:
            async with pace:
                if isinstance(v, Piecewise):
                    return await self._send_profile(targets[k], v)
                return await self._send_default(snap, k, v)
        results = await asyncio.gather(*(one(k, v) for k, v, _ in items))
        return all(results)

    async def _send_default(self, snap: Snapshot, station_id: str, limit_a: float) -> bool:
        idle = snap.idle_keys_of.get(station_id, [])
        res = await self.gateway.send(station_id, cmd.SetChargingProfile(0, self._tx_default(station_id, limit_a)))
        now = self.clock.now()
        log.log(logging.DEBUG if res.accepted else logging.INFO,
                "tx default profile station=%s limit_a=%s status=%s", station_id, limit_a, res.status)
        if res.accepted:
            self.state.default_accepted(station_id, limit_a, idle, now)
            return True
        self.state.default_unknown(station_id, limit_a, idle, now,
                                   timed_out=str(res.status) in ("Timeout", "Error", "Offline"))
        self._retry_later(station_id, RETRY_S)
        return False

    def _tx_default(self, station_id: str, limit_a: float) -> ChargingProfile:
        c = self.live.charger(station_id)
        return ChargingProfile(
            profile_id=TX_DEFAULT_PROFILE_ID, purpose=ProfilePurpose.TX_DEFAULT, stack_level=0,
            unit=RateUnit.AMPS, periods=(SchedulePeriod(0, round(limit_a, 1), c.phases if c else None),),
        )

    async def _send_profile(self, target: Target, p: Piecewise) -> bool:
        station_id, evse_id, tx_id = target
        ctl = self.state.ctl(evse_key(station_id, evse_id))
        profile = tx_profile(evse_id, tx_id, p, self.live.charger(station_id))
        res = await self.gateway.send(station_id, cmd.SetChargingProfile(evse_id, profile))
        if res.accepted:
            self.state.profile_accepted(evse_key(station_id, evse_id), p, tx_id, self.clock.now())
            return True
        if f"{station_id}/{tx_id}" in self.state.ended:
            log.debug("profile for an ended session refused station=%s evse=%s", station_id, evse_id)
            return True  # nothing to control any more; the end event already reset this EVSE
        log.warning("profile not applied station=%s evse=%s status=%s detail=%s", station_id, evse_id,
                    res.status, res.detail)
        timed_out = str(res.status) in ("Timeout", "Error", "Offline")
        if timed_out and ctl.accepted is not None:
            # It may have applied it: assume the higher of the two until we know.
            ctl.accepted = pointwise(ctl.accepted, p, max)
        ctl.uncontrolled = True
        ctl.retry_at = retry_time(self.clock.now(), timed_out)
        self._retry_later(station_id, RETRY_S)
        return False


def tx_profile(evse_id: int, tx_id: str, p: Piecewise, charger: ChargerConfig | None) -> ChargingProfile:
    """An absolute TxProfile over the horizon, so a charger that loses its connection keeps following it.
    It starts on a whole second, so the periods that start on the slot grid have exact offsets."""
    start = (p.breaks[0] - timedelta(seconds=CLOCK_SKEW_S)).replace(microsecond=0)
    phases = charger.phases if charger else None
    periods = tuple(SchedulePeriod(0 if i == 0 else int((b - start).total_seconds()), round(v, 1), phases)
                    for i, (b, v) in enumerate(zip(p.breaks, p.values)))
    return ChargingProfile(
        profile_id=TX_PROFILE_ID_BASE + evse_id, purpose=ProfilePurpose.TX, stack_level=1, unit=RateUnit.AMPS,
        periods=periods, start=start, duration_s=int((p.end - start).total_seconds()), charger_tx_id=tx_id,
    )
