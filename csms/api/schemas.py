"""Request/response models of the REST API (separate from domain and ORM)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _aware(v: datetime) -> datetime:
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValueError("needs a UTC offset, e.g. 2026-11-27T17:30:00Z")
    return v


#: Bounds of integer ids and offsets: beyond them a request is a typo or a probe, and an unbounded int
#: overflows the database's 64-bit integer (a 500 instead of a 422).
MAX_EVSE_ID = 1000
MAX_CONNECTOR_ID = 100
MAX_OFFSET = 1_000_000_000
MAX_ROW_ID = 2**63 - 1

#: A timestamp with its UTC offset: a naive one is ambiguous (whose local time?) and refused with 422.
UtcDateTime = Annotated[datetime, AfterValidator(_aware)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectorOut(BaseModel):
    evse_id: int
    connector_id: int
    status: str
    error_code: str | None = None
    at: datetime


class StationOut(BaseModel):
    id: str
    site_id: str
    registration: str
    online: bool
    last_seen: datetime | None = None
    protocol: str | None = None
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    max_current_a: float
    phases: int
    connectors: list[ConnectorOut] = []


class StationIn(_In):
    id: str = Field(pattern=r"^[^:/\s]{1,48}$")
    site_id: str = "default"
    password: str | None = Field(None, min_length=8, max_length=128)
    #: OCPP security profile (0 none, 1 password, 2 TLS + password, 3 TLS + client certificate); None: the
    #: site's, else the server's. Profiles 1 and 2 need a password.
    security_profile: Literal[0, 1, 2, 3] | None = None
    max_current_a: float = Field(32.0, gt=0)
    min_current_a: float = Field(6.0, ge=0)
    phases: Literal[1, 2, 3] = 3
    voltage_v: float = Field(230.0, gt=0)


class StationPatch(_In):
    site_id: str | None = None
    min_current_a: float | None = Field(None, ge=0)
    phases: Literal[1, 2, 3] | None = None
    password: str | None = Field(None, min_length=8, max_length=128)
    security_profile: Literal[0, 1, 2, 3] | None = None
    max_current_a: float | None = Field(None, gt=0)
    registration: Literal["Accepted", "Pending", "Rejected"] | None = None


class SessionOut(BaseModel):
    key: str
    station_id: str
    transaction_id: str
    evse_id: int
    connector_id: int
    id_token: str | None
    group: str | None
    started_at: datetime
    ended_at: datetime | None
    active: bool
    energy_wh: float
    power_w: float | None
    soc_pct: float | None
    charging_state: str | None
    stop_reason: str | None
    #: Total so far incl. tax, a decimal string in `currency` (null without billing).
    cost_so_far: str | None = None
    currency: str | None = None
    overstay: dict[str, Any] | None = None


class Page(BaseModel):
    """Every list the API answers is a page: `next_offset` is null on the last one."""

    items: list[Any]
    offset: int
    limit: int
    next_offset: int | None

    @classmethod
    def of(cls, rows: list[Any], offset: int, limit: int) -> "Page":
        """A page from `rows` fetched with `limit + 1` from `offset` (the extra row says there is more)."""
        return cls(items=rows[:limit], offset=offset, limit=limit,
                   next_offset=offset + limit if len(rows) > limit else None)

    @classmethod
    def slice(cls, rows: list[Any], offset: int, limit: int) -> "Page":
        """A page of a list held in full (stations, sites, tokens: bounded by the configuration)."""
        return cls.of(rows[offset:offset + limit + 1], offset, limit)


#: Query parameters of every paged list.
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page (at most 1000)")]


def money(value: Any, currency: str) -> str | None:
    """An amount as an exact decimal string in the currency's minor units ('12.30'): money is never a float
    in the API. Accepts Decimal, str or the float of a live estimate."""
    if value is None:
        return None
    from decimal import Decimal

    from csms.billing.money import minor_units

    return str(Decimal(str(value)).quantize(Decimal(1).scaleb(-minor_units(currency))))


class IdTokenIn(_In):
    #: The path names the token; repeating it here is allowed (it must then match).
    value: str | None = Field(None, min_length=1, max_length=36)
    type: str = "ISO14443"
    status: Literal["Accepted", "Blocked", "Expired", "Invalid"] = "Accepted"
    expires_at: UtcDateTime | None = None
    group: str | None = None


class IdTokenOut(BaseModel):
    value: str
    type: str
    status: str
    expires_at: datetime | None
    group: str | None


class GroupIn(_In):
    name: str = Field(min_length=1, max_length=50)
    priority: float = Field(1.0, gt=0)


class CommandOut(BaseModel):
    status: str
    data: dict[str, Any] = {}
    detail: str | None = None


class RemoteStartIn(_In):
    id_token: str = Field(min_length=1, max_length=36)
    evse_id: int | None = Field(None, ge=1, le=MAX_EVSE_ID)


class RemoteStopIn(_In):
    transaction_id: str = Field(min_length=1)


class AvailabilityIn(_In):
    operative: bool
    evse_id: int | None = Field(None, ge=1, le=MAX_EVSE_ID)


class ResetIn(_In):
    hard: bool = False


class UnlockIn(_In):
    evse_id: int = Field(ge=1, le=MAX_EVSE_ID)
    connector_id: int = Field(1, ge=1, le=MAX_CONNECTOR_ID)


class TriggerIn(_In):
    message: Literal["BootNotification", "Heartbeat", "MeterValues", "StatusNotification",
                     "FirmwareStatusNotification", "DiagnosticsStatusNotification", "LogStatusNotification",
                     "SignChargingStationCertificate", "TransactionEvent"]
    evse_id: int | None = Field(None, ge=1, le=MAX_EVSE_ID)


class GetConfigurationIn(_In):
    keys: list[str] | None = Field(None, description="1.6 keys or 2.0.1 Component.Variable names; none: all")


class ConfigurationIn(_In):
    key: str = Field(min_length=1)
    value: str


class RawCallIn(_In):
    action: str = Field(min_length=1, pattern=r"^[A-Za-z]+$")
    payload: dict[str, Any] = {}


class ChargingNeedsIn(_In):
    departure_time: UtcDateTime | None = None
    energy_kwh: float | None = Field(None, gt=0, le=1000)


CertificateUseWord = Literal["CSMSRootCertificate", "ManufacturerRootCertificate", "V2GRootCertificate",
                             "MORootCertificate", "V2GCertificateChain"]


class InstallCertificateIn(_In):
    certificate_type: Literal["CSMSRootCertificate", "ManufacturerRootCertificate", "V2GRootCertificate",
                              "MORootCertificate"] = Field(
        description="2.0.1 words; 1.6 chargers take CSMSRootCertificate (sent as CentralSystemRootCertificate) "
                    "and ManufacturerRootCertificate only")
    certificate: str = Field(min_length=1, max_length=5500, description="one PEM X.509 certificate")
