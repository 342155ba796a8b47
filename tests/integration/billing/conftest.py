"""A CSMS core (store, bus, charging, billing) on a real database, with two finished sessions billed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.billing_config import parse_billing
from csms.config import ApiConfig, ApiKeyConfig, ChargerConfig, Config, IdTokenConfig, SiteConfig
from csms.domain.clock import FakeClock
from csms.domain.enums import ChargingState, ConnectorStatus, Measurand, TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import MeterSample, SampledValue, TxEvent
from csms.services.billing import BillingService
from csms.services.bus import EventBus
from csms.services.charging import ChargingService
from csms.services.provisioning import seed_from_config
from csms.store.db import create_engine, migrate
from csms.store.repositories import Store

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DRIVER_KEY = "driver-key-0123456789"
ADMIN_KEY = "admin-key-0123456789ab"


@dataclass
class Core:
    cfg: Config
    clock: FakeClock
    store: Store
    bus: EventBus
    charging: ChargingService
    billing: BillingService
    gateway: Any = None
    smart: Any = None
    bookings: Any = None
    metrics: Any = None


async def run_session(core: Core, station: str, tx_id: str, tag: str, start: datetime, kwh: int,
                      idle_min: float) -> None:
    """A 2.0.1-shaped session: charges `kwh` at 12 kW, stays `idle_min` after full, unplugs."""
    def ev(kind: TxEventKind, at: datetime, seq: int, wh: float | None = None, **kw: Any) -> TxEvent:
        core.clock.t = at
        samples = (MeterSample(at, (SampledValue(Measurand.ENERGY_IMPORT_WH, wh),
                                    SampledValue(Measurand.POWER_IMPORT_W, 12000.0))),) if wh is not None else ()
        return TxEvent(kind, StationId(station), at, tx_id, EvseRef(1), seq_no=seq, samples=samples, **kw)

    full = start + timedelta(minutes=5 * kwh)  # 12 kW = 1 kWh per 5 minutes
    await core.charging.transaction(ev(TxEventKind.STARTED, start, 0, 0.0, id_token=tag,
                                       charging_state=ChargingState.CHARGING))
    await core.charging.transaction(ev(TxEventKind.UPDATED, full, 1, kwh * 1000.0,
                                       charging_state=ChargingState.SUSPENDED_EV))
    end = full + timedelta(minutes=idle_min)
    await core.charging.transaction(ev(TxEventKind.ENDED, end, 2, stop_reason="EVDisconnected"))
    await core.charging.status_changed(station, EvseRef(1), ConnectorStatus.AVAILABLE, end, None, None)
    await core.billing.drain()


@pytest.fixture
async def core(db_url: str) -> AsyncIterator[Core]:
    cfg = Config(
        sites=[SiteConfig(id="s1", grid_limit_kw=50.0)],
        chargers=[ChargerConfig(id="CP1", site="s1"), ChargerConfig(id="CP2", site="s1")],
        id_tokens=[IdTokenConfig(value="TAG1"), IdTokenConfig(value="TAG2")],
        api=ApiConfig(keys={"admin": ApiKeyConfig(key=ADMIN_KEY, role="admin"),
                            "dana": ApiKeyConfig(key=DRIVER_KEY, role="driver", id_tokens=["TAG2"])}),
    )
    bc = parse_billing({"tariff": {"tax_rate": "0.19", "session_fee": "0.50"},
                        "groups": {}, "overstay": {"fee_per_minute": "0.10", "grace_min": 10, "cap": "2.00"}})
    engine = create_engine(db_url)
    await migrate(engine)
    store = Store(engine)
    await seed_from_config(store, cfg)
    clock = FakeClock(T0)
    bus = EventBus()
    charging = ChargingService(store, bus, clock, heartbeat_interval_s=60)
    billing = BillingService(cfg, store, bus, clock, billing=bc)
    await billing.start()
    c = Core(cfg, clock, store, bus, charging, billing)
    yield c
    await billing.stop()
    await engine.dispose()
