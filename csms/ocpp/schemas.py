"""Schema validation of incoming CALLs and of our answers, fast on the hot path.

The `ocpp` library validates with jsonschema's Draft4Validator, resolving every `$ref` through
`referencing` at each use: for a 2.0.1 MeterValues with seven sampled values that is ~0.4 ms, the
largest cost of a round trip. Here each schema is loaded once from the library's files and:

1. its `$ref`s are inlined (OCPP schemas are not recursive), which alone halves jsonschema's time;
2. it is compiled to plain Python predicates for the Draft-4 subset the OCPP schemas use (type,
   properties, required, additionalProperties: false, enum of strings, maxLength, items, minItems,
   maxItems, minimum, maximum; annotations and `format` are ignored, as Draft4Validator does).

The compiled predicate only answers valid/invalid. When it says invalid, jsonschema (on the inlined
schema) produces the error that csms.ocpp.errors maps to a CALLERROR, so both paths report the same
errors. A schema using anything else (e.g. multipleOf) is not compiled and always goes to jsonschema.
A differential test (tests/unit/ocpp/test_schemas.py) checks both agree on every OCPP schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ocpp
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match

Predicate = Callable[[Any], bool]

_ANNOTATIONS = frozenset({"description", "javaType", "comment", "title", "$schema", "$id", "id", "default",
                          "format", "definitions", "additionalItems"})


class _Unsupported(Exception):
    pass


def _inline(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    if depth > 50:
        raise _Unsupported("recursive schema")
    if isinstance(node, dict):
        if "$ref" in node:  # Draft 4: a $ref replaces its siblings
            return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs, depth + 1)
        return {k: _inline(v, defs, depth + 1) for k, v in node.items() if k != "definitions"}
    if isinstance(node, list):
        return [_inline(x, defs, depth + 1) for x in node]
    return node


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


_TYPES: dict[str, Predicate] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": _is_int,
    "number": _is_num,
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}


def _compile(s: dict[str, Any]) -> Predicate:  # noqa: C901 - one branch per keyword, kept together
    unknown = set(s) - _ANNOTATIONS - {"type", "enum", "maxLength", "minimum", "maximum", "properties",
                                       "required", "additionalProperties", "items", "minItems", "maxItems"}
    if unknown:
        raise _Unsupported(", ".join(sorted(unknown)))
    checks: list[Predicate] = []
    t = s.get("type")
    if isinstance(t, str):
        checks.append(_TYPES[t])
    elif isinstance(t, list):
        preds = [_TYPES[x] for x in t]
        checks.append(lambda x: any(p(x) for p in preds))
    if "enum" in s:
        values = s["enum"]
        if not all(isinstance(v, str) for v in values):
            raise _Unsupported("non-string enum")
        allowed = frozenset(values)
        checks.append(lambda x: isinstance(x, str) and x in allowed)
    if "maxLength" in s:
        n = s["maxLength"]
        checks.append(lambda x: not isinstance(x, str) or len(x) <= n)
    if "minimum" in s:
        lo = s["minimum"]
        checks.append(lambda x: not _is_num(x) or x >= lo)
    if "maximum" in s:
        hi = s["maximum"]
        checks.append(lambda x: not _is_num(x) or x <= hi)
    if any(k in s for k in ("properties", "required", "additionalProperties")):
        checks.append(_object(s))
    if any(k in s for k in ("items", "minItems", "maxItems")):
        checks.append(_array(s))
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]
    return lambda x: all(c(x) for c in checks)


def _object(s: dict[str, Any]) -> Predicate:
    props = {k: _compile(v) for k, v in s.get("properties", {}).items()}
    required = tuple(s.get("required", ()))
    extra = s.get("additionalProperties", True)
    if not isinstance(extra, bool):
        raise _Unsupported("additionalProperties schema")

    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for r in required:
            if r not in x:
                return False
        for k, v in x.items():
            p = props.get(k)
            if p is None:
                if not extra:
                    return False
            elif not p(v):
                return False
        return True

    return check


def _array(s: dict[str, Any]) -> Predicate:
    items = s.get("items")
    if items is not None and not isinstance(items, dict):
        raise _Unsupported("tuple items")
    item = _compile(items) if items is not None else None
    lo, hi = s.get("minItems"), s.get("maxItems")

    def check(x: Any) -> bool:
        if not isinstance(x, list):
            return True
        if (lo is not None and len(x) < lo) or (hi is not None and len(x) > hi):
            return False
        return item is None or all(item(v) for v in x)

    return check


class Schema:
    """One action's schema: a fast predicate (when compilable) and a full jsonschema validator."""

    __slots__ = ("full", "fast")

    def __init__(self, schema: dict[str, Any]) -> None:
        inlined = _inline(schema, schema.get("definitions", {}))
        self.full = Draft4Validator(inlined)
        try:
            self.fast: Predicate | None = _compile(inlined)
        except _Unsupported:
            self.fast = None

    def error(self, payload: Any) -> ValidationError | None:
        """None if valid, else the most relevant error."""
        if self.fast is not None and self.fast(payload):
            return None
        return best_match(self.full.iter_errors(payload))


_SCHEMAS: dict[tuple[int, str, str], Schema] = {}


_DIRS = {"1.6": "v16", "2.0.1": "v201"}
_ROOT = Path(ocpp.__file__).resolve().parent


def _load(message_type: int, action: str, version: str) -> dict[str, Any]:
    """The library's schema file. Read here rather than through ocpp.messages.get_validator, whose
    cache key ignores parse_float: filling it with float-parsed 1.6 schedule schemas would break the
    library's own Decimal-based multipleOf check of SetChargingProfile."""
    if version not in _DIRS or not action.isalnum():
        raise ValueError(f"no schema for {action!r} in {version!r}")
    name = action + ("Response" if message_type == 3 else ("Request" if version != "1.6" else ""))
    with open(_ROOT / _DIRS[version] / "schemas" / f"{name}.json", encoding="utf-8-sig") as f:  # BOM in 2.0.1
        return json.load(f)  # type: ignore[no-any-return]


def schema(message_type: int, action: str, version: str) -> Schema:
    """The schema of a CALL (2) or CALLRESULT (3) for `action` in `version`. Raises OSError (no such
    schema file) or ValueError (unknown version or action name)."""
    key = (message_type, action, version)
    s = _SCHEMAS.get(key)
    if s is None:
        s = _SCHEMAS[key] = Schema(_load(message_type, action, version))
    return s
