"""Seed the database from config.yaml: chargers, groups and id tokens.

config.yaml seeds; the database holds what runs (the REST API can add and change records). A record
that came from the config is updated when the config changes; passwords are re-hashed only when they
changed, so a reload does not rotate salts needlessly.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC

from csms.config import Config
from csms.domain.enums import AuthorizationStatus, RegistrationStatus
from csms.domain.model import IdToken
from csms.domain.passwords import hash_password, verify_password

from .charging import StorePort

log = logging.getLogger("csms.provisioning")


async def seed_from_config(store: StorePort, cfg: Config) -> None:
    async with store.session() as s:
        for g in cfg.groups:
            await s.upsert_group(g.name, g.priority)
        for c in cfg.chargers:
            existing = await s.station(c.id)
            _, old_hash = await s.station_password_hash(c.id)
            fields = dict(
                site_id=c.site, max_current_a=c.max_current_a, max_power_w=c.max_power_w,
                min_current_a=c.min_current_a, phases=c.phases, voltage_v=c.voltage_v, from_config=True,
                security_profile=cfg.security_profile(c),
            )
            if c.password is None:
                fields["password_hash"] = None
            elif old_hash is None or not await asyncio.to_thread(verify_password, c.password, old_hash):
                fields["password_hash"] = await asyncio.to_thread(hash_password, c.password)
            if existing is None or (existing.registration is RegistrationStatus.PENDING
                                    and not await s.registration_by_operator(c.id)):
                # Listing a charger in the config accepts it, unless an operator set its state through the API
                # (a charger put back to Pending or Rejected stays so across starts and reloads).
                fields["registration"] = RegistrationStatus.ACCEPTED.value
            await s.upsert_station(c.id, **fields)
        for t in cfg.id_tokens:
            exp = t.expires_at
            if exp is not None and exp.tzinfo is None:
                exp = exp.replace(tzinfo=UTC)
            await s.upsert_id_token(IdToken(t.value, t.type, AuthorizationStatus(t.status), exp, t.group))
    log.info("seeded from config chargers=%d id_tokens=%d groups=%d", len(cfg.chargers), len(cfg.id_tokens),
             len(cfg.groups))
