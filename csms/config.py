"""Schema of config.yaml and the only YAML reader.

Every section is a strict pydantic model (unknown keys are errors), so a typo in an operator's edit is
refused with a message that names the key instead of being silently ignored. Defaults live here and
nowhere else; config.yaml documents them.

Environment overrides (applied after the file is read):
- CSMS_DATABASE_URL          -> database.url
- CSMS_CHARGER_PASSWORD_<ID> -> chargers[id].password (ID upper-cased, '-' and '.' as '_')
- CSMS_API_KEY_<NAME>        -> api.keys[name].key
- CSMS_MQTT_URL              -> mqtt.url (and enables MQTT)
- CSMS_HOST                  -> server.host and api.host (python -m csms --host)
- CSMS_OCPP_PORT             -> server.port (--port)
- CSMS_API_PORT              -> api.port (--api-port)
- ${VAR} anywhere in a string value is replaced by the environment variable VAR (an unset one is an error).
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator


from csms.billing_config import BillingConfig  # noqa: E402 - after pydantic; it imports csms.config lazily
from csms.domain.daily_window import DailyWindow, time_of_day  # noqa: E402


class ConfigError(Exception):
    """A configuration that cannot be used. The message names the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


IDENT = r"^[^:/\s]{1,48}$"
#: Above this a "kW" value is taken for watts typed as kW (100000 kW = 100 MW is no charging site's connection).
MAX_SITE_KW = 20_000.0
#: Below this a charger's max_power_w is taken for kW typed as watts (no EVSE is limited to under 500 W).
MIN_CHARGER_POWER_W = 500.0


def _kw(value: float | None, key: str = "") -> float | None:
    """Refuse a kW value that is watts typed as kW, naming the likely intent."""
    if value is not None and value > MAX_SITE_KW:
        raise ValueError(f"{key}{value:g} kW is {value / 1000:g} MW, above any site connection "
                         f"({MAX_SITE_KW:g} kW); the value looks like watts: write {value / 1000:g} for "
                         f"{value / 1000:g} kW")
    return value


#: OCPP security profiles (docs/ocpp.md "Security profiles"). 0 is ours, not OCPP's: no authentication at all,
#: an explicit opt-out for tests and simulators on loopback.
SecurityProfile = Literal[0, 1, 2, 3]


class TlsConfig(_Strict):
    """The wss:// listener (security profiles 2 and 3), beside the plain ws:// one. PEM files."""

    host: str | None = None  # None: the same address as server.host
    port: int = Field(9443, ge=0, le=65535)
    cert_file: Path  # server certificate chain (leaf first)
    key_file: Path
    #: CA bundle that signs the chargers' client certificates (profile 3). Without it no client certificate
    #: is asked for, and profile 3 cannot be used.
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _files(self) -> "TlsConfig":
        for key in ("cert_file", "key_file", "ca_file"):
            path = getattr(self, key)
            if path is not None and not path.is_file():
                raise ValueError(f"{key}: no such file {str(path)!r}")
        return self


class OcppServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(9000, ge=0, le=65535)
    path_prefix: str = "/ocpp"
    #: Server preference: the first one the charger also offers is chosen.
    subprotocols: list[Literal["ocpp2.0.1", "ocpp1.6"]] = ["ocpp2.0.1", "ocpp1.6"]
    heartbeat_interval_s: int = Field(300, gt=0)
    #: BootNotification retry interval sent to a Pending charger (seconds).
    pending_interval_s: int = Field(30, gt=0)
    #: Unknown identities are registered and answered Pending until an operator accepts them.
    allow_unknown_chargers: bool = False
    #: Websocket keepalive: ping every interval; no pong within timeout marks the charger offline.
    ping_interval_s: float = Field(30, gt=0)
    ping_timeout_s: float = Field(30, gt=0)
    #: How long a CSMS-initiated CALL waits for its answer.
    response_timeout_s: float = Field(30, gt=0)
    max_message_bytes: int = Field(4 * 1024 * 1024, gt=1024)
    #: Default security profile of chargers whose own entry and site set none; also what unknown chargers
    #: (allow_unknown_chargers) must meet for the transport (TLS, client certificate).
    security_profile: SecurityProfile = 1
    tls: TlsConfig | None = None

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with '/'")
        return v.rstrip("/")


