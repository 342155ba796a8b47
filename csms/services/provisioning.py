"""Seed the database from config.yaml: chargers, groups and id tokens.

config.yaml seeds; the database holds what runs (the REST API can add and change records). A record
that came from the config is updated when the config changes; passwords are re-hashed only when they
changed, so a reload does not rotate salts needlessly.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC

from csms.config import Config
from csms.domain.enums import AuthorizationStatus, RegistrationStatus
from csms.domain.model import IdToken
from csms.domain.passwords import hash_password, verify_password
from csms.domain.records import StationSettings
from csms.domain.store_ports import StorePort

log = logging.getLogger("csms.provisioning")


async def seed_from_config(store: StorePort, cfg: Config) -> None:
    async with store.session() as s:
        for g in cfg.groups:
            await s.upsert_group(g.name, g.priority)
        for c in cfg.chargers:
            old = await s.station_settings(c.id)
            settings = replace(
                old or StationSettings(), site_id=c.site, max_current_a=c.max_current_a, max_power_w=c.max_power_w,
                min_current_a=c.min_current_a, phases=c.phases, voltage_v=c.voltage_v, from_config=True,
                security_profile=cfg.security_profile(c))
            old_hash = old.password_hash if old else None
            if c.password is None:
                settings = replace(settings, password_hash=None)
            elif old_hash is None or not await asyncio.to_thread(verify_password, c.password, old_hash):
                settings = replace(settings, password_hash=await asyncio.to_thread(hash_password, c.password))
            if old is None or (old.registration is RegistrationStatus.PENDING and not old.registration_by_operator):
                # Listing a charger in the config accepts it, unless an operator set its state through the API
                # (a charger put back to Pending or Rejected stays so across starts and reloads).
                settings = replace(settings, registration=RegistrationStatus.ACCEPTED)
            await s.save_station_settings(c.id, settings)
        for t in cfg.id_tokens:
            exp = t.expires_at
            if exp is not None and exp.tzinfo is None:
                exp = exp.replace(tzinfo=UTC)
            await s.upsert_id_token(IdToken(t.value, t.type, AuthorizationStatus(t.status), exp, t.group))
    log.info("seeded from config chargers=%d id_tokens=%d groups=%d", len(cfg.chargers), len(cfg.id_tokens),
             len(cfg.groups))
