"""Guard what the adapter still takes from the `ocpp` library: an upgrade that moves it must fail here.

The adapter no longer subclasses `ChargePoint` or uses `ocpp.messages` (csms.ocpp.protocol is our own OCPP-J
core), so no library internals are guarded any more; what is left is its data: the schema files, the
`call_result` dataclasses and the `Action` enums, and the key casing rules our memoised copies reproduce
(tests/unit/ocpp/test_schemas.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ocpp
import pytest
from ocpp.v16 import call_result as r16
from ocpp.v16.enums import Action as A16
from ocpp.v201 import call_result as r201
from ocpp.v201.enums import Action as A201

from csms.ocpp import connection, protocol
from csms.ocpp.schemas import schema
from csms.ocpp.v16.handlers import V16ChargePoint
from csms.ocpp.v201.handlers import V201ChargePoint


@pytest.mark.parametrize("cls, results, actions", [(V16ChargePoint, r16, A16), (V201ChargePoint, r201, A201)])
def test_every_handled_action_has_schemas_and_a_result_dataclass(cls: type, results: object, actions: type) -> None:
    assert cls._routes, "no @on handler collected"
    for action in cls._routes:
        assert action in {a.value for a in actions}  # type: ignore[attr-defined]
        version = cls._ocpp_version  # type: ignore[attr-defined]
        assert schema(2, action, version).fast is not None or version == "1.6"
        schema(3, action, version)  # raises if the file moved
        assert dataclasses.is_dataclass(getattr(results, action))


def test_schema_files_are_where_the_loader_reads_them() -> None:
    root = Path(ocpp.__file__).parent
    assert (root / "v16/schemas/Heartbeat.json").is_file()
    assert (root / "v201/schemas/HeartbeatRequest.json").is_file()


def test_the_connection_no_longer_depends_on_the_library_runtime() -> None:
    for module in (connection, protocol):
        src = Path(module.__file__).read_text()  # type: ignore[arg-type]
        assert "from ocpp" not in src and "import ocpp" not in src
