"""Validate a payload against the `ocpp` library's JSON schema for an action (both versions)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ocpp.messages import get_validator


def assert_valid(version: str, action: str, payload: dict[str, Any], *, answer: bool = False) -> None:
    # The library checks 1.6 schedules with Decimal floats (multipleOf 0.1); do the same.
    decimal = version == "1.6" and action in ("SetChargingProfile", "RemoteStartTransaction")
    validator = get_validator(3 if answer else 2, action, version, parse_float=Decimal if decimal else float)
    data = json.loads(json.dumps(payload), parse_float=Decimal) if decimal else payload
    errors = [e.message for e in validator.iter_errors(data)]
    assert not errors, f"{action}: {errors}"
