"""Import rules of docs/architecture.md, checked by parsing every module's imports (no import-linter needed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ("csms.api", "csms.ocpp", "csms.store", "csms.telemetry", "csms.pki")
IO_LIBS = ("sqlalchemy", "websockets", "ocpp", "aiomqtt", "fastapi", "starlette", "uvicorn", "alembic")


def imports_of(package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    base = ROOT / package.replace(".", "/")
    files = [base.with_suffix(".py")] if base.with_suffix(".py").exists() else sorted(base.rglob("*.py"))
    for f in files:
        mod = ".".join(f.relative_to(ROOT).with_suffix("").parts)
        names: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                parent = mod.split(".")[: -node.level]
                names.add(".".join(parent + ([node.module] if node.module else [])))
        out[mod] = names
    return out


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for mod, names in imports_of(package).items():
        for n in names:
            if any(n == f or n.startswith(f + ".") for f in forbidden):
                bad.append(f"{mod} imports {n}")
    return bad


@pytest.mark.parametrize("package", ["csms.domain", "csms.scheduling", "csms.billing", "csms.services"])
def test_pure_and_application_layers_do_not_import_io_libraries(package: str) -> None:
    assert offenders(package, IO_LIBS) == []


@pytest.mark.parametrize("package", ["csms.domain", "csms.scheduling", "csms.billing", "csms.services",
                                     "csms.config"])
def test_inner_layers_do_not_import_adapters_or_the_app(package: str) -> None:
    assert offenders(package, (*ADAPTERS, "csms.app")) == []


def test_domain_imports_only_the_standard_library() -> None:
    assert offenders("csms.domain", ("csms.config", "csms.services", "csms.scheduling", "csms.billing",
                                     "pydantic", "numpy", "pyomo", "yaml")) == []


def test_pure_libraries_are_independent() -> None:
    assert offenders("csms.scheduling", ("csms.billing", "csms.config", "asyncio")) == []
    assert offenders("csms.billing", ("csms.scheduling", "csms.config", "asyncio")) == []


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapters_do_not_import_each_other(adapter: str) -> None:
    if not (ROOT / adapter.replace(".", "/")).exists():
        pytest.skip(f"{adapter} not present")
    others = tuple(a for a in ADAPTERS if a != adapter)
    assert offenders(adapter, (*others, "csms.app")) == []


def test_ocpp_versions_are_independent() -> None:
    if not (ROOT / "csms/ocpp/v16").exists():
        pytest.skip("csms.ocpp not present")
    assert offenders("csms.ocpp.v16", ("csms.ocpp.v201",)) == []
    assert offenders("csms.ocpp.v201", ("csms.ocpp.v16",)) == []


def test_simulator_never_imports_csms() -> None:
    assert offenders("simulator", ("csms",)) == []
