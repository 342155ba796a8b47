"""Plans in a worker process (smart_charging.planner_processes, default 1), end to end: a real worker with the
real solver plans the site and its profiles reach a simulated charger; a killed worker is started again and
plans again; stopping the CSMS stops the worker; and a CSMS killed with SIGKILL leaves no worker behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from csms.api.metrics import CsmsCollector

from .conftest import charger, ev, eventually, free_port, make_config, running

ROOT = Path(__file__).resolve().parents[2]
SETUP = """
sites: [{id: s1, grid_limit_kw: 22}]
chargers: [{id: CP-A, site: s1}, {id: CP-B, site: s1}]
id_tokens: [{value: TAG-A}]
billing: {enabled: false}
smart_charging: {debounce_s: 0.1, planner_processes: 1}
"""


def alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(x) for x in (task / "children").read_text().split()]
    return out


async def test_a_site_is_planned_in_the_worker_and_its_profiles_reach_the_charger(sqlite_url: str) -> None:
    async with running(make_config(sqlite_url, SETUP)) as app:
        [worker] = app.planners.pids()
        assert worker != os.getpid() and worker in children(os.getpid())
        cps = [charger(app, i, v) for i, v in (("CP-A", "1.6"), ("CP-B", "2.0.1"))]
        for cp in cps:
            await cp.connect(timeout=10)
        try:
            cp = cps[0]
            await cp.plug_in(ev(cp.clock), "TAG-A")
            await cp.start_charging()
            # The session's TxProfile (from the worker's optimal plan) reaches the charger and is applied.
            await eventually(lambda: any(p.accepted and "TxProfile" in str(p.payload)
                                         for p in cp.received_profiles), what="a TxProfile on CP-A")
            st = app.smart.sites["s1"]
            assert st.last_schedule is not None and st.last_schedule.status == "optimal"
            assert st.last_schedule.sessions, "the session is planned"
            [stats] = app.planners.stats()
            assert stats.pid == worker and stats.sites == 1 and stats.evses == 2 and stats.rss_bytes > 0
            # ... and on /metrics: the worker's memory and what it holds.
            families = {m.name: m for m in CsmsCollector(app).collect()}
            rss = {tuple(x.labels.values()): x.value for x in families["csms_planner_worker_rss_bytes"].samples}
            assert rss[("0", "now")] >= rss[("0", "ready")] > 10 * 2**20, rss
            assert families["csms_planner_worker_evses"].samples[0].value == 2
            # The car takes the site (22 kW: 31.8 A); idle CP-B's TxDefault is what it leaves: 0 A.
            await eventually(lambda: cp.effective_limit_a > 30 and cps[1].effective_limit_a == 0,
                             what="the car's plan and CP-B's share")
            assert (cp.effective_limit_a + cps[1].effective_limit_a) * 690 <= 22_000 + 1e-6
        finally:
            for cp in cps:
                await cp.close()
    await eventually(lambda: not alive(worker), timeout=5, what="the worker stopped with the CSMS")


async def test_a_killed_worker_is_started_again_and_plans_again(sqlite_url: str) -> None:
    async with running(make_config(sqlite_url, SETUP)) as app:
        assert (await app.smart.replan("s1")) is not None
        [first] = app.planners.pids()
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: not alive(first), timeout=5, what="the worker gone")
        # The plan that finds it dead falls back (same hard limits); the worker is started again and the
        # next plans are the optimizer's again (cold: the new process builds the site's model anew).
        statuses = []
        for _ in range(3):
            schedule = await app.smart.replan("s1")
            assert schedule is not None
            statuses.append(schedule.status)
            if schedule.status == "optimal" and app.planners.pids():
                break
        assert statuses[-1] == "optimal", statuses
        [second] = app.planners.pids()
        assert second != first and alive(second)
        assert app.planners.stats()[0].starts == 2


async def test_a_csms_killed_with_sigkill_leaves_no_worker(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
server: {{port: {port}, security_profile: 0}}
api: {{enabled: false}}
database: {{url: "sqlite+aiosqlite:///{tmp_path / 'k.db'}"}}
{SETUP}
logging: {{level: WARNING}}
""")
    proc = subprocess.Popen([sys.executable, "-m", "csms", "--config", str(cfg)], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and not workers:
            assert proc.poll() is None, "the CSMS exited during start-up"
            workers = children(proc.pid)
            await asyncio.sleep(0.2)
        assert workers, "no planner worker started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # The worker notices (its parent is gone) within its poll period, even mid-solve.
        await eventually(lambda: not any(alive(w) for w in workers), timeout=10,
                         what="the worker exiting after its CSMS was killed")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
