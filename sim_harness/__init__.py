"""Run a simulator scenario against an in-process CSMS (``python -m simulator run X.yaml --with-csms``).

This module is the only place that knows both sides: it builds a CSMS :class:`~csms.config.Config` from the
scenario (site, circuits, base load, limit schedule, billing, chargers, the drivers' id tokens), starts
:class:`~csms.app.CsmsApp` on ephemeral ports with a temporary SQLite database, and shares one simulated
clock between the CSMS and the fleet: the clock stands still until the CSMS is up, then both run from the
scenario's start at the scenario's speed-up. A package of its own, outside ``csms`` (which never imports the
simulator) and outside ``simulator`` (which never imports ``csms``): the simulator's ``--with-csms`` finds
``run_with_csms`` through the ``simulator.in_process_csms`` entry point (pyproject.toml).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from csms.app import CsmsApp
from csms.config import Config, format_validation_error
from simulator.clock import SimClock
from simulator.run import (
    Progress,
    RestClient,
    RunResult,
    ended_sessions,
    fetch_invoices,
    fetch_revenue,
    gated_clock,
    run_plan,
)
from simulator.scenario import RunPlan, ScenarioError


log = logging.getLogger("csms.sim_harness")
STOP_TIMEOUT_S = 20.0


class SharedClock:
    """The CSMS side of the simulator's clock (csms.domain.clock.Clock protocol)."""

    def __init__(self, sim: SimClock) -> None:
        self.sim = sim

    def now(self) -> datetime:
        return self.sim.now()

    def speedup(self) -> float:
        return self.sim.speedup

    async def sleep(self, seconds: float) -> None:
        await self.sim.sleep(seconds)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_config(plan: RunPlan, *, speedup: float, db_path: Path) -> Config:
    """The CSMS configuration for a scenario: its site and chargers, ephemeral ports, a temporary DB."""
    scn = plan.scenario
    site = scn.site
    ids = [c.charger_id for c in plan.charger_configs]
    from simulator.scenario import charger_indexes

    group = scn.drivers.group
    raw: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "api": {"enabled": True, "host": "127.0.0.1", "port": 0},
        "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
        "sites": [{
            "id": site.id, "grid_limit_kw": site.grid_limit_kw, "voltage_v": site.voltage_v,
            "timezone": site.timezone,
            "limit_schedule": [w.model_dump(mode="json") for w in site.limit_schedule],
            "base_load": site.base_load.model_dump(mode="json"),
            "circuits": [{**c.model_dump(mode="json", exclude={"chargers"}),
                          "chargers": [ids[i] for i in charger_indexes(c.chargers, scn)]} for c in site.circuits],
        }],
        "chargers": [{"id": c.charger_id, "site": site.id, "max_current_a": c.max_current_a, "phases": c.phases,
                      "voltage_v": c.voltage_v, "evse_count": c.evse_count,
                      # A simulated fleet on loopback without a password is an explicit profile 0.
                      **({"password": c.password} if c.password else {"security_profile": 0})}
                     for c in plan.charger_configs],
        "groups": [{"name": group}] if group else [],
        "id_tokens": [{"value": t, **({"group": group} if group else {})} for t in plan.id_tokens],
        "clock": {"speedup": speedup, "start": plan.start.isoformat()},
        "logging": {"level": "WARNING"},
    }
    if site.billing:
        raw["billing"] = site.billing
    raw = _merge(raw, scn.csms)
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ScenarioError(f"CSMS config built from scenario {scn.name!r}: {format_validation_error(e)}") from None


async def run_with_csms(plan: RunPlan, *, speedup: float, progress: Progress | None = None, on_event: Any = None,
                        db_dir: str | Path | None = None) -> RunResult:
    """Start the CSMS for ``plan``, run the fleet against it on a shared clock, collect solve times and
    invoices, stop the CSMS. The database lives in a temporary directory that is removed afterwards."""
    logging.getLogger("csms").setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:
        d = Path(db_dir) if db_dir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sim-csms-")))
        cfg = build_config(plan, speedup=speedup, db_path=d / "csms.db")
        clock, gate = gated_clock(plan, speedup)
        app = CsmsApp(cfg, clock=SharedClock(clock))
        await app.start()
        try:
            url = f"ws://127.0.0.1:{app.ocpp_port}{cfg.server.path_prefix}"
            api = RestClient(f"http://127.0.0.1:{app.api_port}") if app.api_port else None
            result = await run_plan(plan, speedup=speedup, url=url, api=api, clock=clock, gate=gate,
                                    progress=progress, on_event=on_event)
            result.invoices = await fetch_invoices(api, ended_sessions(result.recorders))
            result.revenue_report = await fetch_revenue(api)
            smart = getattr(app, "smart", None)
            result.solve_times_s = list(getattr(smart, "solve_times_s", []) or []) if smart is not None else None
            result.csms = "in-process"
        finally:
            try:
                await asyncio.wait_for(app.stop(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("the CSMS did not stop within %s s (a planner thread may be stuck)", STOP_TIMEOUT_S)
    return result
