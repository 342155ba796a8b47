"""Live configuration reload: CsmsApp watches its config file (and reloads on SIGHUP through app.reload()).
A valid edit applies within seconds without dropping connected chargers; an invalid one is refused with a
log line naming the key, and the running configuration stays in force."""

from __future__ import annotations

import logging
import os
from pathlib import Path
import httpx
import pytest

from csms.app import CsmsApp
from csms.config import load_config
from csms.services.site_status import current_load
from simulator.charger import AuthorizationRejected

from .conftest import charger, ev, eventually

KEY = "reload-admin-key-0123456789"
NEW_KEY = "reload-viewer-key-0123456789"


def render(db_url: str, *, limit_kw: float = 50, chargers: str = "{id: CP-1, site: s1}",
           tokens: str = "{value: TAG-OLD}", keys: str = "", charger_extra: str = "") -> str:
    return f"""
server: {{port: 0, heartbeat_interval_s: 60, security_profile: 0}}
api: {{enabled: true, port: 0, keys: {{root: {{key: {KEY}, role: admin}}{keys}}}}}
database: {{url: "{db_url}"}}
smart_charging: {{debounce_s: 0.1}}
sites: [{{id: s1, grid_limit_kw: {limit_kw}}}]
chargers: [{chargers}{charger_extra}]
id_tokens: [{tokens}]
"""


def write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # the way editors save: the watcher must see a replaced file too


def site_limit_w(app: CsmsApp) -> float | None:
    view = app.smart.plan_view("s1")
    return view["forecast"][0]["limit_w"] if view.get("planned") else None


async def start(path: Path) -> CsmsApp:
    app = CsmsApp(load_config(path), config_path=path)
    await app.start()
    return app


@pytest.mark.parametrize("protocol", ["1.6", "2.0.1"])
async def test_valid_edit_applies_live_without_dropping_chargers(tmp_path: Path, sqlite_url: str,
                                                                 protocol: str) -> None:
    path = tmp_path / "config.yaml"
    write(path, render(sqlite_url))
    app = await start(path)
    cp = new = None
    try:
        cp = charger(app, "CP-1", protocol)
        await cp.connect(timeout=10)
        conn = app.gateway.connection("CP-1")
        await cp.plug_in(ev(cp.clock), "TAG-OLD")
        await cp.start_charging()
        await eventually(lambda: cp.power_w > 20_000, what="charging at full power")
        await eventually(lambda: site_limit_w(app) == 50_000, what="the first plan")  # may follow full power

        # Add a token, a charger and an API key; lower the grid limit.
        write(path, render(sqlite_url, limit_kw=9, tokens="{value: TAG-OLD}, {value: TAG-NEW}",
                           charger_extra=", {id: CP-2, site: s1}",
                           keys=f", wall: {{key: {NEW_KEY}, role: viewer}}"))
        await eventually(lambda: app.reloads == 1, timeout=5, what="the file change picked up")
        await eventually(lambda: site_limit_w(app) == 9_000, timeout=5, what="a plan with the new limit")
        # (CP-2 has not connected yet: the planner counts it at its maximum, so CP-1 may get nothing for now)
        await eventually(lambda: cp.power_w <= 9_000, timeout=5, what="the charger follows the new limit")
        # the charger was never dropped: same connection, no second boot
        assert app.gateway.connection("CP-1") is conn and cp.online and cp.boot_count == 1
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}/api/v1",
                                     headers={"X-API-Key": NEW_KEY}) as c:
            site = (await c.get("/sites/s1")).json()  # the new key works, and shows the new limit
            assert site["grid_limit_kw"] == 9 and site["limit_w"] == 9_000
        # the added charger may connect; the new token authorizes
        new = charger(app, "CP-2", "2.0.1" if protocol == "1.6" else "1.6")
        await new.connect(timeout=10)
        await new.plug_in(ev(new.clock), "TAG-NEW")
        await new.start_charging()
        await eventually(lambda: len(app.smart.plan_view("s1")["sessions"]) == 2, what="both planned")
        plan = app.smart.plan_view("s1")
        assert all(f["load_w"] <= f["limit_w"] + 1 for f in plan["forecast"])
        await eventually(lambda: 0 < cp.power_w + new.power_w <= 9_000, what="9 kW shared by both")
    finally:
        for x in (cp, new):
            if x is not None:
                await x.close()
        await app.stop()


