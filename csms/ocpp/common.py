"""Pure helpers shared by both OCPP versions: identities, timestamps, units. No I/O, no `ocpp` imports.

The version packages (`v16`, `v201`) import this module, never each other.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote

from csms.domain.clock import utc
from csms.domain.enums import Measurand

#: OCPP 2.0.1 identityString is at most 48 characters (1.6 chargeBoxIdentity is 25, but real 1.6
#: stations use longer ones; we accept the 2.0.1 bound for both).
MAX_IDENTITY_LEN = 48


class BadPayload(ValueError):
    """A schema-valid payload whose content cannot be used (e.g. an unparsable timestamp).

    `kind` names the OCPP error it becomes (see csms.ocpp.errors): "type" or "property".
    """

    def __init__(self, message: str, kind: str = "property") -> None:
        super().__init__(message)
        self.kind = kind


# --- identity ------------------------------------------------------------------------------------
def identity_from_path(path: str, prefix: str) -> tuple[int, str]:
    """Charger identity from a handshake path `{prefix}/{id}[?query]`.

    Returns (0, identity) when acceptable, else (http_status, reason): 404 for a path outside the
    endpoint, 400 for an identity that is empty, too long, contains ':' (it would break HTTP Basic
    auth) or '/' once decoded, or is not printable.
    """
    path = path.split("?", 1)[0]
    head = prefix.rstrip("/") + "/"
    if not path.startswith(head):
        return 404, "unknown endpoint"
    raw = path[len(head):]
    if "/" in raw:
        return 404, "unknown endpoint"
    try:
        ident = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return 400, "identity is not valid UTF-8"
    if not ident:
        return 400, "missing charger identity"
    if len(ident) > MAX_IDENTITY_LEN:
        return 400, f"identity longer than {MAX_IDENTITY_LEN} characters"
    if ":" in ident or "/" in ident or not ident.isprintable():
        return 400, "identity contains a forbidden character"
    return 0, ident


# --- time ----------------------------------------------------------------------------------------
def parse_ts(value: str | None) -> datetime | None:
    """An OCPP dateTime as tz-aware UTC. Naive values are taken as UTC (several chargers send them)."""
    if value is None:
        return None
    try:
        return utc(datetime.fromisoformat(value))
    except (TypeError, ValueError) as e:
        raise BadPayload(f"not an ISO 8601 date-time: {value!r}", "type") from e


def parse_ts_or(value: str | None, default: datetime) -> datetime:
    parsed = parse_ts(value)
    return default if parsed is None else parsed


def format_ts(dt: datetime) -> str:
    """UTC, millisecond precision, 'Z' designator: 2026-11-27T05:15:13.123Z. Naive is taken as UTC."""
    return utc(dt).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- units ---------------------------------------------------------------------------------------
_MEASURANDS: dict[str, Measurand] = {m.value: m for m in Measurand}

#: Units each measurand may be reported in, with the factor to its SI unit (Wh, W, A, V, %).
_UNITS: dict[Measurand, dict[str, float]] = {
    Measurand.ENERGY_IMPORT_WH: {"Wh": 1.0, "kWh": 1000.0},
    Measurand.POWER_IMPORT_W: {"W": 1.0, "kW": 1000.0},
    Measurand.POWER_OFFERED_W: {"W": 1.0, "kW": 1000.0},
    Measurand.CURRENT_IMPORT_A: {"A": 1.0},
    Measurand.CURRENT_OFFERED_A: {"A": 1.0},
    Measurand.VOLTAGE_V: {"V": 1.0},
    Measurand.SOC_PCT: {"Percent": 1.0},
}
_DEFAULT_UNIT: dict[Measurand, str] = {m: next(iter(u)) for m, u in _UNITS.items()}

DEFAULT_MEASURAND = Measurand.ENERGY_IMPORT_WH.value


def measurand(name: str | None) -> Measurand | None:
    """Our measurand for an OCPP one (default Energy.Active.Import.Register); None if we do not keep it."""
    return _MEASURANDS.get(name or DEFAULT_MEASURAND)


def to_si(m: Measurand, value: float, unit: str | None, multiplier: int = 0) -> float | None:
    """`value` x 10^multiplier in `unit`, converted to the measurand's SI unit.

    A missing unit means the measurand's own SI unit. None when the unit does not fit the measurand
    (e.g. an energy reported in A), so that a wrong unit is dropped rather than stored as a lie.
    """
    factor = _UNITS[m].get(unit or _DEFAULT_UNIT[m])
    if factor is None:
        return None
    v = value * factor * (10.0**multiplier if multiplier else 1.0)
    return round(v, 6)
