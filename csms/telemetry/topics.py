"""MQTT topic names: the only place in the code base where topic strings are spelled.

Builders return topics *relative to the configured prefix* (records carry those, so they do not depend on
configuration); `full_topic(prefix, rel)` adds the prefix when a record is published.

Identifiers become single topic levels, so the characters MQTT gives a meaning inside a topic name are
percent-escaped (`escape_segment`): ``%`` -> ``%25``, ``/`` -> ``%2F``, ``+`` -> ``%2B``, ``#`` -> ``%23`` and
NUL -> ``%00``. A transaction key ``CP01/42`` therefore becomes ``session/CP01%2F42/event``. Every other
character (including non-ASCII) is kept. `unescape_segment` reverses it exactly.

    {prefix}/status                               csms availability: "online" / "offline" (retained, LWT)
    {prefix}/station/{station}/status             station online/offline (retained)
    {prefix}/station/{station}/evse/{n}/status    connector status + charging state (retained); n=0: station
    {prefix}/station/{station}/evse/{n}/meter     power_w, energy_wh, register_wh, soc_pct
    {prefix}/session/{tx_key}/event               started / ended / overstay_* events
    {prefix}/site/{site}/load                     load_w, limit_w, headroom_w (retained)
    {prefix}/site/{site}/plan                     the current charging plan (retained)
    {prefix}/site/{site}/limit/set                INBOUND: operator override of the site limit (kW)
"""

from __future__ import annotations

# Record kinds (stable keys for code that routes or counts records; not part of the topic).
CSMS_STATUS = "csms.status"
STATION_STATUS = "station.status"
EVSE_STATUS = "evse.status"
EVSE_METER = "evse.meter"
SESSION_EVENT = "session.event"
SITE_LOAD = "site.load"
SITE_PLAN = "site.plan"
SITE_LIMIT_SET = "site.limit.set"

_ESCAPES = {"%": "%25", "/": "%2F", "+": "%2B", "#": "%23", "\x00": "%00"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}


def escape_segment(value: str) -> str:
    """Make an identifier safe as one topic level (reversible, see the module docstring)."""
    if not value:
        raise ValueError("an identifier used as a topic level must not be empty")
    return "".join(_ESCAPES.get(c, c) for c in value)


def unescape_segment(segment: str) -> str:
    """Inverse of `escape_segment`. Unknown %-sequences are kept as they are."""
    if "%" not in segment:
        return segment
    out: list[str] = []
    i = 0
    while i < len(segment):
        code = segment[i:i + 3].upper()
        if segment[i] == "%" and code in _UNESCAPES:
            out.append(_UNESCAPES[code])
            i += 3
        else:
            out.append(segment[i])
            i += 1
    return "".join(out)


def normalize_prefix(prefix: str) -> str:
    """'csms/' -> 'csms'. The prefix may have several levels ('acme/depot-3/csms') but no wildcards."""
    p = prefix.strip("/")
    if "+" in p or "#" in p or "\x00" in p:
        raise ValueError(f"MQTT topic prefix must not contain '+', '#' or NUL: {prefix!r}")
    return p


def full_topic(prefix: str, rel: str) -> str:
    p = normalize_prefix(prefix)
    return f"{p}/{rel}" if p else rel


# --- outbound (relative to the prefix) -----------------------------------------------------------
def csms_status() -> str:
    return "status"


def station_status(station_id: str) -> str:
    return f"station/{escape_segment(station_id)}/status"


def evse_status(station_id: str, evse_id: int) -> str:
    return f"station/{escape_segment(station_id)}/evse/{int(evse_id)}/status"


def evse_meter(station_id: str, evse_id: int) -> str:
    return f"station/{escape_segment(station_id)}/evse/{int(evse_id)}/meter"


def session_event(tx_key: str) -> str:
    return f"session/{escape_segment(tx_key)}/event"


def site_load(site_id: str) -> str:
    return f"site/{escape_segment(site_id)}/load"


def site_plan(site_id: str) -> str:
    return f"site/{escape_segment(site_id)}/plan"


# --- inbound --------------------------------------------------------------------------------------
def site_limit_set(site_id: str) -> str:
    return f"site/{escape_segment(site_id)}/limit/set"


def site_limit_set_filter(prefix: str) -> str:
    """The subscription covering every site's limit/set topic."""
    return full_topic(prefix, "site/+/limit/set")


def parse_site_limit_set(prefix: str, topic: str) -> str | None:
    """The (unescaped) site id of a `{prefix}/site/{site}/limit/set` topic, or None for any other topic."""
    p = normalize_prefix(prefix)
    if p:
        if not topic.startswith(p + "/"):
            return None
        topic = topic[len(p) + 1:]
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "site" or parts[2:] != ["limit", "set"] or not parts[1]:
        return None
    return unescape_segment(parts[1])
