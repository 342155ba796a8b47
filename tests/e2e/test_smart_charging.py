"""Smart charging end to end: simulator chargers of both versions -> CSMS over websockets -> plan, DB and API.

- Needs stated through the API re-plan at once (a long debounce would show) and change the plan, also for a
  car the CSMS had marked full (that mark used to swallow every stated need).
- A one-phase car on a three-phase EVSE is known as such (per-phase meter values, 2.0.1 numberOfPhasesUsed and
  charging needs) and keeps charging at its full rate: rate feedback used to read its 32 A as 10.7 A.
- With smart charging disabled no charging profile is ever sent, and chargers charge at their maximum;
  switching it off by a config reload takes back the profiles already sent, switching it on takes control.
- The TxDefault of idle EVSEs is their share of what the cars here leave (a new car charges at once where there
  is room, and waits only for its own plan on a full site); `idle_reserve: true` keeps their min current free
  ahead of the cars instead; 0 A when the base load leaves nothing.
- An offline charger's session stays in the plan, not controlled, with the draw it is counted at.
- A departure learned from the driver's history reaches the plan; the margin before a stated departure is
  what the site's drivers needed (none where they kept their word).
- Timers run on the CSMS clock: the slot timer re-plans at grid boundaries, a refusing charger is retried
  after 60 clock seconds (a fake clock, moved by the test).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from csms.app import CsmsApp
from csms.config import Config, load_config
from csms.domain.clock import FakeClock
from csms.domain.ids import EvseRef, StationId, TransactionKey
from csms.domain.model import ChargingNeeds, Transaction
from csms.services.plan_input import slot_floor
from csms.services.smart.idle_share import IdleEvse, on_ladder
from simulator.ev import EV, EVModel

from .conftest import charger, ev, eventually, make_config, running

KEY = "e2e-smart-key-0123456789"


#: 22 kW over three idle three-phase 32 A EVSEs: 10.6 A each, sent rounded down to a level of the TxDefault
#: ladder (idle_share.on_ladder): 10.4 A.
IDLE_SHARE_A = on_ladder({"x": 10.6}, [IdleEvse("x#1", "x", 6.0, 32.0)])["x"]


def setup(limit_kw: float, chargers: list[str], extra: str = "") -> str:
    listed = ", ".join(f"{{id: {c}, site: s1}}" for c in chargers)
    return f"""
