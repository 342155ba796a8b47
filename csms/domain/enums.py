"""Our own enumerations. Adapters map each OCPP version's words onto these (and back)."""

from __future__ import annotations

from enum import StrEnum


class ProtocolVersion(StrEnum):
    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"


class RegistrationStatus(StrEnum):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class ConnectorStatus(StrEnum):
    """Availability of a connector: 2.0.1's five states. 1.6's finer states map to OCCUPIED + a ChargingState."""

    AVAILABLE = "Available"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class ChargingState(StrEnum):
    """What the EV is doing on an occupied connector (2.0.1 chargingState; 1.6 status words)."""

    IDLE = "Idle"
    EV_CONNECTED = "EVConnected"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"


class AuthorizationStatus(StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"
    UNKNOWN = "Unknown"


class Measurand(StrEnum):
    """Measurands we store, in SI units named by the value column (Wh, W, A, V, %)."""

    ENERGY_IMPORT_WH = "Energy.Active.Import.Register"
    POWER_IMPORT_W = "Power.Active.Import"
    CURRENT_IMPORT_A = "Current.Import"
    CURRENT_OFFERED_A = "Current.Offered"
    POWER_OFFERED_W = "Power.Offered"
    VOLTAGE_V = "Voltage"
    SOC_PCT = "SoC"


class RateUnit(StrEnum):
    AMPS = "A"
    WATTS = "W"


class ProfilePurpose(StrEnum):
    STATION_MAX = "ChargingStationMaxProfile"
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"


class CommandStatus(StrEnum):
    """Outcome of a CSMS-initiated command. Never None: every call ends in one of these."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    SCHEDULED = "Scheduled"
    NOT_SUPPORTED = "NotSupported"
    UNKNOWN = "Unknown"  # e.g. a reservation or profile the charger does not know
    OFFLINE = "Offline"  # the charger is not connected
    TIMEOUT = "Timeout"  # no answer within the response timeout
    ERROR = "Error"  # the charger answered with a CALLERROR, or the answer was invalid


class TxEventKind(StrEnum):
    STARTED = "Started"
    UPDATED = "Updated"
    ENDED = "Ended"