async def test_invalid_edit_is_refused_and_the_old_config_keeps_running(
        tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="csms.app")
    path = tmp_path / "config.yaml"
    write(path, render(sqlite_url, limit_kw=40))
    app = await start(path)
    cp = None
    try:
        cp = charger(app, "CP-1", "2.0.1")
        await cp.connect(timeout=10)
        await eventually(lambda: site_limit_w(app) == 40_000, what="first plan")
        # An invalid value: the edit also "adds" a token and lowers the limit - none of it may apply.
        write(path, render(sqlite_url, limit_kw=5, tokens="{value: TAG-OLD}, {value: TAG-SNEAKY}",
                           chargers="{id: CP-1, site: s1, max_current_a: -1}"))

        def refused() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "csms.app" and r.levelno >= logging.ERROR
                    and "refused" in r.getMessage()]
        [record] = await eventually(refused, timeout=5, what="the refusal in the log")
        assert "chargers[0].max_current_a" in record.getMessage()
        assert "greater than 0" in record.getMessage()
        assert app.reloads == 0
        assert app.cfg.site("s1").grid_limit_kw == 40  # type: ignore[union-attr]
        app.smart.request("s1", debounce=False)
        await eventually(lambda: site_limit_w(app) == 40_000, what="plans still use the old limit")
        # the old token still works, the sneaked-in one does not
        await cp.plug_in(ev(cp.clock), "TAG-SNEAKY")
        with pytest.raises(AuthorizationRejected):
            await cp.start_charging()
        await cp.unplug()
        await cp.plug_in(ev(cp.clock), "TAG-OLD")
        await cp.start_charging()
        await eventually(lambda: cp.power_w > 0, what="old token charging")
        # a semantic error (unknown reference) is refused the same way, naming the key
        write(path, render(sqlite_url, chargers="{id: CP-1, site: nowhere}"))
        await eventually(lambda: len(refused()) == 2, timeout=5, what="second refusal")
        assert "chargers[0].site" in refused()[1].getMessage() and "nowhere" in refused()[1].getMessage()
        # fixing the file applies it
        write(path, render(sqlite_url, limit_kw=30))
        await eventually(lambda: app.reloads == 1, timeout=5, what="the fixed file applied")
        await eventually(lambda: site_limit_w(app) == 30_000, what="new limit")
        assert app.gateway.is_connected("CP-1") and cp.boot_count == 1
    finally:
        if cp is not None:
            await cp.close()
        await app.stop()


async def test_sighup_path_reload_applies_at_once(tmp_path: Path, sqlite_url: str) -> None:
    """run() maps SIGHUP to app.reload(): the reload is applied when it returns, without waiting for the
    file watch."""
    path = tmp_path / "config.yaml"
    write(path, render(sqlite_url))
    app = await start(path)
    try:
        write(path, render(sqlite_url, limit_kw=12, tokens="{value: TAG-OLD}, {value: TAG-HUP}"))
        assert await app.reload() is True
        assert app.cfg.site("s1").grid_limit_kw == 12  # type: ignore[union-attr]
        assert (await app.charging.authorize("CP-1", "TAG-HUP")).status.value == "Accepted"
        assert (await current_load(app.cfg, app.store, app.smart, "s1"))["limit_w"] == 12_000
        write(path, "sites: [{id: s1}]\n")  # no grid limit: invalid
        assert await app.reload() is False
        assert app.cfg.site("s1").grid_limit_kw == 12  # type: ignore[union-attr]
        path.unlink()
        assert await app.reload() is False  # an unreadable file is refused too
    finally:
        await app.stop()


