"""Schema validation of incoming CALLs and of our answers, fast on the hot path.

The `ocpp` library validates with jsonschema's Draft4Validator, resolving every `$ref` through
`referencing` at each use: for a 2.0.1 MeterValues with seven sampled values that is ~0.4 ms, the
largest cost of a round trip. Here each schema is loaded once from the library's files and:

1. its `$ref`s are inlined (OCPP schemas are not recursive), which alone halves jsonschema's time;
2. it is compiled to plain Python predicates for the Draft-4 subset the OCPP schemas use (type,
   properties, required, additionalProperties: false, enum of strings, maxLength, items, minItems,
   maxItems, minimum, maximum, multipleOf; annotations and `format` are ignored, as Draft4Validator does).

The compiled predicate only answers valid/invalid. When it says invalid, jsonschema (on the inlined
schema) produces the error that csms.ocpp.errors maps to a CALLERROR, so both paths report the same
errors. A schema using anything else is not compiled and always goes to jsonschema.
A differential test (tests/unit/ocpp/test_schemas.py) checks both agree on every OCPP schema.

`multipleOf` (1.6 charging schedules: `limit` multipleOf 0.1) is checked on the decimal value the JSON
text spells, in both paths: with binary floats 7.1 / 0.1 = 70.99999999999999, so a float check (jsonschema's)
refuses a valid 7.1 A limit. The `ocpp` library works around that by re-parsing the whole frame with
Decimal for two actions; here one exact check serves both directions and every action.

One `Schema` per (message type, action, version) is compiled on first use and kept: incoming CALLs,
our answers to them, our CALLs and the chargers' answers all go through `schema(...).error(payload)`
(csms.ocpp.protocol).

Why not fastjsonschema (2.22.3, measured here in one run with the payloads of bench/bench_ocpp.py, CPU per
validation, load average 5.5): 1.6 MeterValues 11-13 us here vs 23-27 us, 2.0.1 MeterValues 15-21 us vs
41-50 us, Heartbeat 0.3-0.6 us both. Before the conjunctions below were nested closures instead of a
generator it was a draw (26 vs 18 us, 32 vs 35 us). Its exception also names the first failing rule where
jsonschema's best_match picks the most relevant one, which would change CALLERROR kinds the tests pin,
and the predicates here are checked against jsonschema on every OCPP schema. Not worth a dependency.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import ocpp
from jsonschema import Draft4Validator, validators
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


def is_multiple(x: Any, m: int | float) -> bool:
    """x is a multiple of m as decimal numbers (the JSON text's value), not as binary floats."""
    if isinstance(x, int) and isinstance(m, int):
        return x % m == 0
    try:
        return Decimal(repr(x)) % Decimal(repr(m)) == 0
    except InvalidOperation:  # inf, nan, or a quotient beyond Decimal's precision: not a multiple
        return False


def _multiple_of(validator: Any, m: int | float, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "number") and not is_multiple(instance, m):
        yield ValidationError(f"{instance!r} is not a multiple of {m}")


#: Draft 4 with the exact multipleOf: the error path must agree with the compiled predicate.
_Draft4Exact = validators.extend(Draft4Validator, {"multipleOf": _multiple_of})


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
                                       "required", "additionalProperties", "items", "minItems", "maxItems",
                                       "multipleOf"}
    if unknown:
        raise _Unsupported(", ".join(sorted(unknown)))
    checks: list[Predicate] = []
    t = s.get("type")
    typed = isinstance(t, str)  # one type: the keyword checks below may assume it (fewer closures per value)
    if typed and t == "string" and "enum" in s:
        pass  # the enum check requires a string
    elif typed and t == "string" and "maxLength" in s:
        n = s["maxLength"]
        checks.append(lambda x: isinstance(x, str) and len(x) <= n)
    elif typed and t == "object" and any(k in s for k in ("properties", "required", "additionalProperties")):
        pass  # _object(strict=True) checks the type
    elif typed and t == "array" and any(k in s for k in ("items", "minItems", "maxItems")):
        pass  # _array(strict=True) checks the type
    elif typed:
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
    if "maxLength" in s and not (typed and t == "string" and "enum" not in s):
        n = s["maxLength"]
        checks.append(lambda x: not isinstance(x, str) or len(x) <= n)
    if "minimum" in s:
        lo = s["minimum"]
        checks.append(lambda x: not _is_num(x) or x >= lo)
    if "maximum" in s:
        hi = s["maximum"]
        checks.append(lambda x: not _is_num(x) or x <= hi)
    if "multipleOf" in s:
        m = s["multipleOf"]
        checks.append(lambda x: not _is_num(x) or is_multiple(x, m))
    if any(k in s for k in ("properties", "required", "additionalProperties")):
        checks.append(_object(s, strict=typed and t == "object"))
    if any(k in s for k in ("items", "minItems", "maxItems")):
        checks.append(_array(s, strict=typed and t == "array"))
    return _all(checks)


def _all(checks: list[Predicate]) -> Predicate:
    """The conjunction as nested closures (a generator over a list per value was the largest cost)."""
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda x: a(x) and b(x)
    a, rest = checks[0], _all(checks[1:])
    return lambda x: a(x) and rest(x)


def _object(s: dict[str, Any], *, strict: bool) -> Predicate:
    """`strict`: the schema's type is "object", so a non-object fails here (else it is another keyword's)."""
    props = {k: _compile(v) for k, v in s.get("properties", {}).items()}
    required = tuple(s.get("required", ()))
    extra = s.get("additionalProperties", True)
    if not isinstance(extra, bool):
        raise _Unsupported("additionalProperties schema")
    get = props.get

    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return not strict
        for r in required:
            if r not in x:
                return False
        for k, v in x.items():
            p = get(k)
            if p is None:
                if not extra:
                    return False
            elif not p(v):
                return False
        return True

    return check


def _array(s: dict[str, Any], *, strict: bool) -> Predicate:
    items = s.get("items")
    if items is not None and not isinstance(items, dict):
        raise _Unsupported("tuple items")
    item = _compile(items) if items is not None else None
    lo, hi = s.get("minItems"), s.get("maxItems")

    def check(x: Any) -> bool:
        if not isinstance(x, list):
            return not strict
        if (lo is not None and len(x) < lo) or (hi is not None and len(x) > hi):
            return False
        if item is None:
            return True
        for v in x:
            if not item(v):
                return False
        return True

    return check


class Schema:
    """One action's schema: a fast predicate (when compilable) and a full jsonschema validator."""

    __slots__ = ("full", "fast")

    def __init__(self, schema: dict[str, Any]) -> None:
        inlined = _inline(schema, schema.get("definitions", {}))
        self.full = _Draft4Exact(inlined)
        try:
            self.fast: Predicate | None = _compile(inlined)
        except _Unsupported:
            self.fast = None

    def error(self, payload: Any) -> ValidationError | None:
        """None if valid, else the most relevant error."""
        if self.fast is not None and self.fast(payload):
            return None
        err = best_match(self.full.iter_errors(payload))
        if err is None and self.fast is not None:  # cannot happen while the differential test holds
            return ValidationError("payload does not match the schema", validator="additionalProperties")
        return err


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
