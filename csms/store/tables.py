"""ORM tables. Never imported outside csms.store: repositories convert rows to domain values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Stores tz-aware UTC. SQLite drops the offset, so it is put back on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class StationRow(Base):
    __tablename__ = "stations"
    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(48), default="default")
    registration: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    #: OCPP security profile 0-3 the charger must connect with; NULL: the server default.
    security_profile: Mapped[int | None] = mapped_column(Integer)
    #: The registration was set through the API: config.yaml (re)seeding leaves it alone.
    registration_by_operator: Mapped[bool | None] = mapped_column(Boolean)
    vendor: Mapped[str | None] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(50))
    serial_number: Mapped[str | None] = mapped_column(String(50))
    firmware_version: Mapped[str | None] = mapped_column(String(50))
    protocol: Mapped[str | None] = mapped_column(String(16))
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_boot: Mapped[datetime | None] = mapped_column(UtcDateTime)
    max_current_a: Mapped[float] = mapped_column(Float, default=32.0)
    max_power_w: Mapped[float | None] = mapped_column(Float)
    min_current_a: Mapped[float] = mapped_column(Float, default=6.0)
    phases: Mapped[int] = mapped_column(Integer, default=3)
    voltage_v: Mapped[float] = mapped_column(Float, default=230.0)
    from_config: Mapped[bool] = mapped_column(Boolean, default=False)


class ConnectorRow(Base):
    """Current status of each connector (the latest StatusNotification)."""

    __tablename__ = "connectors"
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True)
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(50))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class StatusHistoryRow(Base):
    __tablename__ = "status_history"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48), index=True)
    evse_id: Mapped[int | None] = mapped_column(Integer)
    connector_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    charging_state: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(50))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class TransactionRow(Base):
    __tablename__ = "transactions"
    #: Also the OCPP 1.6 transactionId we hand out (an integer, unique system-wide).
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    station_id: Mapped[str] = mapped_column(String(48), index=True)
    charger_tx_id: Mapped[str] = mapped_column(String(64))
    evse_id: Mapped[int] = mapped_column(Integer)
    connector_id: Mapped[int] = mapped_column(Integer, default=1)
    id_token: Mapped[str | None] = mapped_column(String(36))
    group: Mapped[str | None] = mapped_column(String(50))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    meter_start_wh: Mapped[float | None] = mapped_column(Float)
    meter_stop_wh: Mapped[float | None] = mapped_column(Float)
    energy_wh: Mapped[float] = mapped_column(Float, default=0.0)
    power_w: Mapped[float | None] = mapped_column(Float)
    soc_pct: Mapped[float | None] = mapped_column(Float)
    charging_state: Mapped[str | None] = mapped_column(String(16))
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    last_seq_no: Mapped[int | None] = mapped_column(Integer)
    #: Phases the car draws on (per-phase current measured, or 2.0.1 numberOfPhasesUsed); None: unknown.
    ev_phases: Mapped[int | None] = mapped_column(Integer)
    #: 1.6 StartTransaction fingerprint (connector, idTag, meterStart, timestamp) to recognise a replay.
    start_fingerprint: Mapped[str | None] = mapped_column(String(200), index=True)
    __table_args__ = (
        UniqueConstraint("station_id", "charger_tx_id", name="uq_tx_station_charger_id"),
        Index("ix_tx_active", "station_id", "ended_at"),
    )


class TransactionMessageRow(Base):
    """Every transaction message applied, by (transaction, seqNo): a replay is recognised and ignored."""

    __tablename__ = "transaction_messages"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tx_key: Mapped[str] = mapped_column(String(100))
    seq_no: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    __table_args__ = (UniqueConstraint("tx_key", "seq_no", name="uq_txmsg_seq"),)


class MeterSampleRow(Base):
    __tablename__ = "meter_samples"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48))
    evse_id: Mapped[int | None] = mapped_column(Integer)
    tx_key: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    measurand: Mapped[str] = mapped_column(String(40))
    phase: Mapped[str | None] = mapped_column(String(8))
    value: Mapped[float] = mapped_column(Float)
    context: Mapped[str | None] = mapped_column(String(24))
    __table_args__ = (Index("ix_samples_tx", "tx_key", "at"), Index("ix_samples_station_at", "station_id", "at"))


#: The natural key of a transaction's sample (migration 0005_samples): a replayed MeterValues is not stored twice.
Index("uq_samples_natural", MeterSampleRow.tx_key, MeterSampleRow.at, MeterSampleRow.measurand,
      func.coalesce(MeterSampleRow.phase, ""), unique=True)


class GroupRow(Base):
    __tablename__ = "groups"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    priority: Mapped[float] = mapped_column(Float, default=1.0)


class IdTokenRow(Base):
    __tablename__ = "id_tokens"
    value: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(20), default="ISO14443")
    status: Mapped[str] = mapped_column(String(16), default="Accepted")
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    group: Mapped[str | None] = mapped_column(String(50))


class ChargingNeedsRow(Base):
    __tablename__ = "charging_needs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48))
    evse_id: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    energy_amount_wh: Mapped[float | None] = mapped_column(Float)
    departure_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ev_max_current_a: Mapped[float | None] = mapped_column(Float)
    ev_min_current_a: Mapped[float | None] = mapped_column(Float)
    ev_max_power_w: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="ev")
    ev_phases: Mapped[int | None] = mapped_column(Integer)  # from 2.0.1 requestedEnergyTransfer
    __table_args__ = (Index("ix_needs_evse", "station_id", "evse_id", "received_at"),)


class StationEventRow(Base):
    """Informational notices: security events, firmware/log/diagnostics status, reports, data transfers."""

    __tablename__ = "station_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class BookingRow(Base):
    __tablename__ = "bookings"
    #: Also the OCPP reservationId sent with ReserveNow.
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(48))
    station_id: Mapped[str] = mapped_column(String(48))
    evse_id: Mapped[int] = mapped_column(Integer)
    id_token: Mapped[str] = mapped_column(String(36))
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    end: Mapped[datetime] = mapped_column(UtcDateTime)
    energy_wh: Mapped[float | None] = mapped_column(Float)
    guaranteed_energy_wh: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    transaction_key: Mapped[str | None] = mapped_column(String(100))
    __table_args__ = (Index("ix_bookings_evse_time", "station_id", "evse_id", "start"),)


# --- billing (csms.services.billing) ----------------------------------------------------------------
class BillingSessionRow(Base):
    """What billing knows about one transaction's occupancy of the bay, so a restart loses nothing:
    when the EV stopped drawing, when it was unplugged, and the overstay phase already announced."""

    __tablename__ = "billing_sessions"
    tx_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    station_id: Mapped[str] = mapped_column(String(48))
    evse_id: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[str | None] = mapped_column(String(48))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    drew_power: Mapped[bool] = mapped_column(Boolean, default=False)
    charging_finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    low_power_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    unplugged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_occupied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stated_departure: Mapped[datetime | None] = mapped_column(UtcDateTime)
    overstay_phase: Mapped[str] = mapped_column(String(16), default="ok")
    finalised: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class InvoiceRow(Base):
    """One invoice per transaction (unique tx_key): a replay or a restart can never bill twice.
    Amounts are exact decimal strings, as printed; `data` is the full Invoice.to_dict()."""

    __tablename__ = "invoices"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tx_key: Mapped[str] = mapped_column(String(100), unique=True)
    station_id: Mapped[str] = mapped_column(String(48))
    charger_tx_id: Mapped[str] = mapped_column(String(64))
    evse_id: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[str | None] = mapped_column(String(48))
    id_token: Mapped[str | None] = mapped_column(String(36), index=True)
    group: Mapped[str | None] = mapped_column(String(50))
    currency: Mapped[str] = mapped_column(String(3))
    session_start: Mapped[datetime] = mapped_column(UtcDateTime)
    session_end: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    finalised_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: unplugged | timeout
    reason: Mapped[str] = mapped_column(String(16))
    energy_wh: Mapped[str] = mapped_column(String(32))
    subtotal: Mapped[str] = mapped_column(String(32))
    tax: Mapped[str] = mapped_column(String(32))
    total: Mapped[str] = mapped_column(String(32))
    overstay_minutes: Mapped[int] = mapped_column(Integer, default=0)
    overstay_fee: Mapped[str] = mapped_column(String(32), default="0")
    lines: Mapped[list[Any]] = mapped_column(JSON)
    anomalies: Mapped[list[Any]] = mapped_column(JSON)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class SiteLoadRow(Base):
    """Mean charging load of a site per fixed bucket, against its grid limit: the demand-tier input."""

    __tablename__ = "site_load"
    site_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    start: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    end: Mapped[datetime] = mapped_column(UtcDateTime)
    mean_power_w: Mapped[float] = mapped_column(Float)
    limit_w: Mapped[float | None] = mapped_column(Float)
