"""python -m csms: --host/--port/--api-port and --check, as an operator runs them."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _csms(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    return subprocess.run([sys.executable, "-m", "csms", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_check_accepts_the_shipped_config_on_other_ports() -> None:
    r = _csms("--config", "config.yaml", "--host", "0.0.0.0", "--port", "9100", "--api-port", "8100", "--check")
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout


def test_check_refuses_the_api_on_the_ocpp_port() -> None:
    r = _csms("--config", "config.yaml", "--api-port", "9000", "--check")
    assert r.returncode == 2
    assert "api.port: 9000 is also server.port" in r.stderr


def test_check_names_a_missing_file() -> None:
    r = _csms("--config", "nope.yaml", "--check")
    assert r.returncode == 2 and "nope.yaml: cannot read" in r.stderr
