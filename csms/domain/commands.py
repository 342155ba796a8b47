"""CSMS-initiated commands as data: one frozen value per command, sent with `ChargerGateway.send(station, cmd)`.

Each OCPP version's adapter has one table (`csms/ocpp/v16/commands.py`, `csms/ocpp/v201/commands.py`) that
encodes a command into the requests of that version and decodes the answers into a `CommandResult`; the
gateway has one method for all of them. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .certificates import CertificateHashData, CertificateUse, SigningUse
from .ids import EvseRef
from .model import ChargingProfile


@dataclass(frozen=True, slots=True)
class RemoteStart:
    evse_id: int | None
    id_token: str
    remote_start_id: int
    token_type: str | None = None  # 2.0.1 IdTokenEnumType of the token (None: ISO14443); 1.6 idTags have none


@dataclass(frozen=True, slots=True)
class RemoteStop:
    charger_tx_id: str


@dataclass(frozen=True, slots=True)
class SetChargingProfile:
    evse_id: int
    profile: ChargingProfile


@dataclass(frozen=True, slots=True)
class ClearChargingProfile:
    profile_id: int | None = None
    evse_id: int | None = None
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class GetCompositeSchedule:
    evse_id: int
    duration_s: int
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeAvailability:
    evse_id: int | None  # None: the whole station
    operative: bool


@dataclass(frozen=True, slots=True)
class Reset:
    hard: bool = False


@dataclass(frozen=True, slots=True)
class UnlockConnector:
    evse: EvseRef


@dataclass(frozen=True, slots=True)
class ReserveNow:
    reservation_id: int
    evse_id: int | None
    id_token: str
    expires_at: datetime
    token_type: str | None = None


@dataclass(frozen=True, slots=True)
class CancelReservation:
    reservation_id: int


@dataclass(frozen=True, slots=True)
class TriggerMessage:
    message: str
    evse_id: int | None = None


@dataclass(frozen=True, slots=True)
class GetConfiguration:
    keys: tuple[str, ...] | None = None  # 1.6 keys, or 2.0.1 "Component.Variable"; None: every known key


@dataclass(frozen=True, slots=True)
class ChangeConfiguration:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class RawCall:
    """Any action of the station's version; camelCase payload, validated against that version's schema."""

    action: str
    payload: dict[str, object]


@dataclass(frozen=True, slots=True)
class CertificateSigned:
    chain_pem: str
    use: SigningUse = SigningUse.CHARGING_STATION


@dataclass(frozen=True, slots=True)
class InstallCertificate:
    use: CertificateUse
    pem: str


@dataclass(frozen=True, slots=True)
class GetInstalledCertificates:
    uses: tuple[CertificateUse, ...] | None = None


@dataclass(frozen=True, slots=True)
class DeleteCertificate:
    hash_data: CertificateHashData


Command = (RemoteStart | RemoteStop | SetChargingProfile | ClearChargingProfile | GetCompositeSchedule
           | ChangeAvailability | Reset | UnlockConnector | ReserveNow | CancelReservation | TriggerMessage
           | GetConfiguration | ChangeConfiguration | RawCall | CertificateSigned | InstallCertificate
           | GetInstalledCertificates | DeleteCertificate)

#: Every command type, for the tables' completeness tests.
COMMANDS: tuple[type, ...] = Command.__args__
