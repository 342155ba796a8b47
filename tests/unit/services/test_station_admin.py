"""Operator writes go through services (StationService, TokenService, seed_from_config): the rules they keep
and the facts they publish. On the in-memory store (csms.store.memory, held to the SQL stores by
tests/contract); tests/integration/api drives the same services through the REST API on SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from csms.config import ChargerConfig, Config, GroupConfig, SiteConfig
from csms.domain import commands as cmd
from csms.domain.clock import FakeClock
from csms.domain.enums import RegistrationStatus
from csms.domain.errors import Conflict, InvalidRequest, UnknownIdToken, UnknownStation
from csms.domain.events import DomainEvent, GroupChanged, IdTokenChanged, StationChanged
from csms.domain.model import Capabilities, CommandResult, IdToken
from csms.domain.passwords import verify_password
from csms.services.bus import EventBus
from csms.services.provisioning import seed_from_config
from csms.services.stations import NewStation, StationChange, StationService
from csms.services.tokens import TokenService, UnknownGroup
from csms.store.memory import MemoryStore

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class Gateway:
    """The charger side: which registrations reached a live connection, which commands were sent."""

    def __init__(self, connected: set[str]) -> None:
        self.connected = connected
        self.registrations: list[tuple[str, RegistrationStatus]] = []
        self.sent: list[tuple[str, cmd.Command]] = []

    def is_connected(self, station_id: str) -> bool:
        return station_id in self.connected

    def set_registration(self, station_id: str, status: RegistrationStatus) -> bool:
        self.registrations.append((station_id, status))
        return station_id in self.connected

    def capabilities(self, station_id: str) -> Capabilities:
        return Capabilities()

    async def send(self, station_id: str, command: cmd.Command) -> CommandResult:
        self.sent.append((station_id, command))
        return CommandResult("Accepted")


def _core(connected: set[str] = frozenset()) -> tuple[MemoryStore, StationService, TokenService, list[DomainEvent],
                                                     Gateway, Config]:
    cfg = Config(sites=[SiteConfig(id="s1", grid_limit_kw=50.0), SiteConfig(id="s2", grid_limit_kw=50.0)],
                 chargers=[ChargerConfig(id="CFG-1", site="s1", password="config-password")],
                 groups=[GroupConfig(name="fleet", priority=2.0)])
    store, bus, clock, gw = MemoryStore(), EventBus(), FakeClock(T0), Gateway(set(connected))
    events: list[DomainEvent] = []
    bus.subscribe(events.append)
    return store, StationService(cfg, store, bus, gw, clock), TokenService(store, bus, clock), events, gw, cfg


async def test_create_checks_and_publishes() -> None:
    store, stations, _, events, _, _ = _core()
    with pytest.raises(InvalidRequest, match="unknown site"):
        await stations.create("A", NewStation(site_id="nowhere", password="p" * 12))
    with pytest.raises(InvalidRequest, match="needs a password"):  # profile 1, the server's default
        await stations.create("A", NewStation(site_id="s1"))
    await stations.create("A", NewStation(site_id="s1", password="p" * 12, max_current_a=16.0))
    with pytest.raises(Conflict):
        await stations.create("A", NewStation(site_id="s1", password="p" * 12))
    async with store.session() as s:
        st = await s.station_settings("A")
    assert st is not None and st.site_id == "s1" and st.max_current_a == 16.0 and st.security_profile == 1
    assert st.registration is RegistrationStatus.ACCEPTED and st.password_hash is not None
    assert verify_password("p" * 12, st.password_hash)
    assert events == [StationChanged("A", "created", T0)]


async def test_change_keeps_what_it_is_not_told_and_a_registration_survives_a_reseed() -> None:
    store, stations, _, events, gw, cfg = _core(connected={"CFG-1"})
    await seed_from_config(store, cfg)
    async with store.session() as s:
        seeded = await s.station_settings("CFG-1")
    assert seeded is not None and seeded.registration is RegistrationStatus.ACCEPTED and seeded.from_config
    with pytest.raises(UnknownStation):
        await stations.change("nope", StationChange(max_current_a=10.0))
    await stations.change("CFG-1", StationChange(registration=RegistrationStatus.PENDING, max_current_a=10.0))
    async with store.session() as s:
        changed = await s.station_settings("CFG-1")
    assert changed is not None and changed.max_current_a == 10.0 and changed.password_hash == seeded.password_hash
    assert changed.registration is RegistrationStatus.PENDING and changed.registration_by_operator
    assert gw.registrations == [("CFG-1", RegistrationStatus.PENDING)] and gw.sent == []
    await seed_from_config(store, cfg)  # a config reload: the operator's Pending stays, the config's current returns
    async with store.session() as s:
        reseeded = await s.station_settings("CFG-1")
    assert reseeded is not None and reseeded.registration is RegistrationStatus.PENDING
    assert reseeded.max_current_a == cfg.chargers[0].max_current_a
    await stations.change("CFG-1", StationChange(registration=RegistrationStatus.ACCEPTED))
    await asyncio.sleep(0)  # the TriggerMessage goes out as a task
    assert gw.sent == [("CFG-1", cmd.TriggerMessage("BootNotification"))]
    await stations.change("CFG-1", StationChange())  # nothing to change: nothing written, nothing published
    assert events == [StationChanged("CFG-1", "changed", T0)] * 2


async def test_delete() -> None:
    store, stations, _, events, _, _ = _core()
    await stations.create("A", NewStation(site_id="s1", password="p" * 12))
    await stations.delete("A")
    with pytest.raises(UnknownStation):
        await stations.delete("A")
    async with store.session() as s:
        assert await s.station("A") is None
    assert events[-1] == StationChanged("A", "deleted", T0)


async def test_tokens_and_groups() -> None:
    store, _, tokens, events, _, cfg = _core()
    await seed_from_config(store, cfg)
    with pytest.raises(InvalidRequest, match="unknown group"):
        await tokens.put_token(IdToken("T1", group="nope"))
    await tokens.put_token(IdToken("T1", group="fleet"))
    with pytest.raises(Conflict, match="used by id tokens T1"):
        await tokens.delete_group("fleet")
    await tokens.delete_token("T1")
    with pytest.raises(UnknownIdToken):
        await tokens.delete_token("T1")
    await tokens.put_group("staff", 0.5)
    await tokens.delete_group("fleet")
    with pytest.raises(UnknownGroup):
        await tokens.delete_group("fleet")
    async with store.session() as s:
        assert await s.groups() == {"staff": 0.5} and await s.id_tokens() == []
    assert events == [IdTokenChanged("T1", False, T0), IdTokenChanged("T1", True, T0), GroupChanged("staff", 0.5, T0),
                      GroupChanged("fleet", None, T0)]


async def test_billing_reads_a_station_again_once_an_operator_changed_it() -> None:
    """Billing caches each station's site and power; a station moved through the API used to keep billing
    on its old site until the next config reload."""
    from csms.billing_config import parse_billing
    from csms.services.billing import BillingService

    store, stations, _, _, _, cfg = _core()
    billing = BillingService(cfg, store, stations.bus, stations.clock, billing=parse_billing({}))
    await stations.create("A", NewStation(site_id="s1", password="p" * 12))
    assert await billing.infos.site_of("A") == "s1"
    await stations.change("A", StationChange(site_id="s2"))
    assert await billing.infos.site_of("A") == "s2"
