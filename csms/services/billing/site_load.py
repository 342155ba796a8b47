"""Site-load meter: the site's charging power, folded into stored buckets, as utilisation for demand tiers.

Kept live from the power of every transaction of the site (TransactionChanged / MeterSampled); each closed
bucket is stored with the limit in force then (services.site_limits), so a later limit change does not
re-price the past. The open bucket is used live against the limit in force now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.config import Config
from csms.domain.clock import Clock
from csms.domain.records import SiteLoadBucket, StationPower
from csms.domain.store_ports import SiteRepo, StorePort
from ..site_limits import ExternalLimits, SiteLimits
from .state import SiteLoad, utilisation_spans


class StationInfo:
    """Site and maximum power of each station, read once from the store (no session on a hit)."""

    def __init__(self, store: StorePort) -> None:
        self.store = store
        self._info: dict[str, StationPower] = {}

    async def get(self, station_id: str, s: SiteRepo | None = None) -> StationPower | None:
        """None: an unknown station."""
        info = self._info.get(station_id)
        if info is not None:
            return info
        if s is None:
            async with self.store.session() as s2:
                info = await s2.station_power(station_id)
        else:
            info = await s.station_power(station_id)
        if info is not None:
            self._info[station_id] = info
        return info

    async def site_of(self, station_id: str) -> str | None:
        info = await self.get(station_id)
        return info.site_id if info is not None else None

    def forget(self) -> None:
        """After a config reload (a station may have moved site or changed its maximum)."""
        self._info.clear()


class SiteLoadMeter:
    def __init__(self, cfg: Config, store: StorePort, clock: Clock, infos: StationInfo, bucket_s: int,
                 external_limits: ExternalLimits) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.infos = infos
        self.bucket_s = bucket_s
        self.external_limits = external_limits
        self._loads: dict[str, SiteLoad] = {}

    async def set_power(self, station_id: str, evse_id: int, power_w: float | None, at: datetime) -> None:
        """An EVSE's power from `at` on (None: no news, nothing to do)."""
        if power_w is None:
            return
        site_id = await self.infos.site_of(station_id)
        if site_id is None:
            return
        load = self._loads.setdefault(site_id, SiteLoad(self.bucket_s))
        await self._persist(site_id, load.set_power((station_id, evse_id), power_w, min(at, self.clock.now())))

    async def cut(self, station_id: str, at: datetime) -> None:
        """A transaction at `station_id` ended at `at`: close its site's open bucket there (SiteLoad.cut)."""
        site_id = await self.infos.site_of(station_id)
        load = self._loads.get(site_id) if site_id is not None else None
        if site_id is not None and load is not None:
            await self._persist(site_id, load.cut(min(at, self.clock.now())))

    async def advance(self, now: datetime) -> None:
        """Close (and store) the buckets that ended by `now`: every site's in one write."""
        rows = [(site_id, r) for site_id, load in list(self._loads.items())
                for r in self._with_limits(site_id, load.advance(now))]
        await self._write(rows)

    async def _persist(self, site_id: str, closed: list[tuple[datetime, datetime, float]]) -> None:
        await self._write([(site_id, r) for r in self._with_limits(site_id, closed)])

    async def _write(self, rows: list[tuple[str, tuple[datetime, datetime, float, float | None]]]) -> None:
        """Through the charger path's group commit, not a transaction of its own: on SQLite a second writer
        contends for the database's single write lock, and at a bucket boundary every site's bucket closed
        at once, one write transaction each (91 at 10,000 chargers), while the group commit's writer backed
        off in SQLite's busy handler (a ~3 s wait of the message path in one run, issue 10)."""
        if not rows:
            return

        async def work(s: SiteRepo) -> None:
            for site_id, (start, end, mean, limit_w) in rows:
                await s.add_site_load(site_id, start, end, mean, limit_w)
        await self.store.write(work)

    def _with_limits(self, site_id: str, rows: list[tuple[datetime, datetime, float]]
                     ) -> list[tuple[datetime, datetime, float, float | None]]:
        """Load rows cut where the site's limit changes, each piece with the limit in force (W): the
        planner's limit (services.site_limits), with the limit schedule and the external override."""
        site = self.cfg.site(site_id)
        if site is None:
            return [(a, b, w, None) for a, b, w in rows]
        limits = SiteLimits.of(site, self.external_limits)
        return [(x, y, w, None if kw is None else kw * 1000.0)
                for a, b, w in rows for x, y, kw in limits.limit_kw_spans(a, b)]

    def utilisation(self, site_id: str | None, rows: list[SiteLoadBucket], until: datetime) -> list[Any]:
        """Stored buckets against the limit stored with them (the one in force then); the load not stored
        yet as it stands at `until` (SiteLoad.as_of) against the limit in force now. The live cost (`until` =
        now) and the invoice of a session that ends now therefore see the same utilisation."""
        if site_id is None:
            return []
        buckets = [(r.start, r.end, r.mean_power_w, r.limit_w) for r in rows]
        load = self._loads.get(site_id)
        tail = [r for r in (load.as_of(until) if load else []) if not buckets or r[0] >= buckets[-1][1]]
        buckets += self._with_limits(site_id, tail)
        return utilisation_spans(buckets)
