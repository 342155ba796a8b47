"""The only module that knows OCPP error codes: domain errors, schema failures and frame errors -> CALLERROR.

Error codes are spelled per version. OCPP 1.6 (and its errata, "known issues that will not be fixed")
keeps the typos `FormationViolation` and `OccurenceConstraintViolation`; 2.0.1 spells them
`FormatViolation` and `OccurrenceConstraintViolation`, and adds `RpcFrameworkError` and
`MessageTypeNotSupported` for frames that are not a valid RPC message.
"""

from __future__ import annotations

import logging
from jsonschema.exceptions import ValidationError as SchemaError

from csms.domain import errors as de
from csms.ocpp.common import BadPayload

log = logging.getLogger("csms.ocpp")

V16 = "1.6"
V201 = "2.0.1"

# Our own names for the error kinds; each maps to a code per version.
FORMAT = "format"
OCCURRENCE = "occurrence"
PROPERTY = "property"
TYPE = "type"
PROTOCOL = "protocol"
RPC = "rpc"  # the frame itself is not a valid RPC message
MSG_TYPE = "message_type"  # unknown MessageTypeId
INTERNAL = "internal"
GENERIC = "generic"
SECURITY = "security"
NOT_IMPLEMENTED = "not_implemented"
NOT_SUPPORTED = "not_supported"

_CODES: dict[str, dict[str, str]] = {
    FORMAT: {V16: "FormationViolation", V201: "FormatViolation"},
    OCCURRENCE: {V16: "OccurenceConstraintViolation", V201: "OccurrenceConstraintViolation"},
    PROPERTY: {V16: "PropertyConstraintViolation", V201: "PropertyConstraintViolation"},
    TYPE: {V16: "TypeConstraintViolation", V201: "TypeConstraintViolation"},
    PROTOCOL: {V16: "ProtocolError", V201: "ProtocolError"},
    RPC: {V16: "FormationViolation", V201: "RpcFrameworkError"},
    MSG_TYPE: {V16: "ProtocolError", V201: "MessageTypeNotSupported"},
    INTERNAL: {V16: "InternalError", V201: "InternalError"},
    GENERIC: {V16: "GenericError", V201: "GenericError"},
    SECURITY: {V16: "SecurityError", V201: "SecurityError"},
    NOT_IMPLEMENTED: {V16: "NotImplemented", V201: "NotImplemented"},
    NOT_SUPPORTED: {V16: "NotSupported", V201: "NotSupported"},
}

#: DomainError -> error kind. The most specific class in an exception's MRO wins.
TO_CALL_ERROR: dict[type[de.DomainError], str] = {
    de.UnknownTransaction: PROPERTY,
    de.UnknownIdToken: PROPERTY,
    de.InvalidRequest: PROPERTY,
    de.UnknownStation: SECURITY,
    de.Conflict: GENERIC,
    de.StationOffline: INTERNAL,
    de.NotConfigured: NOT_SUPPORTED,
    de.DomainError: GENERIC,
}

#: jsonschema keyword that failed -> error kind.
_SCHEMA: dict[str, str] = {
    "type": TYPE,
    "maxLength": TYPE,  # CiStringNType is a data type: too long violates it
    "required": OCCURRENCE,
    "minItems": OCCURRENCE,
    "maxItems": OCCURRENCE,
    "enum": PROPERTY,
    "minimum": PROPERTY,
    "maximum": PROPERTY,
    "multipleOf": PROPERTY,
    "pattern": PROPERTY,
    "minLength": PROPERTY,
    "additionalProperties": FORMAT,
}


class OcppFault(Exception):
    """Raised inside the adapter to answer a CALL with a CALLERROR of `kind`."""

    def __init__(self, kind: str, description: str, details: dict[str, object] | None = None) -> None:
        super().__init__(kind, description)
        self.kind = kind
        self.description = description
        self.details = details

    def __str__(self) -> str:
        return f"{self.kind}: {self.description}"


def code(kind: str, version: str) -> str:
    return _CODES[kind][version]


def from_schema_error(e: SchemaError) -> OcppFault:
    where = "/".join(str(p) for p in e.absolute_path) or "(payload)"
    return OcppFault(_SCHEMA.get(str(e.validator), FORMAT), f"{where}: {e.message}"[:250])


def from_exception(e: BaseException, action: str, station_id: str) -> OcppFault:
    """The CALLERROR for an exception raised while handling a charger's CALL. Never raises."""
    if isinstance(e, OcppFault):
        return e
    if isinstance(e, de.StoreUnavailable):  # logged once per outage by the store, not once per message
        return OcppFault(INTERNAL, "database unavailable")
    if isinstance(e, RecursionError):  # a payload nested too deep for validation or mapping: the sender's fault
        return OcppFault(FORMAT, "payload nested too deeply")
    if isinstance(e, BadPayload):
        return OcppFault(e.kind if e.kind in _CODES else PROPERTY, str(e)[:250])
    if isinstance(e, de.DomainError):
        for cls in type(e).__mro__:
            kind = TO_CALL_ERROR.get(cls)  # type: ignore[call-overload]
            if kind is not None:
                log.info("call refused station=%s action=%s error=%s detail=%s", station_id, action,
                         type(e).__name__, e)
                return OcppFault(kind, f"{type(e).__name__}: {e}"[:250])
    log.error("handler failed station=%s action=%s error=%r", station_id, action, e, exc_info=e)
    return OcppFault(INTERNAL, "internal error")


def call_error_frame(unique_id: str, fault: OcppFault, version: str) -> list[object]:
    return [4, unique_id, code(fault.kind, version), fault.description, fault.details or {}]