class ApiKeyConfig(_Strict):
    key: str = Field(min_length=16)
    role: Literal["admin", "operator", "viewer", "driver"] = "viewer"
    #: For role driver: the id tokens whose bookings and sessions this key may see.
    id_tokens: list[str] = []


class ApiConfig(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    keys: dict[str, ApiKeyConfig] = {}
    #: Request bodies above this are refused with 413 before any route reads them.
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    #: Browser origins allowed to call the API (CORS), e.g. ["https://ops.example.com"]; [] sends no CORS
    #: headers, so browsers keep other sites' pages out. "*" allows every origin (never with credentials).
    cors_origins: list[str] = []


class DatabaseConfig(_Strict):
    #: SQLAlchemy async URL. sqlite+aiosqlite:///path (relative to the working directory) or
    #: postgresql+asyncpg://user@host/db.
    url: str = "sqlite+aiosqlite:///csms.db"
    echo: bool = False


class ChargerConfig(_Strict):
    id: Annotated[str, Field(pattern=IDENT)]
    site: str = "default"
    #: HTTP Basic password (security profiles 1 and 2). Stored hashed; plain here or via the environment.
    password: str | None = None
    #: None: the site's, else server.security_profile.
    security_profile: SecurityProfile | None = None
    max_current_a: float = Field(32.0, gt=0)
    max_power_w: float | None = Field(None, gt=0)
    min_current_a: float = Field(6.0, ge=0)
    phases: Literal[1, 2, 3] = 3
    #: Grid phases the charger's L1, L2, L3 are wired to (phase rotation), e.g. [2, 3, 1].
    phase_rotation: list[Literal[1, 2, 3]] = [1, 2, 3]
    voltage_v: float = Field(230.0, gt=0)
    evse_count: int = Field(1, ge=1, le=32)

    @model_validator(mode="after")
    def _rotation(self) -> "ChargerConfig":
        if self.min_current_a > self.max_current_a:
            raise ValueError(f"min_current_a ({self.min_current_a:g} A) is above max_current_a "
                             f"({self.max_current_a:g} A)")
        if self.max_power_w is not None and self.max_power_w < MIN_CHARGER_POWER_W:
            raise ValueError(f"max_power_w: {self.max_power_w:g} W is less than any charger draws; the value "
                             f"looks like kW: write {self.max_power_w * 1000:g} for {self.max_power_w:g} kW")
        if len(set(self.phase_rotation)) != len(self.phase_rotation):
            raise ValueError("phase_rotation must not repeat a phase")
        if len(self.phase_rotation) < self.phases:
            raise ValueError("phase_rotation must name at least `phases` phases")
        return self


class LimitWindow(_Strict):
    """A daily window in the site's local time in which another limit applies (e.g. the evening peak).

    Read as a `DailyWindow` (csms/domain/daily_window.py): end < start runs past midnight, start == end
    (00:00-00:00) is all day."""

    start: time
    end: time
    limit_kw: float = Field(ge=0)

    _t = field_validator("start", "end", mode="before")(classmethod(lambda cls, v: time_of_day(v)))
    _w = field_validator("limit_kw")(classmethod(lambda cls, v: _kw(v)))

    @property
    def window(self) -> DailyWindow:
        return DailyWindow(self.start, self.end)


class BaseLoadConfig(_Strict):
    """Other consumption on the same grid connection: constant, or per daily window."""

    constant_kw: float = Field(0.0, ge=0)
    windows: list[LimitWindow] = []


class CircuitConfig(_Strict):
    name: str = Field(min_length=1)
    parent: str | None = None
    max_current_a: float | None = Field(None, gt=0)
    max_power_kw: float | None = Field(None, gt=0)
    chargers: list[str] = []

    _w = field_validator("max_power_kw")(classmethod(lambda cls, v: _kw(v)))


class SitePlanningConfig(_Strict):
    """This site's planning grid and solver budget, where they differ from smart_charging's (None: those).

    A large site needs a coarser plan: on this machine a 1,000-EVSE site at 96 slots of 15 min takes 20 s to
    build and solve cold and 5-20 s per re-plan, so every plan ended at the time limit and fell back to equal
    shares; at 48 slots of 30 min it takes ~8 s cold and ~1-2 s per re-plan (bench/bench_plan.py --sizes 1000
    --slots 48)."""

    #: Slot length; a multiple of smart_charging.slot_min, so this site's grid boundaries are timer ticks.
    slot_min: int | None = Field(None, ge=1, le=240)
    horizon_h: float | None = Field(None, gt=0, le=168)
    solver_time_limit_s: float | None = Field(None, gt=0)


class SiteConfig(_Strict):
    id: Annotated[str, Field(pattern=IDENT)]
    #: Grid connection limit, in kW (sum over phases) and/or amps per phase.
    grid_limit_kw: float | None = Field(None, gt=0)
    grid_limit_a: float | None = Field(None, gt=0)
    voltage_v: float = Field(230.0, gt=0)
    timezone: str = "UTC"
    limit_schedule: list[LimitWindow] = []
    base_load: BaseLoadConfig = BaseLoadConfig()
    circuits: list[CircuitConfig] = []
    #: Energy assumed for sessions whose EV and driver state none (their departure stays unknown, see
    #: smart_charging.learned_dwell).
    default_energy_kwh: float = Field(20.0, gt=0)
    #: Security profile of this site's chargers that set none (None: server.security_profile).
    security_profile: SecurityProfile | None = None
    #: Planning grid and solver budget of this site (None each: smart_charging's).
    planning: SitePlanningConfig = SitePlanningConfig()

    _w = field_validator("grid_limit_kw")(classmethod(lambda cls, v: _kw(v)))

    @model_validator(mode="after")
    def _limit(self) -> "SiteConfig":
        if self.grid_limit_kw is None and self.grid_limit_a is None:
            raise ValueError("set grid_limit_kw or grid_limit_a")
        return self


class GroupConfig(_Strict):
    name: str = Field(min_length=1)
    #: Weight of this group's energy in the load balancer: higher gets energy first.
    priority: float = Field(1.0, gt=0)


class IdTokenConfig(_Strict):
    value: str = Field(min_length=1, max_length=36)
    type: str = "ISO14443"
    status: Literal["Accepted", "Blocked", "Expired", "Invalid"] = "Accepted"
    expires_at: datetime | None = None
    group: str | None = None


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: json: one JSON object per line; text: key=value pairs.
    format: Literal["json", "text"] = "text"
    #: Log every OCPP frame (at DEBUG).
    frames: bool = False


class SmartChargingConfig(_Strict):
    enabled: bool = True
    horizon_h: float = Field(24.0, gt=0, le=168)
    slot_min: int = Field(15, ge=1, le=60)
    #: Bursts of events (arrivals, meter values) within this window cause one re-plan.
    debounce_s: float = Field(1.0, ge=0)
    solver_time_limit_s: float = Field(5.0, gt=0)
    #: Plans run in this many worker processes, each site pinned to one (its warm model lives there), so
    #: the solver never holds the GIL of the process that answers chargers: 1 is what docs/performance.md
    #: measured best on 2 cores (config.yaml ships it). 0 (the default for now): in a thread of the CSMS
    #: process, as before; two timing-sensitive e2e tests still race with the worker (docs/performance.md).
    #: Read at start.
    planner_processes: int = Field(0, ge=0, le=64)
    #: At most this many EVSEs' planner models stay hot (a live HiGHS instance, ~160-210 KB per EVSE at 96
    #: slots) between plans, per worker process (or in the solver thread); the sites planned least recently go
    #: dormant first (below). A dormant site re-plans only ~7 % slower than a hot one (a 100-EVSE site: 48 vs
    #: 45 ms; 1,000 EVSEs at 48 slots: 413 vs 396 ms), so a small bound is enough. The site being planned
    #: stays hot whatever its size. 0: no bound. Read at start.
    planner_warm_evses: int = Field(500, ge=0)
    #: At most this many EVSEs' models stay dormant (the LP and its bases only, ~25-35 KB per EVSE at 96
    #: slots; re-planned from there in ~15 ms at 100 EVSEs), per worker; beyond it the least recently planned
    #: are given up and planned cold next time (a 100-EVSE site: 0.5-1.5 s). 20,000 bound a worker's dormant
    #: models near 0.6 GB. 0: no bound. Read at start (docs/performance.md, "A warm site's memory").
    planner_dormant_evses: int = Field(20_000, ge=0)
    #: Re-plan at least this often (clock seconds), besides every event and every slot boundary. Slot 0 is
    #: planned only this far, so a car that can finish sooner is offered the current that finishes it.
    replan_interval_s: float = Field(300.0, ge=10)
    #: The plan is lexicographic (docs/scheduling.md): the most priority-weighted energy first, then a lower
    #: site peak, then price, then earliness. Weights order the terms within the second stage.
    delivered_per_kwh: float = Field(100.0, ge=0)
    early_per_kwh: float = Field(0.05, ge=0)
    cost_weight: float = Field(1.0, ge=0)
    #: Peak shaving (valley filling) above the highest site load reached this month; 0 turns it off.
    peak_per_kw: float = Field(10.0, ge=0)
    #: false: no shaving below the site's own limit (with a binding limit a lower peak only moves energy
    #: later, and cars arriving meanwhile then compete for it). true: shave below it too.
    shave_below_limit: bool = False
    #: A session whose departure is unknown is ranked (least laxity first) as having this much slack.
    unknown_slack_h: float = Field(1.0, ge=0)
    #: A stated departure is planned this much earlier: this share of the time left, at most the cap
    #: (drivers leave early; the energy planned in the margin would be lost with them).
    departure_margin_pct: float = Field(15.0, ge=0, le=50)
    departure_margin_max_min: float = Field(30.0, ge=0)
    #: true: ... and at most what the site's drivers needed (smart.margin): this quantile of how much earlier
    #: than stated they left over the last `departure_margin_days` days, once `departure_margin_min_sessions`
    #: sessions stated a departure; where drivers keep their word the margin shrinks to 0. auto (default): so
    #: only where the plan has a forecast of the cars to come (a site that shaves its peak, with history;
    #: plan_input.margin_to_use); elsewhere the configured margin's early finish hedges against cars nobody
    #: foresaw. Measured on real sessions with departures kept (acnportal, docs/acn_benchmark.md "The official
    #: weeks' Monday"): learned lowers the uncapped peak on 18 of 22 Caltech/JPL weeks (median 1.100 -> 1.075 x
    #: the offline minimum), while under a binding limit the configured margin serves more drivers in full
    #: (Caltech week at 25 kW: 45.9 % with it, 43.8 % learned). false: always the configured margin.
    departure_margin_learned: bool | Literal["auto"] = "auto"
    #: A booked car's guaranteed energy is planned to be in by the last slot boundary at least this long
    #: before the booking's end (plan_input.booked_deadline), not squeezed into its last minutes, where any
    #: delay (a profile in flight, a re-plan, a meter interval) would leave the driver short of the guarantee.
    booking_margin_min: float = Field(5.0, ge=0)
    departure_margin_quantile: float = Field(0.9, ge=0, le=1)
    departure_margin_days: int = Field(28, ge=1)
    departure_margin_min_sessions: int = Field(20, ge=1)
    #: Equal delivered fractions (concave reward, and max-min). Off by default: with drivers' estimated
    #: departures it cost 2-5 points of energy on real sessions (docs/scheduling.md).
    fairness_per_kwh: float = Field(0.0, ge=0)
    fairness_min_fraction: float = Field(0.0, ge=0)
    #: Shares of the first `share_slots` slots (0: off), least laxity first with equal drivers splitting;
    #: current within its share earns `share_premium` x more early reward: equal drivers split a binding
    #: limit instead of one taking it all. A session with an unknown departure gets its share first.
    share_slots: int = Field(8, ge=0)
    share_premium: float = Field(3.0, ge=0)
    #: Upper bound (A per phase) on the TxDefaultProfile of idle EVSEs. Their TxDefault is their safe share
    #: of the site: what base load, sessions and other EVSEs leave, split among the idle EVSEs, between the
    #: EVSE's min current and its max (0 only if the min does not fit); a car that plugs in charges at once.
    #: None: no bound beyond the EVSE's max; 0: idle EVSEs get 0 A and a new car waits for its own profile
    #: (about a second).
    default_profile_current_a: float | None = Field(None, ge=0)
    #: true: the plan keeps each idle EVSE's min current free ahead of the cars that are here (wherever base
    #: load leaves room for all of them), so a car plugging in anywhere draws at least the min at once.
    #: false (default): idle EVSEs share only what the cars here leave; on a site the cars fill, their
    #: TxDefault is 0 A and a new car waits for its own profile (its arrival re-plans within about a second).
    #: Measured (scenario replay-caltech-week, 54 EVSEs on 60 kW, first 36 h): with the reserve, 20-34 idle
    #: EVSEs held 6 A each, up to 47 kW, while cars waited: 42 % of the deliverable energy delivered, 25 % of
    #: drivers satisfied; without it 95 % and 66 %. For chargers or cars that cannot wait a second at 0 A.
    idle_reserve: bool = False
    #: A session without a stated departure (EV, driver, booking) gets one learned from its driver's
    #: history: start + this quantile of the token's past session durations (low = risk-averse: most drivers
    #: stay longer). Off, or with too few past sessions, the departure is unknown and the plan charges the
    #: car as early as limits and fairness allow.
    learned_dwell: bool = True
    learned_dwell_quantile: float = Field(0.2, gt=0, lt=1)
    learned_dwell_min_sessions: int = Field(5, ge=1)
    #: The plan is told which cars usually arrive in the coming hours: the site's sessions of its last
    #: `arrival_forecast_days` days of the same kind (weekday or weekend), grouped by arrival hour, each group
    #: its mean energy and number of cars per day and its energy-weighted mean stay
    #: (csms.scheduling.forecast); a day with fewer sessions than `arrival_forecast_quiet_fraction` × the
    #: median day's (a holiday, a day off) is left out. The plan schedules them as flexible demand of a tiny
    #: priority (csms.scheduling.expected). It only shapes peak shaving below the site's limit (cars here
    #: charge sooner when many are expected later), so it is used only with `shave_below_limit`; it never
    #: limits anyone and never takes energy from a car that is here. 0 turns it off; with history on fewer
    #: than `arrival_forecast_min_days` such days there is no forecast.
    #: 28 days rather than 14 (2026-12-07): a longer mean follows a busy or quiet week less and averages out
    #: the odd day; with quiet days left out, lower peak on 14 of 20 site-weeks of ACN sessions uncapped
    #: (docs/acn_benchmark.md, "Quiet days and a longer history").
    arrival_forecast_days: int = Field(28, ge=0, le=90)
    arrival_forecast_min_days: int = Field(3, ge=1)
    arrival_forecast_quiet_fraction: float = Field(0.5, ge=0, lt=1)
    #: Where the forecast would apply but there is none yet (a new site, fewer than
    #: `arrival_forecast_min_days` days of history), the plan keeps this share of the peak already reached
    #: free in the hours ahead for cars it cannot foresee, so the cars that are here charge sooner
    #: (scheduling.network._reserve_kw). Peak term only: never a limit, never a car's energy. First month
    #: of ACN sessions with no history, uncapped, departures known, with the idle EVSEs' share below:
    #: Caltech 1.144 -> 1.071 x, JPL 1.248 -> 1.072 x the offline minimum peak (docs/acn_benchmark.md,
    #: "A new site"). 0 = off.
    peak_reserve_without_forecast_pct: float = Field(10.0, ge=0, lt=100)
    #: ... plus this share of the power of each idle EVSE (one a car can still plug into): large in the
    #: morning, when most cars are still to come and the peak reached is small; it fades as the site fills.
    peak_reserve_idle_evse_pct: float = Field(3.0, ge=0, le=100)

    def for_site(self, site: "SiteConfig") -> "SmartChargingConfig":
        """These settings with the site's own planning grid and solver budget (SiteConfig.planning)."""
        p = site.planning
        over = {k: v for k, v in (("slot_min", p.slot_min), ("horizon_h", p.horizon_h),
                                  ("solver_time_limit_s", p.solver_time_limit_s)) if v is not None}
        return self.model_copy(update=over) if over else self


class BookingsConfig(_Strict):
    #: ReserveNow is sent this many minutes before a booking starts.
    reserve_lead_min: float = Field(15.0, ge=0)
    #: A booking whose driver has not started charging this long after its start expires (no-show).
    no_show_grace_min: float = Field(15.0, ge=0)
    max_days_ahead: int = Field(30, ge=1)
    min_duration_min: int = Field(15, ge=1)
    #: How often (clock seconds) bookings are checked for lead time and no-shows.
    check_interval_s: float = Field(30.0, gt=0)


class MqttConfig(_Strict):
    enabled: bool = False
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "csms"
    client_id: str = "csms"
    buffer_messages: int = Field(10000, ge=1)


class CertificatesConfig(_Strict):
    """Certificate management (docs/ocpp.md "Certificates"): the CA that signs chargers' own certificates
    (SignCertificate -> CertificateSigned), and the PKI/OCSP backend for ISO 15118 certificates."""

    #: The operator's CA (PEM; the key unencrypted). Both or neither. Neither: a local CA generated on first
    #: use in `local_ca_dir` (the embedded default). Point server.tls.ca_file at the same CA certificate so
    #: that chargers can connect with what it signs (security profile 3).
    ca_cert_file: Path | None = None
    ca_key_file: Path | None = None
    local_ca_dir: Path = Path("csms-ca")
    #: Lifetime of a signed charger certificate (capped at the CA's own).
    validity_days: int = Field(365, ge=1, le=3650)
    #: "package.module:factory" of a PKI/OCSP backend (csms.domain.certificates.PkiBackend), called once at start
    #: without arguments. None: ISO 15118 certificate checks (Authorize with certificate data,
    #: GetCertificateStatus, Get15118EVCertificate) are answered CALLERROR NotSupported.
    pki_backend: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

    @model_validator(mode="after")
    def _pair(self) -> "CertificatesConfig":
        if (self.ca_cert_file is None) != (self.ca_key_file is None):
            raise ValueError("set both ca_cert_file and ca_key_file, or neither (a local CA is then generated)")
        for key in ("ca_cert_file", "ca_key_file"):
            path = getattr(self, key)
            if path is not None and not path.is_file():
                raise ValueError(f"{key}: no such file {str(path)!r}")
        return self


class ClockConfig(_Strict):
    """Simulation only: run the CSMS on an accelerated clock shared with a simulated fleet."""

    speedup: float = Field(1.0, gt=0)
    start: datetime | None = None


class Config(_Strict):
    server: OcppServerConfig = OcppServerConfig()
    api: ApiConfig = ApiConfig()
    database: DatabaseConfig = DatabaseConfig()
    chargers: list[ChargerConfig] = []
    sites: list[SiteConfig] = [SiteConfig(id="default", grid_limit_kw=100.0)]
    groups: list[GroupConfig] = []
    id_tokens: list[IdTokenConfig] = []
    smart_charging: SmartChargingConfig = SmartChargingConfig()
    bookings: BookingsConfig = BookingsConfig()
    mqtt: MqttConfig = MqttConfig()
    logging: LoggingConfig = LoggingConfig()
    certificates: CertificatesConfig = CertificatesConfig()
    clock: ClockConfig = ClockConfig()
    #: Tariffs and the overstay policy (schema in csms/billing_config.py; see docs/billing.md).
    billing: BillingConfig = BillingConfig()

    @model_validator(mode="after")
    def _references(self) -> "Config":
        if self.api.enabled and self.api.port != 0 and self.api.port == self.server.port:
            raise ValueError(f"api.port: {self.api.port} is also server.port (the OCPP endpoint); give the REST "
                             f"API its own port (default 8000)")
        _unique("chargers", [c.id for c in self.chargers])
        _unique("sites", [s.id for s in self.sites])
        _unique("groups", [g.name for g in self.groups])
        _unique("id_tokens", [t.value for t in self.id_tokens])
        sites = {s.id for s in self.sites}
        groups = {g.name for g in self.groups}
        charger_ids = {c.id for c in self.chargers}
        for i, c in enumerate(self.chargers):
            if c.site not in sites:
                raise ValueError(f"chargers[{i}].site: unknown site {c.site!r} (known: {sorted(sites)})")
        self._check_security()
        for i, t in enumerate(self.id_tokens):
            if t.group is not None and t.group not in groups:
                raise ValueError(f"id_tokens[{i}].group: unknown group {t.group!r}")
        for si, s in enumerate(self.sites):
            slot_min = s.planning.slot_min
            if slot_min is not None and slot_min % self.smart_charging.slot_min:
                raise ValueError(f"sites[{si}].planning.slot_min: {slot_min} is not a multiple of "
                                 f"smart_charging.slot_min ({self.smart_charging.slot_min}): the re-plan timer "
                                 f"ticks on that grid")
            names = [c.name for c in s.circuits]
            _unique(f"sites[{si}].circuits", names)
            for ci, c in enumerate(s.circuits):
                key = f"sites[{si}].circuits[{ci}]"
                if c.parent is not None and c.parent not in names:
                    raise ValueError(f"{key}.parent: unknown circuit {c.parent!r}")
                for ch in c.chargers:
                    if ch not in charger_ids:
                        raise ValueError(f"{key}.chargers: unknown charger {ch!r}")
            _no_cycles(si, s.circuits)
        bad = self.billing.unknown_groups(groups)
        if bad:
            raise ValueError(f"{bad[0]}: unknown group")
        return self

    def _check_security(self) -> None:
        """Every profile in use must be servable (passwords: `require_credentials`)."""
        tls = self.server.tls
        _servable("server.security_profile", self.server.security_profile, tls)
        for i, s in enumerate(self.sites):
            if s.security_profile is not None:
                _servable(f"sites[{i}].security_profile", s.security_profile, tls)
        for i, c in enumerate(self.chargers):
            _servable(f"chargers[{i}].security_profile", self.security_profile(c), tls)

    def security_profile(self, charger: ChargerConfig) -> int:
        """The charger's own profile, else its site's, else the server default."""
        if charger.security_profile is not None:
            return charger.security_profile
        site = self.site(charger.site)
        if site is not None and site.security_profile is not None:
            return site.security_profile
        return self.server.security_profile

    #: id -> entry of `sites` / `chargers`, built on first lookup. A linear scan per lookup was 8-15 % of the
    #: CSMS's CPU with 3,000-10,000 chargers and smart charging on (py-spy, issue 10). Keyed on the list
    #: object and its length: `model_copy(update=...)` copies private attributes but brings a new list.
    _by_id: dict[str, tuple[list[Any], dict[str, Any]]] = PrivateAttr(default_factory=dict)

    def _index(self, name: str, items: list[Any]) -> dict[str, Any]:
        held = self._by_id.get(name)
        if held is None or held[0] is not items or len(held[1]) != len(items):
            held = (items, {x.id: x for x in items})
            self._by_id[name] = held
        return held[1]

    def site(self, site_id: str) -> SiteConfig | None:
        return self._index("sites", self.sites).get(site_id)

    def charger(self, charger_id: str) -> ChargerConfig | None:
        return self._index("chargers", self.chargers).get(charger_id)


def require_credentials(cfg: Config, source: str = "config") -> None:
    """Secure by default: a charger whose profile is 1 or 2 must have a password. Checked when a configuration
    file is loaded (load_config) and when the CSMS starts; a Config built for a unit test is not a CSMS.

    Raises ConfigError naming the key."""
    for i, c in enumerate(cfg.chargers):
        p = cfg.security_profile(c)
        if p in (1, 2) and not c.password:
            raise ConfigError(
                f"{source}: chargers[{i}].password: security profile {p} needs a password (set one, use a "
                f"client certificate with security_profile: 3, or set security_profile: 0 to let {c.id!r} "
                f"connect without any authentication)")


def _servable(key: str, profile: int, tls: TlsConfig | None) -> None:
    if profile >= 2 and tls is None:
        raise ValueError(f"{key}: security profile {profile} needs TLS: configure server.tls")
    if profile == 3 and tls is not None and tls.ca_file is None:
        raise ValueError(f"{key}: security profile 3 needs server.tls.ca_file (the CA of the client certificates)")


def _unique(key: str, values: list[str]) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{key}: duplicate {v!r}")
        seen.add(v)


def _no_cycles(site_index: int, circuits: list[CircuitConfig]) -> None:
    parent = {c.name: c.parent for c in circuits}
    for name in parent:
        seen = {name}
        p = parent[name]
        while p is not None:
            if p in seen:
                raise ValueError(f"sites[{site_index}].circuits: cycle through {p!r}")
            seen.add(p)
            p = parent.get(p)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(node: Any, path: str, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, f"{path}.{k}" if path else str(k), env) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, f"{path}[{i}]", env) for i, v in enumerate(node)]
    if isinstance(node, str):
        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                raise ConfigError(f"{path}: environment variable {m.group(1)} is not set")
            return env[m.group(1)]
        return _VAR.sub(sub, node)
    return node


