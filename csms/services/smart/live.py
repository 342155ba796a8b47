"""The configuration the smart-charging parts share; a reload swaps it in one place."""

from __future__ import annotations

from dataclasses import dataclass

from csms.config import ChargerConfig, Config, SmartChargingConfig


@dataclass
class Live:
    cfg: Config

    @property
    def sc(self) -> SmartChargingConfig:
        return self.cfg.smart_charging

    @property
    def enabled(self) -> bool:
        return self.cfg.smart_charging.enabled

    @property
    def slot_s(self) -> int:
        return self.cfg.smart_charging.slot_min * 60

    def charger(self, station_id: str) -> ChargerConfig | None:
        return self.cfg.charger(station_id)
