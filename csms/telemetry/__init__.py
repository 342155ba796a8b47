"""Telemetry adapter: committed domain facts out to MQTT, the site-limit override in.

Public API: `MqttTelemetry` (mqtt.py), `TelemetryRecord` and the record builders (records.py), topic
builders (topics.py). See docs/mqtt.md for topics and payloads.
"""

from .mqtt import LimitSetHandler, MqttTelemetry, backoff_delay, parse_mqtt_url
from .records import (
    OVERSTAY_ENDED,
    OVERSTAY_STARTED,
    OVERSTAY_WARNING,
    SESSION_ENDED,
    SESSION_STARTED,
    InvalidLimit,
    TelemetryRecord,
    event_records,
    parse_limit_set,
    plan_record,
    session_event_record,
    site_load_record,
)

__all__ = [
    "OVERSTAY_ENDED", "OVERSTAY_STARTED", "OVERSTAY_WARNING", "SESSION_ENDED", "SESSION_STARTED",
    "InvalidLimit", "LimitSetHandler", "MqttTelemetry", "TelemetryRecord", "backoff_delay", "event_records",
    "parse_limit_set", "parse_mqtt_url", "plan_record", "session_event_record", "site_load_record",
]
