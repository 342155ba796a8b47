"""csms.billing is pure: stdlib only, no other csms package (but the shared daily-window type, itself
stdlib-only and pure), no asyncio/I-O, no clock reads."""

import ast
import sys
from pathlib import Path

import pytest

import csms.billing

PACKAGE = Path(csms.billing.__file__).parent
SOURCES = sorted(PACKAGE.glob("*.py"))
ALLOWED_STDLIB = {
    "__future__",
    "collections",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "itertools",
    "typing",
    "zoneinfo",
}
#: The one daily-window type shared with the limit schedule and base load (csms.domain is stdlib-only).
ALLOWED_CSMS = {"csms.domain.daily_window"}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "time_ns", "monotonic", "open", "print"}


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_only_stdlib_and_own_package(source: Path) -> None:
    for name in _imports(ast.parse(source.read_text())):
        root = name.split(".")[0]
        if name.startswith("csms."):
            assert name.startswith("csms.billing") or name in ALLOWED_CSMS, f"{source.name} imports {name}"
        else:
            assert root in ALLOWED_STDLIB and root in sys.stdlib_module_names, f"{source.name} imports {name}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_no_clock_reads_or_io(source: Path) -> None:
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            assert name not in FORBIDDEN_CALLS, f"{source.name}:{node.lineno} calls {name}()"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_modules_stay_small(source: Path) -> None:
    assert len(source.read_text().splitlines()) < 400
