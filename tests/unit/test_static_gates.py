"""CI gates on the code itself: the import contracts of docs/architecture.md (import-linter, pyproject.toml
`[tool.importlinter]`) and `mypy --strict` on the pure packages. Each runs the real tool, as a developer would.

The contracts are allow-lists: a layer may import only the layers below it, and each third-party library only
from the packages its contract names. The test below also fails when code imports a third-party library that
no contract names, so a new dependency cannot slip past the lists. Imports hidden from the tools (importlib,
__import__) are refused outright in the simulator and the layers that must stay pure.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())
ROOTS = CONFIG["tool"]["importlinter"]["root_packages"]
#: mypy --strict holds for these (docs/architecture.md: the pure libraries and the vocabulary).
STRICT_PACKAGES = ("csms.domain", "csms.scheduling", "csms.billing")
#: ... and the in-memory store, whose `_port` line holds it to csms.domain.store_ports.StorePort.
STRICT_MODULES = ("csms.store.memory",)


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_import_contracts_hold() -> None:
    r = _run(str(BIN / "lint-imports"), "--no-cache")
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def test_every_third_party_library_imported_has_an_allow_list() -> None:
    graph = grimp.build_graph(*ROOTS, include_external_packages=True)
    external = {m for m in graph.modules if "." not in m and m not in ROOTS}
    third_party = external - set(sys.stdlib_module_names)
    listed = {m for c in CONFIG["tool"]["importlinter"]["contracts"] if c["type"] == "protected"
              for m in c["protected_modules"]}
    assert third_party - listed == set(), "add a protected contract (who may import it) to pyproject.toml"


def _dynamic_imports(package_dir: Path) -> list[str]:
    found = []
    for f in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
                if name in ("import_module", "__import__", "spec_from_file_location"):
                    found.append(f"{f.relative_to(ROOT)}:{node.lineno} {name}")
    return found


@pytest.mark.parametrize("package", ["simulator", "csms/domain", "csms/scheduling", "csms/billing",
                                     "csms/services", "csms/ocpp", "csms/store", "csms/telemetry", "csms/pki"])
def test_no_imports_hidden_from_the_contracts(package: str) -> None:
    """The simulator finds an in-process CSMS through an entry point (simulator.in_process_csms), never by
    importing it by name; inner layers have no reason to load modules dynamically at all."""
    assert _dynamic_imports(ROOT / package) == []


def test_mypy_strict_on_the_pure_packages() -> None:
    args = [str(BIN / "mypy"), "--strict", "--no-error-summary"]
    for p in STRICT_PACKAGES:
        args += ["-p", p]
    for m in STRICT_MODULES:
        args += ["-m", m]
    r = _run(*args)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def test_the_sql_store_implements_the_store_port() -> None:
    """csms/store/repositories.py returns a Store where a StorePort is expected (its `_port`, seen only by
    mypy): a method missing or with another signature fails here. The module itself is not under --strict
    (SQLAlchemy's Core typing on the message-path statements), so only errors naming the port count."""
    r = _run(str(BIN / "mypy"), "--no-error-summary", "csms/store/repositories.py")
    port_errors = [line for line in r.stdout.splitlines() if "StorePort" in line or "StoreSession" in line]
    assert port_errors == [], "\n".join(port_errors)


def test_with_csms_finds_the_harness_through_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator import run
    from simulator.scenario import ScenarioError

    import sim_harness

    assert run.in_process_csms() is sim_harness.run_with_csms
    monkeypatch.setattr(run, "entry_points", lambda group: [])  # an install older than the entry point
    with pytest.raises(ScenarioError, match="reinstall the project"):
        run.in_process_csms()
