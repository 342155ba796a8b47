"""The compiled schema predicates must agree with jsonschema on every OCPP schema (differential test),
and the memoised key conversion must equal the library's camel_to_snake_case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ocpp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.charge_point import camel_to_snake_case

from csms.ocpp.casing import snake_case
from csms.ocpp.schemas import schema

ROOT = Path(ocpp.__file__).parent
SCHEMAS = sorted(
    [("1.6", f.stem) for f in (ROOT / "v16/schemas").glob("*.json")]
    + [("2.0.1", f.stem) for f in (ROOT / "v201/schemas").glob("*.json")]
)


def _key(version: str, stem: str) -> tuple[int, str]:
    if stem.endswith("Response"):
        return 3, stem[: -len("Response")]
    return 2, stem[: -len("Request")] if version == "2.0.1" else stem


def sample(s: dict[str, Any], draw: Any, depth: int = 0) -> Any:
    """An instance that is usually valid (so that mutations probe the interesting boundary)."""
    if "enum" in s:
        return draw(st.sampled_from(s["enum"]))
    t = s.get("type")
    if t == "object":
        out = {}
        for k, sub in s.get("properties", {}).items():
            if k in s.get("required", ()) or (depth < 4 and draw(st.booleans())):
                out[k] = sample(sub, draw, depth + 1)
        return out
    if t == "array":
        lo, hi = s.get("minItems", 0), s.get("maxItems", 2)
        n = draw(st.integers(lo, max(lo, min(hi, 2))))
        return [sample(s.get("items", {}), draw, depth + 1) for _ in range(n)]
    if t == "string":
        return draw(st.text(max_size=min(s.get("maxLength", 8), 8)))
    if t == "integer":
        return draw(st.integers(s.get("minimum", -3), s.get("maximum", 3) if "maximum" in s else 100))
    if t == "number":
        return draw(st.sampled_from([0, 1.5, 2, -3.25]))
    if t == "boolean":
        return draw(st.booleans())
    return draw(st.sampled_from([None, 1, "x"]))


WEIRD = [None, 1, -1, 2.5, True, "x", "x" * 600, [], {}, [1], {"zz": 1}]


def mutate(value: Any, draw: Any) -> Any:
    if isinstance(value, dict) and value and draw(st.booleans()):
        k = draw(st.sampled_from(sorted(value)))
        op = draw(st.sampled_from(["drop", "deeper", "replace"]))
        out = dict(value)
        if op == "drop":
            del out[k]
        elif op == "deeper":
            out[k] = mutate(out[k], draw)
        else:
            out[k] = draw(st.sampled_from(WEIRD))
        return out
    if isinstance(value, dict):
        return {**value, draw(st.sampled_from(["zz", "customData"])): draw(st.sampled_from(WEIRD))}
    if isinstance(value, list) and value:
        i = draw(st.integers(0, len(value) - 1))
        return value[:i] + [mutate(value[i], draw)] + value[i + 1:]
    return draw(st.sampled_from(WEIRD))


@pytest.mark.parametrize("version, stem", SCHEMAS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_schema_agrees_with_jsonschema(version: str, stem: str, data: Any) -> None:
    mtype, action = _key(version, stem)
    sch = schema(mtype, action, version)
    if sch.fast is None:
        return
    instance = sample(sch.full.schema, data.draw)
    if data.draw(st.booleans()):
        instance = mutate(instance, data.draw)
    assert sch.fast(instance) == sch.full.is_valid(instance), instance


def test_most_schemas_compile() -> None:
    compiled = sum(schema(*_key(v, s), v).fast is not None for v, s in SCHEMAS)
    assert compiled >= len(SCHEMAS) - 10  # only multipleOf schedules (1.6) fall back to jsonschema


camel_keys = st.from_regex(r"[a-z][a-zA-Z0-9]{0,12}", fullmatch=True) | st.sampled_from(
    ["ocppCSMSURL", "chargePointSerialNumber", "evMaxCurrent", "iso15118SchemaVersion", "V2XChargingParameters",
     "stateOfCharge", "acChargingParameters", "seqNo", "SoC", "EVSEId", "evseId"])
payloads = st.recursive(st.none() | st.integers() | st.text(max_size=3),
                        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(camel_keys, kids, max_size=4),
                        max_leaves=12)


@given(payloads)
def test_snake_case_equals_the_library(data: Any) -> None:
    assert snake_case(data) == camel_to_snake_case(data)


snake_keys = st.from_regex(r"[a-z][a-z0-9]{0,6}(_[a-z0-9]{1,6}){0,3}", fullmatch=True) | st.sampled_from(
    ["soc", "ev_soc", "soc_limit_reached", "ocpp_csms_url", "csms_url", "responder_url", "iso15118_schema_version",
     "v2x_charging_parameters", "v2g_x", "web_socket_ping_interval", "state_of_charge", "custom_data"])
snake_payloads = st.recursive(st.none() | st.integers() | st.text(max_size=3),
                              lambda kids: st.lists(kids, max_size=3) | st.dictionaries(snake_keys, kids, max_size=4),
                              max_leaves=12)


@given(snake_payloads)
def test_to_payload_equals_the_library_on_dicts(data: Any) -> None:
    from ocpp.charge_point import remove_nones, snake_to_camel_case

    from csms.ocpp.casing import to_payload
    assert to_payload(data) == snake_to_camel_case(remove_nones(data))


def test_to_payload_equals_the_library_on_call_results() -> None:
    """Nested dataclasses, enums and None fields, as the handlers return them."""
    from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
    from ocpp.v16 import call_result as r16
    from ocpp.v16 import datatypes as d16
    from ocpp.v201 import call_result as r201
    from ocpp.v201 import datatypes as d201
    from ocpp.v201 import enums as e201

    from csms.ocpp.casing import to_payload
    results = [
        r16.StartTransaction(transaction_id=3, id_tag_info=d16.IdTagInfo(status="Accepted", expiry_date=None)),
        r201.TransactionEvent(total_cost=1.5, id_token_info=d201.IdTokenInfoType(
            status=e201.AuthorizationStatusEnumType.accepted, group_id_token=d201.IdTokenType(id_token="G", type="Central"),
            personal_message=d201.MessageContentType(format="UTF8", content="hi"))),
        r201.BootNotification(current_time="2026-01-01T00:00:00Z", interval=300, status="Accepted",
                              status_info=d201.StatusInfoType(reason_code="x", additional_info=None)),
    ]
    for r in results:
        assert to_payload(r) == snake_to_camel_case(remove_nones(serialize_as_dict(r)))
