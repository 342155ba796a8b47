"""camelCase payloads <-> the snake_case keyword arguments and dataclasses of the adapter. Pure.

The key rules are the `ocpp` library's (`camel_to_snake_case`, `snake_to_camel_case`), memoised per key: two
regexes or nine `str.replace` per key per message were the largest cost of a MeterValues after schema
validation. Equality with the library's functions is a property test (tests/unit/ocpp/test_schemas.py).
"""

from __future__ import annotations

import functools
import re
from dataclasses import fields, is_dataclass
from enum import Enum
from typing import Any

_SNAKE_1 = re.compile("(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile("([a-z0-9])([A-Z])(?=\\S)")


@functools.lru_cache(maxsize=4096)
def _snake_key(key: str) -> str:
    key = key.replace("ocppCSMSURL", "ocpp_csms_url").replace("V2X", "_v2x").replace("V2G", "_v2g")
    return _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", key)).lower()


def snake_case(data: Any) -> Any:
    """camelCase keys -> snake_case keys, recursively (what @on handlers receive)."""
    if isinstance(data, dict):
        return {_snake_key(k): snake_case(v) for k, v in data.items()}
    if isinstance(data, list):
        return [snake_case(v) for v in data]
    return data


@functools.lru_cache(maxsize=4096)
def _camel_key(key: str) -> str:
    # The library's replacements, in its order (the spec spells "SoC", "CSMS", "URL", "V2X" inconsistently).
    key = key.replace("soc", "SoC").replace("_v2x", "V2X").replace("ocpp_csms_url", "ocppCsmsUrl")
    key = key.replace("csms", "CSMS").replace("_url", "URL").replace("soc", "SoC").replace("_SoCket", "Socket")
    key = key.replace("_v2x", "V2X").replace("soc_limit_reached", "SOCLimitReached")
    key = key.replace("_v2x", "V2X").replace("_v2g", "V2G")
    head, *rest = key.split("_")
    return head + "".join(x[:1].upper() + x[1:] for x in rest)


@functools.lru_cache(maxsize=512)
def _field_names(cls: type) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, _camel_key(f.name)) for f in fields(cls))


def to_payload(value: Any) -> Any:
    """A handler's answer (a call_result dataclass, or a dict) -> the camelCase JSON payload: None fields and
    list items dropped, enum members as their values (what `snake_to_camel_case(remove_nones(
    serialize_as_dict(x)))` gives, without the library's copy per dataclass level)."""
    if isinstance(value, dict):
        return {_camel_key(k): to_payload(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [to_payload(v) for v in value if v is not None]
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        out = {}
        for name, camel in _field_names(type(value)):
            v = getattr(value, name)
            if v is not None:
                out[camel] = to_payload(v)
        return out
    return value
