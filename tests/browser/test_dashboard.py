"""The dashboard in a real browser: headless Debian chromium driven by Selenium (chromium-driver) against the
whole CSMS and simulator chargers of both versions over real websockets.

Selenium calls block, and the CSMS runs in the test's event loop: every browser call goes through a worker
thread (`B`), so the CSMS keeps serving while the browser waits. Screenshots go to reports/dashboard/ (a CI
artefact). Without chromium and chromedriver the tests skip, naming the packages; .ci/run installs them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime, timedelta
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from csms.app import CsmsApp
from csms.config import parse_config
from simulator.charger import Charger, ChargerConfig
from simulator.clock import SimClock
from simulator.ev import EV, EVModel

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "reports" / "dashboard"
OPS_KEY = "browser-operator-key-0123456789"
VIEW_KEY = "browser-viewer-key-0123456789"


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (the test extra: ./scripts/test installs it)"
    for exe in ("chromium", "chromedriver"):
        if shutil.which(exe) is None:
            return (f"{exe} not found: apt-get install chromium chromium-driver (Debian's headless browser; "
                    f".ci/run installs it)")
    return None


MISSING = _browser_missing()
if MISSING and os.environ.get("CSMS_REQUIRE_SERVICES") == "1":
    pytest.fail(MISSING + " (CSMS_REQUIRE_SERVICES=1 makes the browser tests mandatory)", pytrace=False)
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

CONFIG = f"""
server: {{port: 0, heartbeat_interval_s: 60, security_profile: 0}}
api: {{port: 0, keys: {{ops: {{key: {OPS_KEY}, role: operator}}, look: {{key: {VIEW_KEY}, role: viewer}}}}}}
database: {{url: "sqlite+aiosqlite:///{{db}}"}}
smart_charging: {{debounce_s: 0.1}}
bookings: {{reserve_lead_min: 30}}
# CP-16 sits behind circuit row-a: 12 A x 230 V x 3 = 8.28 kW, below the 11 kW its car could draw
sites: [{{id: depot, grid_limit_kw: 30, circuits: [{{name: row-a, max_current_a: 12, chargers: [CP-16]}}]}}]
chargers:
  - {{id: CP-16, site: depot, max_current_a: 32}}
  - {{id: CP-201, site: depot, max_current_a: 32}}
id_tokens: [{{value: TAG-1}}, {{value: FLEET-9}}]
billing:
  utilisation_bucket_s: 10     # the site-load meter's buckets: a page opened later has metered history
  tariff:
    energy_price_per_kwh: 0.30
    tou_windows: [{{days: all, start: "{{tou_start}}", end: "{{tou_end}}", price_per_kwh: 0.45, name: peak}}]
    demand_tiers: [{{name: base, from_utilisation: 0, multiplier: 1}}, {{name: busy, from_utilisation: 0.5, multiplier: 1.2}}]
"""


class B:
    """A Selenium Chrome driver whose every call runs in a worker thread."""

    def __init__(self, driver: Any) -> None:
        self.d = driver

    async def __call__(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def js(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.d.execute_script, script, *args)

    async def until(self, script: str, timeout_s: float = 20.0, what: str = "") -> Any:
        """Poll a JS expression until it is truthy (the page updates itself: no reloads here)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            value = await self.js(f"return ({script});")
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                err = await self.js("const e = document.querySelector('#error'); return e && !e.hidden ? "
                                    "e.textContent : ''")
                logs = await asyncio.to_thread(self.d.get_log, "browser")
                raise AssertionError(f"timed out waiting for {what or script}; the page says: {err!r}; "
                                     f"console: {[x.get('message') for x in logs][-5:]}")
            await asyncio.sleep(0.2)

    async def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        await asyncio.to_thread(self.d.save_screenshot, str(path))
        return path


def _chrome() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    # The machine's network is closed: without the background-networking switches chromium keeps trying
    # Google's hosts. --no-sandbox because CI runs as root.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--window-size=1400,1700"):
        opts.add_argument(arg)
    return webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))


