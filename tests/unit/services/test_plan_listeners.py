"""A new plan's view is built only for listeners that take it: with MQTT off (the default) building it for
nobody was ~4 % of a boot ramp's CPU with smart charging on (py-spy, 1,000 chargers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.config import parse_config
from csms.telemetry.mqtt import MqttTelemetry

from .test_profile_churn import service


class Listener:
    def __init__(self, wants_plans: bool) -> None:
        self.wants_plans = wants_plans
        self.got: list[str] = []

    def site_plan(self, site_id: str, plan: Any, at: datetime) -> None:
        self.got.append(site_id)


def test_the_view_is_built_only_for_listeners_that_take_it() -> None:
    svc, *_ = service(["C0"], 40.0)
    built: list[str] = []

    def view(site_id: str) -> dict[str, Any]:
        built.append(site_id)
        return {"site_id": site_id}

    svc.plan_view = view  # type: ignore[method-assign]
    off, on = Listener(False), Listener(True)
    svc.listeners = [off]
    svc._publish("s")
    assert built == [] and off.got == []
    svc.listeners = [off, on]
    svc._publish("s")
    assert built == ["s"] and on.got == ["s"] and off.got == []


def test_mqtt_takes_plans_only_when_enabled() -> None:
    off = MqttTelemetry(parse_config("", env={}).mqtt)
    on = MqttTelemetry(parse_config("mqtt: {enabled: true}", env={}).mqtt)
    assert (off.wants_plans, on.wants_plans) == (False, True)
