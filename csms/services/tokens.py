"""Id tokens and driver groups for operators (the REST API; config.yaml seeds them: services.provisioning).

Each change is one store transaction, then a committed fact on the bus (IdTokenChanged, GroupChanged).
"""

from __future__ import annotations

import logging

from csms.domain.clock import Clock
from csms.domain.errors import Conflict, InvalidRequest, UnknownIdToken
from csms.domain.events import GroupChanged, IdTokenChanged
from csms.domain.model import IdToken
from csms.domain.store_ports import StorePort

from .bus import EventBus

log = logging.getLogger("csms.tokens")


class UnknownGroup(LookupError):
    pass


class TokenService:
    def __init__(self, store: StorePort, bus: EventBus, clock: Clock) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock

    async def put_token(self, t: IdToken) -> None:
        """Create or replace; its group must exist."""
        async with self.store.session() as s:
            if t.group is not None and t.group not in await s.groups():
                raise InvalidRequest(f"group: unknown group {t.group!r}")
            await s.upsert_id_token(t)
        self.bus.publish(IdTokenChanged(t.value, False, self.clock.now()))

    async def delete_token(self, value: str) -> None:
        async with self.store.session() as s:
            if not await s.delete_id_token(value):
                raise UnknownIdToken(value)
        self.bus.publish(IdTokenChanged(value, True, self.clock.now()))

    async def put_group(self, name: str, priority: float) -> None:
        async with self.store.session() as s:
            await s.upsert_group(name, priority)
        self.bus.publish(GroupChanged(name, priority, self.clock.now()))

    async def delete_group(self, name: str) -> None:
        """Refused while id tokens name it (they would point at nothing)."""
        async with self.store.session() as s:
            users = [t.value for t in await s.id_tokens() if t.group == name]
            if users:
                raise Conflict(f"group {name!r} is used by id tokens {', '.join(users[:5])}"
                               f"{' ...' if len(users) > 5 else ''}: move them to another group first")
            if not await s.delete_group(name):
                raise UnknownGroup(name)
        self.bus.publish(GroupChanged(name, None, self.clock.now()))