@pytest.fixture
async def browser() -> AsyncIterator[B]:
    driver = await asyncio.to_thread(_chrome)
    try:
        yield B(driver)
    finally:
        await asyncio.to_thread(driver.quit)


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[CsmsApp]:
    # a TOU window from the next full hour for two hours: inside the chart's window whenever the test runs
    start = datetime.now(UTC) + timedelta(hours=1)
    text = (CONFIG.replace("{db}", str(tmp_path / "csms.db")).replace("{tou_start}", f"{start:%H}:00")
            .replace("{tou_end}", f"{start + timedelta(hours=2):%H}:00"))
    app = CsmsApp(parse_config(text, env={}))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def sim(app: CsmsApp, ident: str, protocol: str) -> Charger:
    url = f"ws://127.0.0.1:{app.ocpp_port}{app.cfg.server.path_prefix}"
    return Charger(ChargerConfig(ident, url=url, protocol=protocol, meter_interval_s=1), SimClock(speedup=1))


async def open_page(b: B, app: CsmsApp, key: str) -> None:
    await b(b.d.get, f"http://127.0.0.1:{app.api_port}/")
    await b.until("document.querySelector('#login') && !document.querySelector('#login').hidden", what="login form")
    await b.js("document.querySelector('#key').value = arguments[0];"
               "document.querySelector('#login').requestSubmit();", key)
    await b.until("!document.querySelector('#app').hidden", what="the dashboard after login")
    await b.until("document.querySelector('#live').textContent === 'live'", what="the live events stream")