api: {{enabled: true, port: 0, keys: {{root: {{key: {KEY}, role: admin}}}}}}
sites: [{{id: s1, grid_limit_kw: {limit_kw}}}]
chargers: [{listed}]
id_tokens: [{{value: TAG-A}}, {{value: TAG-B}}, {{value: TAG-C}}]
billing: {{enabled: false}}
{extra}
"""


def api(app: CsmsApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}/api/v1", headers={"X-API-Key": KEY},
                             timeout=10)


@contextlib.asynccontextmanager
async def on_fake_clock(cfg: Config) -> AsyncIterator[tuple[CsmsApp, FakeClock]]:
    """The CSMS on a fake clock that stands at the real now (so chargers' timestamps agree) until moved."""
    clock = FakeClock(datetime.now(UTC))
    app = CsmsApp(cfg, clock=clock)
    await app.start()
    try:
        yield app, clock
    finally:
        await app.stop()


async def plan_of(c: httpx.AsyncClient) -> dict[str, Any]:
    return (await c.get("/sites/s1/plan")).json()  # type: ignore[no-any-return]


async def session_in_plan(c: httpx.AsyncClient, station: str) -> dict[str, Any] | None:
    plan = await plan_of(c)
    return next((s for s in plan.get("sessions", []) if s.get("station_id") == station), None)


def one_phase_ev(clock: Any) -> EV:
    return EV(EVModel(capacity_wh=60_000, max_power_w=7_360, phases=1), soc=0.2, energy_need_wh=30_000,
              departure=clock.now() + timedelta(hours=4))


@pytest.mark.parametrize("protocol", ["1.6", "2.0.1"])
async def test_needs_through_the_api_replan_at_once_and_change_the_plan(sqlite_url: str, protocol: str) -> None:
    # A debounce of 30 clock seconds on a clock that stands still: whatever is planned without moving the
    # clock was planned at once.
    cfg = make_config(sqlite_url, setup(44, ["CP-A"], "smart_charging: {debounce_s: 30}"), api=True)
    async with on_fake_clock(cfg) as (app, clock), api(app) as c:
        cp = charger(app, "CP-A", protocol, send_charging_needs=False)
        await cp.connect(timeout=10)
        try:
            # The car wants almost nothing: it is full at once (SuspendedEV) and the plan gives it 0 A.
            car = ev(cp.clock, need_wh=5)
            await cp.plug_in(car, "TAG-A")
            tx = await cp.start_charging()
            await eventually(lambda: car.satisfied and cp.status.value == "SuspendedEV", what="the car full")
            # ... and the CSMS has taken that message in (the charger's status changes before it is sent).
            await eventually(lambda: app.smart.state.ev_full.get("CP-A#1"), what="the CSMS knowing the car full")
            await clock.run_for(seconds=31)  # the debounced plan after start and "full"
            mine = await eventually(lambda: session_in_plan(c, "CP-A"), what="the session planned")
            assert mine["planned_energy_wh"] == 0 and mine["departure"] is None  # full; departure unknown
            await eventually(lambda: cp.effective_limit_a == 0, what="the charger held at 0 A")

            # The driver wants 10 kWh more within the hour (and sets the car's own target accordingly).
            car.energy_need_wh = 20_000
            departure = (clock.now() + timedelta(hours=1)).replace(microsecond=0)
            r = await c.put(f"/sessions/CP-A/{tx}/needs",
                            json={"departure_time": departure.isoformat(), "energy_kwh": 10})
            assert r.status_code == 200, r.text

            async def replanned() -> dict[str, Any] | None:
                s = await session_in_plan(c, "CP-A")
                return s if s and s["planned_energy_wh"] > 0 else None
            mine = await eventually(replanned, what="a plan with the driver's needs, without moving the clock")
            assert mine["requested_energy_wh"] == 10_000 and mine["departure_source"] == "driver"
            assert datetime.fromisoformat(mine["departure"]) == departure
            assert mine["current_a"][0] > 0
            await eventually(lambda: cp.power_w > 1_000, what="the car charges again")
        finally:
            await cp.close()


@pytest.mark.parametrize("protocol", ["1.6", "2.0.1"])
async def test_a_one_phase_car_is_known_and_keeps_its_full_rate(sqlite_url: str, protocol: str) -> None:
    async with running(make_config(sqlite_url, setup(44, ["CP-A"]), api=True)) as app, api(app) as c:
        cp = charger(app, "CP-A", protocol)
        await cp.connect(timeout=10)
        try:
            await cp.plug_in(one_phase_ev(cp.clock), "TAG-A")
            tx = await cp.start_charging()

            async def one_phase() -> dict[str, Any] | None:
                s = await session_in_plan(c, "CP-A")
                return s if s and s["ev_phases"] == 1 else None
            await eventually(one_phase, what="the plan knows the car draws on one phase")
            async with app.store.session() as s:
                stored = await s.transaction_by_charger_id("CP-A", tx)
            assert stored is not None and stored.ev_phases == 1
            # Several meter values later (1 s apart), rate feedback has not throttled it: 32 A on one phase.
            await eventually(lambda: cp.power_w > 7_000, what="full rate")
            await asyncio.sleep(4.0)
            assert cp.power_w > 7_000 and cp.effective_limit_a >= 31
        finally:
            await cp.close()


@pytest.mark.parametrize("protocol", ["1.6", "2.0.1"])
async def test_disabled_smart_charging_sends_no_profile(sqlite_url: str, protocol: str) -> None:
    cfg = make_config(sqlite_url, setup(11, ["CP-A", "CP-B"], "smart_charging: {enabled: false}"), api=True)
    async with running(cfg) as app, api(app) as c:
        cps = [charger(app, i, protocol) for i in ("CP-A", "CP-B")]
        for cp in cps:
            await cp.connect(timeout=10)
        try:
            for cp, token in zip(cps, ["TAG-A", "TAG-B"]):
                await cp.plug_in(ev(cp.clock), token)
                await cp.start_charging()
            await eventually(lambda: all(cp.power_w > 20_000 for cp in cps), what="both at their maximum")
            await asyncio.sleep(1.5)
            assert [cp.recorder.received("SetChargingProfile") for cp in cps] == [[], []]
            assert (await plan_of(c)) == {"site_id": "s1", "planned": False}
            r = await c.put("/sites/s1/limit", json={"limit_kw": 5})
            assert r.status_code == 400 and "disabled" in r.json()["error"]["message"]
            assert [cp.recorder.received("SetChargingProfile") for cp in cps] == [[], []]
        finally:
            for cp in cps:
                await cp.close()


async def test_tx_default_is_the_idle_evses_share_of_what_the_cars_leave(sqlite_url: str) -> None:
    """22 kW for three idle three-phase EVSEs: 10.6 A each (not 0 A). A car that plugs in charges at once at
    that; once planned it takes the whole site (the idle EVSEs are not held a reserve ahead of it) and the
    idle EVSEs' TxDefault falls to what it leaves, 0 A. A second car then waits only for its own plan, and
    the two share the site; what all three EVSEs may draw never exceeds the limit."""
    async with running(make_config(sqlite_url, setup(22, ["CP-A", "CP-B", "CP-C"]), api=True)) as app, \
            api(app) as c:
        # The two cars (on the 1.6 chargers) state no departure: they rank alike and split the site.
        cps = [charger(app, i, "1.6" if i != "CP-B" else "2.0.1") for i in ("CP-A", "CP-B", "CP-C")]
        for cp in cps:
            await cp.connect(timeout=10)
        try:
            await eventually(lambda: all(cp.effective_limit_a == IDLE_SHARE_A for cp in cps),
                             what="TxDefault 10.6 A each, on the ladder")
            plan = await plan_of(c)
            assert plan["tx_defaults_a"] == {"CP-A": IDLE_SHARE_A, "CP-B": IDLE_SHARE_A, "CP-C": IDLE_SHARE_A}
            cp = cps[0]
            await cp.plug_in(ev(cp.clock), "TAG-A")
            await cp.start_charging()
            # At once, at its TxDefault: the first power the simulator recorded for the session.
            first = await eventually(lambda: next((x for x in cp.recorder.samples if x.power_w > 0), None),
                                     what="the car charging")
            assert first.power_w == pytest.approx(IDLE_SHARE_A * 690, abs=1)
            # Planned: the whole site (22 kW = 31.8 A of its 32 A); with a reserve of 2 x 6 A for the idle
            # EVSEs it would get at most 13.7 kW.
            await eventually(lambda: cp.power_w > 21_000, what="the car planned at the whole site")
            await eventually(lambda: all(x.effective_limit_a == 0 for x in cps[1:]), what="idle TxDefaults 0 A")
            assert (cp.effective_limit_a + sum(x.effective_limit_a for x in cps[1:])) * 690 <= 22_000 + 1e-6
            # A second car, on a 1.6 charger at 0 A (its status goes SuspendedEV, then SuspendedEVSE: not "full"):
            # 0 A until its plan, then the two share the site.
            second = cps[2]
            await second.plug_in(ev(second.clock), "TAG-B")
            await second.start_charging()
            await eventually(lambda: second.power_w > 6 * 690, what="the second car planned")
            await eventually(lambda: cp.power_w + second.power_w > 21_000 and min(cp.power_w, second.power_w) > 9_000,
                             what="the site shared")
            assert sum(x.effective_limit_a for x in cps) * 690 <= 22_000 + 1e-6
        finally:
            for cp in cps:
                await cp.close()


async def test_idle_reserve_keeps_the_min_current_free_for_idle_evses(sqlite_url: str) -> None:
    """`smart_charging.idle_reserve: true`: the plan keeps each idle EVSE's 6 A minimum free ahead of the
    car that is here, so any car plugging in draws at least that at once."""
    extra = "smart_charging: {debounce_s: 0.1, idle_reserve: true}"
    async with running(make_config(sqlite_url, setup(22, ["CP-A", "CP-B", "CP-C"], extra), api=True)) as app:
        cps = [charger(app, i, "1.6" if i != "CP-B" else "2.0.1") for i in ("CP-A", "CP-B", "CP-C")]
        for cp in cps:
            await cp.connect(timeout=10)
        try:
            await eventually(lambda: all(cp.effective_limit_a == IDLE_SHARE_A for cp in cps),
                             what="TxDefault 10.6 A each, on the ladder")
            cp = cps[0]
            await cp.plug_in(ev(cp.clock), "TAG-A")
            await cp.start_charging()
            # Planned: it takes what the two idle EVSEs' minimum (2 x 6 A) leaves; they keep at least that.
            await eventually(lambda: cp.power_w > 13_000, what="the car planned above its TxDefault")
            await eventually(lambda: all(6 <= x.effective_limit_a < 10.6 for x in cps[1:]), what="idle shares")
            await asyncio.sleep(0.5)
            assert cp.power_w <= 22_000 - 2 * 6 * 690 + 1e-6
            total_a = cp.effective_limit_a + sum(x.effective_limit_a for x in cps[1:])
            assert total_a * 690 <= 22_000 + 1e-6
        finally:
            for cp in cps:
                await cp.close()


async def test_tx_default_is_0_a_only_when_base_load_leaves_nothing(sqlite_url: str) -> None:
    extra = "sites: [{id: s1, grid_limit_kw: 22, base_load: {constant_kw: 20}}]"
    async with running(make_config(sqlite_url, setup(22, ["CP-A"]).replace(
            "sites: [{id: s1, grid_limit_kw: 22}]", extra), api=True)) as app:
        cp = charger(app, "CP-A", "2.0.1")
        await cp.connect(timeout=10)
        try:
            await eventually(lambda: cp.recorder.received("SetChargingProfile"), what="a TxDefault")
            # (the frame is recorded as it arrives, the limit once installed: wait for that, then hold)
            await eventually(lambda: cp.effective_limit_a == 0, timeout=2, what="TxDefault installed")
            await asyncio.sleep(0.5)
            assert cp.effective_limit_a == 0  # 2 kW left: less than 6 A x 690 W
        finally:
            await cp.close()


async def test_an_offline_chargers_session_stays_in_the_plan_not_controlled(sqlite_url: str) -> None:
    async with running(make_config(sqlite_url, setup(44, ["CP-A", "CP-B"]), api=True)) as app, api(app) as c:
        cps = [charger(app, "CP-A", "1.6"), charger(app, "CP-B", "2.0.1")]
        for cp in cps:
            await cp.connect(timeout=10)
        try:
            for cp, token in zip(cps, ["TAG-A", "TAG-B"]):
                await cp.plug_in(ev(cp.clock), token)
                await cp.start_charging()
            await eventually(lambda: cps[0].recorder.received("SetChargingProfile") and cps[0].power_w > 0,
                             what="CP-A planned")
            await cps[0].disconnect(offline_s=3600)
            await eventually(lambda: not app.gateway.is_connected("CP-A"), what="CP-A offline")

            async def counted() -> dict[str, Any] | None:
                s = await session_in_plan(c, "CP-A")
                return s if s and s["controlled"] is False else None
            mine = await eventually(counted, what="CP-A's session in the plan, not controlled")
            assert mine["not_controlled"] == "offline" and mine["transaction_id"]
            assert mine["counted_a"] > 0 and mine["counted_w"] == pytest.approx(mine["counted_a"] * 690, abs=70)
            other = await session_in_plan(c, "CP-B")
            assert other is not None and other["controlled"] is True
            # CP-B is planned within what CP-A may still draw.
            assert other["current_a"][0] * 690 <= 44_000 - mine["counted_w"] + 100
        finally:
            for cp in cps:
                await cp.close()


async def test_a_departure_learned_from_the_drivers_history_reaches_the_plan(sqlite_url: str) -> None:
    async with running(make_config(sqlite_url, setup(44, ["CP-A"]), api=True)) as app, api(app) as c:
        # Six earlier stays of TAG-A: 1 h, 2 h, ... 6 h. The 20 % quantile (lower) of them is 2 h.
        async with app.store.session() as s:
            t0 = datetime.now(UTC) - timedelta(days=10)
            for i in range(6):
                start = t0 + timedelta(days=i)
                await s.save_transaction(Transaction(
                    TransactionKey(f"CP-A/old-{i}"), StationId("CP-A"), f"old-{i}", EvseRef(1), "TAG-A", start,
                    ended_at=start + timedelta(hours=i + 1), energy_wh=5_000))
        cp = charger(app, "CP-A", "1.6")
        await cp.connect(timeout=10)
        try:
            await cp.plug_in(ev(cp.clock), "TAG-A")
            await cp.start_charging()

            async def learned() -> dict[str, Any] | None:
                s = await session_in_plan(c, "CP-A")
                return s if s and s["departure_source"] == "learned" else None
            mine = await eventually(learned, what="the learned departure in the plan")
            async with app.store.session() as s:
                [tx] = await s.active_transactions("CP-A")
            assert datetime.fromisoformat(mine["departure"]) == tx.started_at + timedelta(hours=2)
        finally:
            await cp.close()


async def test_the_slot_timer_replans_at_grid_boundaries_on_the_clock(sqlite_url: str) -> None:
    cfg = make_config(sqlite_url, setup(44, ["CP-A"], "smart_charging: {debounce_s: 0, slot_min: 15, "
                                                      "replan_interval_s: 3600}"), api=True)
    async with on_fake_clock(cfg) as (app, clock), api(app) as c:
        cp = charger(app, "CP-A", "2.0.1")  # idle: no event asks for a plan, only the timer
        await cp.connect(timeout=10)
        try:
            await eventually(lambda: cp.recorder.received("SetChargingProfile"), what="planned at connection")
            await asyncio.sleep(0.5)
            first = await plan_of(c)
            assert datetime.fromisoformat(first["start"]) == clock.now()  # the plan starts now...
            boundary = slot_floor(clock.now(), 900) + timedelta(seconds=900)
            assert first["first_slot_s"] == pytest.approx((boundary - clock.now()).total_seconds(), abs=1e-3)
            plans = app.smart.sites["s1"].plans
            await clock.run_for(seconds=(boundary - clock.now()).total_seconds() - 1)
            await asyncio.sleep(0.5)
            assert app.smart.sites["s1"].plans == plans  # nothing before the boundary
            await clock.run_for(seconds=1)
            await eventually(lambda: app.smart.sites["s1"].plans == plans + 1, what="a re-plan at the boundary")
            plan = await plan_of(c)
            assert datetime.fromisoformat(plan["start"]) == boundary
            assert plan["first_slot_s"] == 900  # ... and slot 0 runs to the next boundary
        finally:
            await cp.close()


async def test_the_timer_also_replans_every_replan_interval(sqlite_url: str) -> None:
    """Between boundaries a re-plan comes at least every replan_interval_s, so slot 0 (planned only that far)
    never outlives the plan that sent it."""
    cfg = make_config(sqlite_url, setup(44, ["CP-A"], "smart_charging: {debounce_s: 0, slot_min: 60, "
                                                      "replan_interval_s: 120}"), api=True)
    async with on_fake_clock(cfg) as (app, clock), api(app) as c:
        cp = charger(app, "CP-A", "2.0.1")
        await cp.connect(timeout=10)
        try:
            await eventually(lambda: cp.recorder.received("SetChargingProfile"), what="planned at connection")
            await asyncio.sleep(0.5)
            plans = app.smart.sites["s1"].plans
            await clock.run_for(seconds=121)
            await eventually(lambda: app.smart.sites["s1"].plans > plans, what="a re-plan within the interval")
        finally:
            await cp.close()


async def test_a_refusing_charger_is_retried_after_60_clock_seconds(sqlite_url: str) -> None:
    cfg = make_config(sqlite_url, setup(44, ["CP-A"], "smart_charging: {debounce_s: 0}"), api=True)
    async with on_fake_clock(cfg) as (app, clock):
        cp = charger(app, "CP-A", "1.6", reject_profiles=True)
        await cp.connect(timeout=10)
        try:
            await eventually(lambda: cp.recorder.received("SetChargingProfile"), what="a first attempt")
            await asyncio.sleep(0.5)
            tried = len(cp.recorder.received("SetChargingProfile"))
            await clock.run_for(seconds=59)
            await asyncio.sleep(0.5)
            assert len(cp.recorder.received("SetChargingProfile")) == tried  # not before its time
            await clock.run_for(seconds=1)
            await eventually(lambda: len(cp.recorder.received("SetChargingProfile")) > tried, what="the retry")
        finally:
            await cp.close()


@pytest.mark.parametrize("protocol", ["1.6", "2.0.1"])
async def test_switching_smart_charging_off_by_reload_takes_the_profiles_back(tmp_path: Path, sqlite_url: str,
                                                                              protocol: str) -> None:
    def config(enabled: bool) -> str:
        return f"""
server: {{port: 0, heartbeat_interval_s: 60, security_profile: 0}}
api: {{enabled: false}}
database: {{url: "{sqlite_url}"}}
smart_charging: {{debounce_s: 0.1, enabled: {str(enabled).lower()}}}
sites: [{{id: s1, grid_limit_kw: 11}}]
chargers: [{{id: CP-A, site: s1}}]
id_tokens: [{{value: TAG-A}}]
"""
    path = tmp_path / "config.yaml"
    path.write_text(config(True))
    app = CsmsApp(load_config(path), config_path=path)
    await app.start()
    cp = charger(app, "CP-A", protocol)
    try:
        await cp.connect(timeout=10)
        await cp.plug_in(ev(cp.clock), "TAG-A")
        await cp.start_charging()
        await eventually(lambda: 0 < cp.power_w <= 11_000 + 1, what="held within the 11 kW site")
        path.write_text(config(False))
        assert await app.reload()
        await eventually(lambda: cp.power_w > 20_000, what="the car at the charger's maximum: profiles cleared")
        cleared = {m.payload.get("id", m.payload.get("chargingProfileId")) for m in cp.recorder.received(
            "ClearChargingProfile")}
        assert cleared == {1, 1001}  # our TxDefault and the EVSE's TxProfile
        sent = len(cp.recorder.received("SetChargingProfile"))
        await asyncio.sleep(1.0)
        assert len(cp.recorder.received("SetChargingProfile")) == sent  # off means off
        path.write_text(config(True))
        assert await app.reload()
        await eventually(lambda: 0 < cp.power_w <= 11_000 + 1, what="back under control once switched on")
    finally:
        await cp.close()
        await app.stop()


@pytest.mark.parametrize(("smart", "kept", "whole_stay"), [
    ("departure_margin_learned: true", True, True),
    ("departure_margin_learned: true", False, False),
    ("shave_below_limit: true", True, True),       # the default, auto: learned where the plan has a forecast
    ("shave_below_limit: false", True, False),     # ... and the configured margin under the site's own limit
], ids=["drivers-keep-their-word", "no-history", "auto-shaving", "auto-under-the-limit"])
async def test_the_departure_margin_is_what_the_sites_drivers_needed(sqlite_url: str, smart: str, kept: bool,
                                                                      whole_stay: bool) -> None:
    """A stated departure is planned a margin earlier (drivers leave early), but only as much earlier as this
    site's drivers really left: where twenty past drivers left exactly when they said, the car gets the energy
    of its whole stay; with no such history, the configured 15 % of the time left is held back. By default
    (``auto``) the learned margin applies where the plan has a forecast (the site shaves its peak and has
    history: the twenty past sessions are that history); under the site's own limit the
    configured margin stays (its early finish serves more drivers in full there)."""
    cfg = make_config(sqlite_url, setup(44, ["CP-A", "CP-B"], f"smart_charging: {{{smart}}}"), api=True)
    async with running(cfg) as app, api(app) as c:
        if kept:
            async with app.store.session() as s:
                # Each day's car came two hours later in the day than now, so those days are also a forecast of
                # a car still to come today (auto learns only where the plan has one).
                t0 = datetime.now(UTC) - timedelta(days=20) + timedelta(hours=2)
                for i in range(20):
                    start = t0 + timedelta(days=i)
                    end = start + timedelta(hours=3)
                    await s.save_transaction(Transaction(
                        TransactionKey(f"CP-B/old-{i}"), StationId("CP-B"), f"old-{i}", EvseRef(1), "TAG-B", start,
                        ended_at=end, energy_wh=5_000))
                    await s.add_charging_needs(ChargingNeeds(StationId("CP-B"), EvseRef(1), start,
                                                             energy_amount_wh=5_000, departure_time=end,
                                                             source="driver"))
            # The history is read once an hour per site; a plan at start-up has read it already (empty).
            app.smart.snapshots.margins.forget()
        cp = charger(app, "CP-A", "1.6")
        await cp.connect(timeout=10)
        try:
            await cp.plug_in(ev(cp.clock, need_wh=60_000), "TAG-A")
            tx = await cp.start_charging()
            # On the 15-minute grid, 60 to 75 minutes away: the slot a car leaves in is planned at the share of
            # it before the (planned) departure, so the configured margin (15 % of the 60-75 minutes left,
            # 9-11 minutes) leaves at most 6 of that slot's 15 minutes: at most 0.4 x the car's 32 A.
            departure = slot_floor(datetime.now(UTC), 900) + timedelta(minutes=75)
            r = await c.put(f"/sessions/CP-A/{tx}/needs",
                            json={"departure_time": departure.isoformat(), "energy_kwh": 50})
            assert r.status_code == 200, r.text

            async def stated() -> dict[str, Any] | None:
                s = await session_in_plan(c, "CP-A")
                return s if s and s["departure_source"] == "driver" else None
            mine = await eventually(stated, what="a plan with the driver's departure")
            # Slot 0 runs to the next boundary, slots 1-4 are the hour up to the departure; 50 kWh is more than
            # that hour gives, so every slot the plan may use is used at the car's full rate.
            assert mine["current_a"][1] > 6, mine["current_a"][:6]
            if whole_stay:   # the whole stay: more in the last slot than the configured margin leaves of it
                assert mine["current_a"][4] > 32 * 0.4 + 0.1, mine["current_a"][:6]
            else:
                assert mine["current_a"][4] <= 32 * 0.4 + 0.1, mine["current_a"][:6]   # the margin held back
        finally:
            await cp.close()


async def test_a_site_plans_on_its_own_grid_and_budget(sqlite_url: str) -> None:
    """sites[].planning: a large site gets a coarser grid and a longer solver budget than smart_charging's (a
    1,000-EVSE site at 96 slots of 15 min never finished a plan within 5 s); the other sites keep theirs."""
    text = setup(44, ["CP-A"], "smart_charging: {slot_min: 15, horizon_h: 24}").replace(
        "sites: [{id: s1, grid_limit_kw: 44}]",
        "sites: [{id: s1, grid_limit_kw: 44, planning: {slot_min: 30, horizon_h: 6, solver_time_limit_s: 7}}, "
        "{id: s2, grid_limit_kw: 22}]").replace(
        "chargers: [{id: CP-A, site: s1}]", "chargers: [{id: CP-A, site: s1}, {id: CP-B, site: s2}]")
    async with running(make_config(sqlite_url, text, api=True)) as app, api(app) as c:
        budgets: dict[str, float] = {}
        submit = app.smart.planning.planners.submit

        def recording(site_id: str, options: Any, inp: Any, started: Any = None) -> Any:
            budgets[site_id] = options.time_limit_s
            return submit(site_id, options, inp, started)

        app.smart.planning.planners.submit = recording  # type: ignore[method-assign]
        cps = [charger(app, "CP-A", "2.0.1"), charger(app, "CP-B", "1.6")]
        try:
            for cp in cps:
                await cp.connect(timeout=10)
                await cp.plug_in(ev(cp.clock), "TAG-A")
                await cp.start_charging()
            await eventually(lambda: session_in_plan(c, "CP-A"), what="CP-A in s1's plan")
            await eventually(lambda: {"s1", "s2"} <= budgets.keys(), what="both sites planned")
            plan = await plan_of(c)
            start = datetime.fromisoformat(plan["start"])
            assert plan["slot_s"] == 1800 and len(plan["forecast"]) == 12    # 6 h of 30 min
            boundary = slot_floor(start, 1800) + timedelta(seconds=1800)
            assert plan["first_slot_s"] == pytest.approx((boundary - start).total_seconds(), abs=1e-3)
            other = (await c.get("/sites/s2/plan")).json()
            assert other["slot_s"] == 900 and len(other["forecast"]) == 96
            assert budgets == {"s1": 7.0, "s2": app.cfg.smart_charging.solver_time_limit_s}
        finally:
            for cp in cps:
                await cp.close()
