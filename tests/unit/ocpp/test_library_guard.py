"""Guard the `ocpp` library internals the adapter relies on: an upgrade that moves them must fail here."""

from __future__ import annotations

import inspect
import logging

import ocpp.messages
from ocpp.charge_point import ChargePoint, camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case

import csms.ocpp  # noqa: F401 - the import configures the library
from csms.ocpp.connection import OcppConnection


def test_async_validation_flag_exists_and_is_off() -> None:
    assert hasattr(ocpp.messages, "ASYNC_VALIDATION")
    assert ocpp.messages.ASYNC_VALIDATION is False


def test_validate_payload_still_reads_the_flag() -> None:
    assert "ASYNC_VALIDATION" in inspect.getsource(ocpp.messages.validate_payload)


def test_ocpp_logger_is_quiet() -> None:
    assert logging.getLogger("ocpp").level == logging.WARNING


def test_internals_used_by_the_connection_exist() -> None:
    assert callable(ocpp.messages.get_validator)
    v = ocpp.messages.get_validator(2, "Heartbeat", "1.6")
    assert v.is_valid({})
    for f in (camel_to_snake_case, snake_to_camel_case, remove_nones, serialize_as_dict):
        assert callable(f)
    for attr in ("route_message", "_send", "start", "call"):
        assert hasattr(ChargePoint, attr)
        assert getattr(OcppConnection, attr) is not getattr(ChargePoint, attr)  # overridden on purpose
    cp = ChargePoint.__new__(ChargePoint)
    ChargePoint.__init__(cp, "x", None)
    assert hasattr(cp, "_call_lock") and hasattr(cp, "route_map") and hasattr(cp, "_response_timeout")
