"""Per-charger recording for tests and reports: profiles received, limit/power/energy over time,
OCPP frames sent/received, status changes and errors. Plain data; times are simulated UTC datetimes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class PowerSample:
    at: datetime
    evse_id: int
    limit_w: float
    power_w: float
    energy_wh: float          # the EVSE's energy register
    soc: float | None
    status: str


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    at: datetime
    evse_id: int
    action: str               # SetChargingProfile | RemoteStart | ClearChargingProfile
    accepted: bool
    payload: dict[str, Any]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MessageRecord:
    at: datetime
    direction: str            # "out" (charger -> CSMS) | "in"
    kind: str                 # CALL | CALLRESULT | CALLERROR
    action: str | None
    unique_id: str
    payload: Any


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    at: datetime
    where: str
    error: str


@dataclass(slots=True)
class SessionRecord:
    evse_id: int
    transaction_id: str
    id_token: str
    started_at: datetime
    stopped_at: datetime | None = None
    energy_wh: float = 0.0
    stop_reason: str | None = None


@dataclass(slots=True)
class Recorder:
    charger_id: str
    samples: list[PowerSample] = field(default_factory=list)
    profiles: list[ProfileRecord] = field(default_factory=list)
    messages: list[MessageRecord] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    statuses: list[tuple[datetime, int, str]] = field(default_factory=list)
    sessions: list[SessionRecord] = field(default_factory=list)
    keep_messages: bool = True
    #: Simulated seconds each outbound message waited in the outbox before it was sent (while online).
    outbox_delays_s: list[float] = field(default_factory=list)
    _pending: dict[str, str] = field(default_factory=dict)

    def sample(self, s: PowerSample) -> None:
        """Append a power sample unless it repeats the previous one for that EVSE."""
        for prev in reversed(self.samples):
            if prev.evse_id == s.evse_id:
                if (abs(prev.limit_w - s.limit_w) < 0.5 and abs(prev.power_w - s.power_w) < 0.5
                        and prev.status == s.status and (s.at - prev.at).total_seconds() < 60):
                    return
                break
        self.samples.append(s)

    def frame(self, at: datetime, direction: str, raw: str | bytes) -> None:
        """Record a raw OCPP-J frame (CALL: [2,id,action,payload], RESULT: [3,id,payload], ERROR: [4,...])."""
        try:
            msg = json.loads(raw)
            kind = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}[msg[0]]
            uid = str(msg[1])
        except (ValueError, KeyError, IndexError, TypeError):
            self.messages.append(MessageRecord(at, direction, "INVALID", None, "", raw))
            return
        if kind == "CALL":
            action, payload = msg[2], msg[3]
            self._pending[uid] = action
        else:
            action = self._pending.pop(uid, None)
            payload = msg[2] if kind == "CALLRESULT" else msg[2:]
            if kind == "CALLERROR":
                self.error(at, f"{direction} CALLERROR", f"{action}: {msg[2:]}")
        if self.keep_messages:
            self.messages.append(MessageRecord(at, direction, kind, action, uid, payload))

    def error(self, at: datetime, where: str, error: str) -> None:
        self.errors.append(ErrorRecord(at, where, error))

    # ------------------------------------------------------------------ queries
    def sent(self, action: str) -> list[MessageRecord]:
        """CALLs with ``action`` the charger sent."""
        return [m for m in self.messages if m.direction == "out" and m.kind == "CALL" and m.action == action]

    def received(self, action: str) -> list[MessageRecord]:
        """CALLs with ``action`` the charger received from the CSMS."""
        return [m for m in self.messages if m.direction == "in" and m.kind == "CALL" and m.action == action]

    def max_power_over_limit_w(self) -> float:
        """Largest ``power_w - limit_w`` over all samples (<= 0 means the limit was always respected)."""
        return max((s.power_w - s.limit_w for s in self.samples), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        def conv(o: Any) -> Any:
            if isinstance(o, datetime):
                return o.isoformat()
            if isinstance(o, dict):
                return {k: conv(v) for k, v in o.items()}
            if isinstance(o, list | tuple):
                return [conv(v) for v in o]
            return o

        return conv({
            "charger_id": self.charger_id,
            "samples": [asdict(s) for s in self.samples],
            "profiles": [asdict(p) for p in self.profiles],
            "messages": [asdict(m) for m in self.messages],
            "errors": [asdict(e) for e in self.errors],
            "statuses": [list(s) for s in self.statuses],
            "sessions": [asdict(s) for s in self.sessions],
        })