async def test_dashboard_live_session_chart_booking_and_viewer(csms: CsmsApp, browser: B) -> None:
    app, b = csms, browser
    cp16, cp201 = sim(app, "CP-16", "1.6"), sim(app, "CP-201", "2.0.1")
    await cp16.start()
    await cp201.start()
    try:
        await open_page(b, app, OPS_KEY)
        # the page loads: both stations online, connectors colour-coded by status
        await b.until("document.querySelectorAll('#stations tr[data-station] td.online').length === 2",
                      what="both stations online")
        assert await b.js("return document.querySelector('#who').textContent") == "ops · operator"
        # the chart shows the limit (30 kW, grid_limit_kw) and the measured load
        await b.until("document.querySelector('#chart path.limit').getAttribute('d').length > 10", what="limit line")
        label = await b.js("return document.querySelector('#chart .limit-label').textContent")
        assert "30.0 kW" in label and "grid_limit_kw" in label
        assert await b.js("return document.querySelector('#chart path.measured') !== null")
        # the prices behind it: the TOU window as a strip, the demand tier from 50 % as a dashed line
        await b.until("document.querySelectorAll('#chart rect.tou').length === 1", what="the TOU strip")
        assert "peak 0.45/kWh" in await b.js("return document.querySelector('#chart').textContent")
        assert await b.js("return document.querySelectorAll('#chart line.tier').length") == 1

        # a car plugs in: its session appears without a reload, and the chart draws the forecast
        await cp16.plug_in(EV(EVModel(capacity_wh=60_000, max_power_w=11_000, phases=3), soc=0.3,
                              energy_need_wh=20_000), "TAG-1")
        await cp16.start_charging()
        await b.until("[...document.querySelectorAll('#sessions tr[data-session]')].some(r => "
                      "r.textContent.includes('CP-16') && r.textContent.includes('TAG-1'))",
                      timeout_s=30, what="the new session in the table")
        await b.until("Number(document.querySelector('#chart').dataset.slots) > 0 && "
                      "document.querySelector('#chart path.forecast').getAttribute('d').length > 10",
                      timeout_s=30, what="the forecast line")
        await b.until("[...document.querySelectorAll('#sessions tr[data-session] td')].some(td => "
                      "/kW$/.test(td.textContent) && td.textContent !== '0.0 kW')", timeout_s=30,
                      what="the session's power")
        # the circuit on the chart: its limit as a line at 8.28 kW (below the site's 30 kW), its planned load,
        # and the slots where the plan runs at the circuit's limit marked with its name
        circuit = await b.until("(() => { const l = document.querySelector('#chart line.circuit-limit"
                                "[data-circuit=\"row-a\"]'); return l && [l.dataset.limitW, l.textContent, "
                                "Number(l.getAttribute('y1')), Number(document.querySelector('#chart .limit-label')"
                                ".getAttribute('y'))]; })()", what="the circuit's limit line")
        assert circuit[0] == "8280" and "circuit row-a: limit 8.3 kW" in circuit[1], circuit
        assert circuit[2] > circuit[3], "the 8.28 kW circuit line is drawn below the 30 kW site limit"
        await b.until("document.querySelector('#chart path.circuit-forecast[data-circuit=\"row-a\"]') !== null",
                      timeout_s=30, what="the circuit's planned load")
        binding = await b.until("[...document.querySelectorAll('#chart rect.binding')].map(r => r.dataset.binding)"
                                ".find(n => n.startsWith('row-a:'))", timeout_s=30,
                                what="slots where the circuit's limit binds")
        assert "binds: " + binding in await b.js("return document.querySelector('#chart').textContent")
        await b.shot("operator")

        # a booking made in the page reaches the 2.0.1 charger as ReserveNow; the timeline shows it
        await b.js("const f = document.querySelector('#booking-form');"
                   "f.dispatchEvent(new FocusEvent('focusin'));"
                   "document.querySelector('#b-station').value = 'CP-201|1';"
                   "document.querySelector('#b-token').value = 'FLEET-9';"
                   "document.querySelector('#b-kwh').value = '5';"
                   "f.requestSubmit();")
        for _ in range(100):
            if cp201.recorder.received("ReserveNow"):
                break
            await asyncio.sleep(0.2)
        assert cp201.recorder.received("ReserveNow"), "ReserveNow never reached the charger"
        await b.until("document.querySelectorAll('#timeline rect.booking').length === 1", what="timeline bar")
        await b.until("[...document.querySelectorAll('#stations tr[data-station=\"CP-201\"] .st')].some("
                      "s => s.dataset.status === 'Reserved')", timeout_s=20, what="the connector Reserved")
        await b.shot("booking")

        # operator actions: a site limit (the chart's limit follows), a remote stop reaching the 1.6 charger
        await b.js("document.querySelector('#limit-kw').value = '20';"
                   "document.querySelector('#limit-form').requestSubmit();")
        await b.until("document.querySelector('#chart .limit-label').textContent.includes('limit 20.0 kW')",
                      what="the 20 kW external limit on the chart")
        await b.js("document.querySelector('#sessions button[data-action=\"stop\"]').click()")
        for _ in range(100):
            if cp16.recorder.received("RemoteStopTransaction"):
                break
            await asyncio.sleep(0.2)
        assert cp16.recorder.received("RemoteStopTransaction"), "the Stop button's command never reached the charger"
        await b.js("document.querySelector('#limit-clear').click()")
        await b.until("document.querySelector('#chart .limit-label').textContent.includes('30.0 kW')",
                      what="the limit cleared")

        # a viewer sees everything and can press no operator button
        await b.js("document.querySelector('#logout').click()")
        # the site-load meter closes its 10 s buckets as billing ticks: wait for one with the car's load...
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}/api/v1",
                                     headers={"X-API-Key": VIEW_KEY}) as api:
            for _ in range(150):
                metered = (await api.get("/sites/depot/load-history")).json()["items"]
                if any(x["load_w"] > 1000 for x in metered):
                    break
                await asyncio.sleep(0.2)
            assert any(x["load_w"] > 1000 for x in metered), metered
        # ... then load the page afresh (the viewer's login): its chart starts with that history
        await open_page(b, app, VIEW_KEY)
        await b.until("Number(document.querySelector('#chart').dataset.servedPoints) >= 1 && "
                      "Number(document.querySelector('#chart').dataset.servedMaxW) > 1000",
                      what="metered load from before the page was loaded")
        await b.until("document.querySelectorAll('#stations tr[data-station]').length === 2", what="viewer's stations")
        await b.until("document.querySelectorAll('#timeline rect.booking').length === 1", what="viewer's timeline")
        buttons = await b.js("return [...document.querySelectorAll('button[data-role=\"operator\"]')]"
                             ".map(x => [x.dataset.action || x.textContent, x.disabled])")
        assert len(buttons) >= 6 and all(disabled for _, disabled in buttons), buttons
        assert await b.js("return document.querySelector('#who').textContent") == "look · viewer"
        await b.shot("viewer")
    finally:
        await cp16.close()
        await cp201.close()


