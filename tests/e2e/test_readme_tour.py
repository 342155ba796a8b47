"""The README's quick tour, run as written: the CSMS on the shipped config.yaml, the simulator command, then
every curl block in one bash script. Only the ports (the tour's 9000/8000 may be taken here) and the
interpreter path are changed, and the CSMS gets a temporary database.

A tour that answers 409 or 422, or whose booking never turns the connector Reserved, fails here."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed (apt-get install curl)")


def tour_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quick tour with the simulator"):]
    section = section[:section.index("Fleet scenarios run the CSMS in-process")]  # the tour ends there
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _wait(pred, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(p: subprocess.Popen[str]) -> str:
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    return p.stdout.read() if p.stdout else ""


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    blocks = tour_blocks()
    assert blocks[0].strip() == "./scripts/run", "the tour starts the CSMS with ./scripts/run"
    ocpp_port, api_port = free_port(), free_port()
    py = sys.executable  # the tour's .venv/bin/python, wherever the tests run

    def ports(cmd: str) -> str:
        return (cmd.replace("127.0.0.1:9000", f"127.0.0.1:{ocpp_port}").replace("localhost:8000", f"localhost:{api_port}")
                .replace(".venv/bin/python", py))

    env = {**os.environ, "CSMS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}"}
    for k in ("CSMS_HOST", "CSMS_OCPP_PORT", "CSMS_API_PORT", "CSMS_MQTT_URL"):
        env.pop(k, None)
    # ./scripts/run = install, then this (the install is what ./scripts/test has just done)
    csms = subprocess.Popen([py, "-m", "csms", "--config", "config.yaml", "--port", str(ocpp_port),
                             "--api-port", str(api_port)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sim = None
    try:
        api = f"http://127.0.0.1:{api_port}/api/v1"
        _wait(lambda: _get(f"{api}/stations") is not None, 60, "the CSMS's API")
        sim = subprocess.Popen(["bash", "-c", ports(blocks[1])], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

        def all_online() -> bool:
            items = _get(f"{api}/stations")["items"]  # type: ignore[index]
            return sum(s["online"] for s in items) == 3
        _wait(all_online, 60, "the three simulated chargers online")
        script = "set -euo pipefail\n" + "\n".join(ports(b) for b in blocks[2:])
        r = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, text=True, capture_output=True, timeout=120)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert '"code"' not in out, out                    # no error answer anywhere ({"error": {"code": ...}})
        assert re.search(r'\d+ Reserved', r.stderr), out      # the booking's 201 answer: reserved at once
        assert '"status": "Reserved"' in r.stdout, out        # the connector turned Reserved
        assert '"status": "Cancelled"' in r.stdout, out       # and the booking was cancelled
        assert '"limit_w": 11000.0' in r.stdout, out          # the plan followed the 11 kW limit
    finally:
        if sim is not None:
            _stop(sim)
        log = _stop(csms)
    assert "Traceback" not in log, log