def _env_key(ident: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", ident).upper()


def _apply_env(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    if "CSMS_DATABASE_URL" in env:
        raw.setdefault("database", {})["url"] = env["CSMS_DATABASE_URL"]
    if "CSMS_MQTT_URL" in env:
        raw.setdefault("mqtt", {}).update(url=env["CSMS_MQTT_URL"], enabled=True)
    if env.get("CSMS_HOST"):
        raw.setdefault("server", {})["host"] = env["CSMS_HOST"]
        raw.setdefault("api", {})["host"] = env["CSMS_HOST"]
    for var, section in (("CSMS_OCPP_PORT", "server"), ("CSMS_API_PORT", "api")):
        if env.get(var):
            raw.setdefault(section, {})["port"] = env[var]   # a string; the schema reads it as a number
    for c in raw.get("chargers") or []:
        if isinstance(c, dict) and "id" in c:
            pw = env.get(f"CSMS_CHARGER_PASSWORD_{_env_key(str(c['id']))}")
            if pw:
                c["password"] = pw
    keys = (raw.get("api") or {}).get("keys") or {}
    for name, k in keys.items():
        v = env.get(f"CSMS_API_KEY_{_env_key(str(name))}")
        if v and isinstance(k, dict):
            k["key"] = v
    return raw


def format_validation_error(err: ValidationError, model: type[BaseModel] | None = None) -> str:
    """'chargers[2].max_current_a: Input should be greater than 0' - one line per problem. With the model
    the input was validated against, an unknown key names the closest valid one."""
    lines = []
    for e in err.errors():
        loc = ""
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden" and model is not None:
            msg = _unknown_key(model, e["loc"])
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(lines)


def _unknown_key(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    valid = _keys_at(model, loc[:-1])
    if valid is None:
        return "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key (valid keys: {', '.join(sorted(valid))})"


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The field names of the model found at `loc` (list indexes and dict keys walked through)."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp, part)
        if tp is None:
            return None
    tp = _unwrap(tp, None)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return None


def _unwrap(tp: Any, part: Any) -> Any:
    """One step down the annotation `tp` along `part` (None: just strip Optional/Annotated/containers)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0], part)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(tp) if a is not type(None)]
        return _unwrap(models[0], part) if len(models) == 1 else None
    if origin is list:
        return typing.get_args(tp)[0] if isinstance(part, int) else (tp if part is None else None)
    if origin is dict:
        return typing.get_args(tp)[1] if part is not None else tp
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if part is None:
            return tp
        f = tp.model_fields.get(str(part))
        return None if f is None else f.annotation
    return None


class _DuplicateKey(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML where a key repeated in one mapping is an error: plain YAML keeps the last one silently, so a
    section pasted twice would lose the first half of an operator's edit."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(f"line {line}: {key}: duplicate key (first at line {seen[key]}); "
                                    f"YAML would silently keep only the last one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_config(text: str, env: dict[str, str] | None = None, source: str = "config") -> Config:
    """Parse and validate YAML text. Raises ConfigError naming the key and the problem."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as e:
        raise ConfigError(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    env = dict(os.environ) if env is None else env
    raw = _apply_env(_expand(raw, "", env), env)
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{source}: {format_validation_error(e, Config)}") from None


def load_config(path: Path, env: dict[str, str] | None = None) -> Config:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    cfg = parse_config(text, env, source=str(path))
    require_credentials(cfg, str(path))
    return cfg