async def test_swagger_ui_is_served_locally(csms: CsmsApp, browser: B) -> None:
    """/docs renders from the package's files: no request leaves 127.0.0.1 (the machine is offline)."""
    b = browser
    await b(b.d.get, f"http://127.0.0.1:{csms.api_port}/docs")
    await b.until("document.querySelectorAll('.opblock').length > 20", what="Swagger UI's operations")
    sources = await b.js("return [...document.querySelectorAll('script[src], link[href]')]"
                         ".map(e => e.src || e.href)")
    assert sources and all(s.startswith(f"http://127.0.0.1:{csms.api_port}/") for s in sources), sources


async def test_a_simulated_day_on_the_dashboard(browser: B, tmp_path: Path) -> None:
    """A day of the CI fleet at 3600x with the page open from the start: the chart fills with measured load
    under the limit and the forecast, live. Its screenshot (reports/dashboard/day.png) is the README's."""
    from sim_harness import SharedClock, build_config
    from simulator.run import gated_clock, run_plan
    from simulator.scenario import expand, load_scenario

    scn = load_scenario(ROOT / "scenarios" / "ci-1.6.yaml").model_copy(update={"duration_h": 24})
    plan = expand(scn)
    speedup = 3600.0
    clock, gate = gated_clock(plan, speedup)
    app = CsmsApp(build_config(plan, speedup=speedup, db_path=tmp_path / "csms.db"), clock=SharedClock(clock))
    await app.start()
    try:
        # the simulated clock stands still until the fleet starts: the page opens at the day's start
        await open_page_without_key(browser, app)
        result = await run_plan(plan, speedup=speedup, url=f"ws://127.0.0.1:{app.ocpp_port}/ocpp", clock=clock,
                                gate=gate)
        assert result.summary.booted == 4
        points = int(await browser.js("return Number(document.querySelector('#chart').dataset.points)"))
        assert points > 30, points      # measured samples pushed through the day, no reloads
        await browser.until("document.querySelector('#chart path.forecast') !== null", what="forecast")
        await browser.shot("day")
        # the same chart on a page opened only now: the day's last hours come from the server's meter (the
        # simulated clock stops at the day's end: at 3600x it would run hours past it while the page loads)
        clock.pause()
        # billing (its site-load meter) may be hours of simulated time behind at 3600x: let it catch up
        await asyncio.wait_for(app.billing.drain(), 120)
        await open_page_without_key(browser, app)
        served = await browser.until("Number(document.querySelector('#chart').dataset.servedPoints) > 10 && "
                                     "[Number(document.querySelector('#chart').dataset.servedPoints), "
                                     "Number(document.querySelector('#chart').dataset.servedMaxW)]",
                                     what="the day's metered history on a fresh page")
        assert served[1] > 1000, served
        await browser.shot("day-fresh-page")
    finally:
        await app.stop()


async def open_page_without_key(b: B, app: CsmsApp) -> None:
    """An API without keys (the embedded default): everyone is admin, no login form."""
    await b(b.d.get, f"http://127.0.0.1:{app.api_port}/")
    await b.until("!document.querySelector('#app').hidden", what="the dashboard")
    await b.until("document.querySelector('#live').textContent === 'live'", what="the live events stream")
    assert await b.js("return document.querySelector('#login').hidden")
