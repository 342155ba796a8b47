"""Station management for operators (the REST API): register, change, remove, accept.

Each change is one store transaction, then a committed fact on the bus (StationChanged), as the charger
path does (services.charging). A registration changed here also reaches the live connection at once, and
an accepted charger is asked to boot again (TriggerMessage(BootNotification)) instead of waiting out its
Pending interval.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import TypeVar

from csms.config import Config
from csms.domain import commands as cmd
from csms.domain.clock import Clock
from csms.domain.enums import RegistrationStatus
from csms.domain.errors import Conflict, InvalidRequest, UnknownStation
from csms.domain.events import StationChanged
from csms.domain.passwords import hash_password
from csms.domain.ports import ChargerGateway
from csms.domain.records import StationSettings
from csms.domain.store_ports import StorePort

from .bus import EventBus

log = logging.getLogger("csms.stations")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class NewStation:
    site_id: str = "default"
    password: str | None = None
    security_profile: int | None = None  # None: the site's, else the server's
    max_current_a: float = 32.0
    min_current_a: float = 6.0
    phases: int = 3
    voltage_v: float = 230.0


@dataclass(frozen=True, slots=True)
class StationChange:
    """What to change; None leaves a field as it is."""

    site_id: str | None = None
    password: str | None = None
    security_profile: int | None = None
    registration: RegistrationStatus | None = None
    max_current_a: float | None = None
    min_current_a: float | None = None
    phases: int | None = None


class StationService:
    def __init__(self, cfg: Config, store: StorePort, bus: EventBus, gateway: ChargerGateway, clock: Clock) -> None:
        self.cfg = cfg
        self.store = store
        self.bus = bus
        self.gateway = gateway
        self.clock = clock
        self._triggers: set[asyncio.Task[None]] = set()

    def reconfigure(self, cfg: Config) -> None:
        self.cfg = cfg

    async def create(self, station_id: str, new: NewStation) -> None:
        site = self.cfg.site(new.site_id)
        if site is None:
            raise InvalidRequest(f"site_id: unknown site {new.site_id!r}")
        profile = next(p for p in (new.security_profile, site.security_profile, self.cfg.server.security_profile)
                       if p is not None)
        self._check_profile(profile, has_password=bool(new.password))
        pw = await asyncio.to_thread(hash_password, new.password) if new.password else None
        settings = StationSettings(
            site_id=new.site_id, registration=RegistrationStatus.ACCEPTED, password_hash=pw,
            security_profile=profile, max_current_a=new.max_current_a, min_current_a=new.min_current_a,
            phases=new.phases, voltage_v=new.voltage_v)
        async with self.store.session() as s:
            if await s.station(station_id) is not None:
                raise Conflict(f"station {station_id!r} exists")
            await s.save_station_settings(station_id, settings)
        log.info("station created station=%s site=%s", station_id, new.site_id)
        self.bus.publish(StationChanged(station_id, "created", self.clock.now()))

    async def change(self, station_id: str, ch: StationChange) -> None:
        if ch.site_id is not None and self.cfg.site(ch.site_id) is None:
            raise InvalidRequest(f"site_id: unknown site {ch.site_id!r}")
        async with self.store.session() as s:
            old = await s.station_settings(station_id)
        if old is None:
            raise UnknownStation(station_id)
        if ch.security_profile is not None or ch.password is not None:
            profile = ch.security_profile if ch.security_profile is not None else old.security_profile
            self._check_profile(self.cfg.server.security_profile if profile is None else profile,
                                has_password=ch.password is not None or old.password_hash is not None)
        pw = await asyncio.to_thread(hash_password, ch.password) if ch.password is not None else None
        async with self.store.session() as s:
            current = await s.station_settings(station_id)  # as committed now, not before the hashing
            if current is None:
                raise UnknownStation(station_id)
            new = replace(
                current,
                site_id=_or(ch.site_id, current.site_id), max_current_a=_or(ch.max_current_a, current.max_current_a),
                min_current_a=_or(ch.min_current_a, current.min_current_a), phases=_or(ch.phases, current.phases),
                security_profile=_or(ch.security_profile, current.security_profile),
                password_hash=_or(pw, current.password_hash))
            if ch.registration is not None:
                # config.yaml reloads leave an operator's registration alone from now on
                new = replace(new, registration=ch.registration, registration_by_operator=True)
            if new != current:
                await s.save_station_settings(station_id, new)
        if new != current:
            self.bus.publish(StationChanged(station_id, "changed", self.clock.now()))
        if ch.registration is not None:
            self._registration_changed(station_id, ch.registration)

    async def delete(self, station_id: str) -> None:
        async with self.store.session() as s:
            if not await s.delete_station(station_id):
                raise UnknownStation(station_id)
        log.info("station deleted station=%s", station_id)
        self.bus.publish(StationChanged(station_id, "deleted", self.clock.now()))

    def _registration_changed(self, station_id: str, status: RegistrationStatus) -> None:
        """Apply it to the live connection; an accepted charger is asked to boot again now."""
        if not self.gateway.set_registration(station_id, status) or status is not RegistrationStatus.ACCEPTED:
            return

        async def trigger() -> None:
            res = await self.gateway.send(station_id, cmd.TriggerMessage("BootNotification"))
            log.info("accepted station=%s trigger BootNotification status=%s detail=%s", station_id, res.status,
                     res.detail)

        task = asyncio.get_running_loop().create_task(trigger())
        self._triggers.add(task)
        task.add_done_callback(self._triggers.discard)

    def _check_profile(self, profile: int, *, has_password: bool) -> None:
        """The rules config.yaml follows (csms.config): servable, and 1 and 2 need a password."""
        tls = self.cfg.server.tls
        if profile >= 2 and tls is None:
            raise InvalidRequest(f"security_profile: profile {profile} needs TLS (server.tls in config.yaml)")
        if profile == 3 and tls is not None and tls.ca_file is None:
            raise InvalidRequest("security_profile: profile 3 needs server.tls.ca_file in config.yaml")
        if profile in (1, 2) and not has_password:
            raise InvalidRequest(f"password: security profile {profile} needs a password (or security_profile 3 "
                                 f"with a client certificate, or 0 for none at all)")


def _or(value: V | None, current: V) -> V:
    return current if value is None else value
