"""PostgreSQL: a group commit's pending rows go in one statement, which is the whole transaction when nothing
ran before it (csms/store/pg_batch.py). Checked on the server: what is written, what one round trip sends,
what a failure leaves, and that the next transaction is a transaction again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from csms.domain.enums import ChargingState, ConnectorStatus, Measurand
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import MeterSample, SampledValue, Transaction
from csms.domain.records import StationSettings
from csms.store import pg_batch
from csms.store.db import migrate
from csms.store.repositories import Store, StoreSession

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
async def one_connection(pg_url: str):  # type: ignore[no-untyped-def]
    """A store on a pool of one connection (every session uses the same one), and what that connection sends:
    the statements SQLAlchemy runs, and asyncpg's own log (which has BEGIN and COMMIT)."""
    engine = create_async_engine(pg_url, pool_size=1, max_overflow=0)
    await migrate(engine)
    sent: list[str] = []

    @event.listens_for(engine.sync_engine, "connect")
    def _log(dbapi_conn: Any, _rec: Any) -> None:  # asyncpg's own log: BEGIN and COMMIT included
        dbapi_conn._connection.add_query_logger(lambda q: sent.append(q.query.split()[0].upper().rstrip(";")))

    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_a: sent.append(sql.split()[0].upper()))
    await engine.dispose()  # the migration's connection was opened before the listener
    store = Store(engine)
    async with store.session() as s:
        await s.save_station_settings("CP1", StationSettings())
        await s.save_transaction(_tx("CP1/T1"))
    yield store, sent
    await engine.dispose()


def _tx(key: str, energy_wh: float = 0.0) -> Transaction:
    station, charger_tx_id = key.split("/")
    return Transaction(key=key, station_id=StationId(station), charger_tx_id=charger_tx_id, evse=EvseRef(1, 1),  # type: ignore[arg-type]
                       id_token="TAG1", started_at=T0, energy_wh=energy_wh, charging_state=ChargingState.CHARGING)


def _sample(minute: int, wh: float) -> MeterSample:
    return MeterSample(T0 + timedelta(minutes=minute), (SampledValue(Measurand.ENERGY_IMPORT_WH, wh),))


async def _reading(s: StoreSession, minute: int, wh: float, seq: int) -> None:
    """What a charger's meter reading leaves for later: the transaction's UPDATE, its samples, its seqNo."""
    await s.save_transaction(_tx("CP1/T1", wh))
    await s.add_samples("CP1", 1, "CP1/T1", [_sample(minute, wh)])
    await s.record_seq("CP1/T1", seq, "Updated", T0 + timedelta(minutes=minute))
    await s.record_status("CP1", None, ConnectorStatus.OCCUPIED, T0 + timedelta(minutes=minute), None,
                          ChargingState.CHARGING)


async def test_the_adapter_internals_it_leans_on_are_there() -> None:
    assert pg_batch.available()


async def test_a_reading_is_one_statement_and_its_own_transaction(one_connection) -> None:  # type: ignore[no-untyped-def]
    store, sent = one_connection
    await store.write(lambda s: _reading(s, 1, 250.5, 1))  # the first asks asyncpg's type introspection too
    sent.clear()
    async with store.session() as s:
        await s.save_station_settings("CP2", StationSettings())
    assert sent.count("BEGIN") == 1 and sent[-1] == "COMMIT" and "INSERT" in sent, sent  # a transaction
    sent.clear()
    await store.write(lambda s: _reading(s, 2, 250.5, 2))
    assert sent == ["WITH"]  # no BEGIN, no COMMIT: one round trip
    async with store.session() as s:
        tx = await s.transaction("CP1/T1")
        samples = await s.samples("CP1/T1")
        history = await s.status_history("CP1")
        seen = await s.seq_seen("CP1/T1", 1) and await s.seq_seen("CP1/T1", 2)
    assert tx is not None and tx.energy_wh == 250.5 and tx.charging_state is ChargingState.CHARGING
    assert [(v.at, v.measurand, v.phase, v.value) for v in samples] == [
        (T0 + timedelta(minutes=m), Measurand.ENERGY_IMPORT_WH.value, None, 250.5) for m in (1, 2)]
    assert [(h.status, h.at) for h in history] == [
        (ConnectorStatus.OCCUPIED, T0 + timedelta(minutes=m)) for m in (2, 1)]  # newest first
    assert seen


async def test_after_a_statement_alone_a_session_is_one_transaction_again(one_connection) -> None:  # type: ignore[no-untyped-def]
    store, _ = one_connection
    await store.write(lambda s: _reading(s, 1, 100.0, 1))
    with pytest.raises(RuntimeError):
        async with store.session() as s:
            await s.save_station_settings("CP-ROLLED-BACK", StationSettings())
            await s.s.flush()  # the INSERT is on the server
            raise RuntimeError("the unit fails after its write")
    async with store.session() as s:
        assert "CP-ROLLED-BACK" not in {st.id for st in await s.stations()}


async def test_a_transaction_row_gone_meanwhile_is_written_again(one_connection) -> None:  # type: ignore[no-untyped-def]
    store, _ = one_connection
    async with store.session() as s:
        await s.s.execute(text("DELETE FROM transactions WHERE key = 'CP1/T1'"))
    await store.write(lambda s: _reading(s, 2, 400.0, 2))  # the store still takes the row for existing
    async with store.session() as s:
        tx = await s.transaction("CP1/T1")
    assert tx is not None and tx.energy_wh == 400.0


async def test_a_seq_applied_twice_fails_the_batch_as_a_whole_and_the_others_commit_alone(one_connection) -> None:  # type: ignore[no-untyped-def]
    store, _ = one_connection
    await store.write(lambda s: _reading(s, 1, 100.0, 1))
    async with store.session() as s:
        await s.save_transaction(_tx("CP1/T2"))

    async def other(s: StoreSession) -> None:
        await s.add_samples("CP1", 2, "CP1/T2", [_sample(3, 50.0)])
        await s.record_seq("CP1/T2", 1, "Updated", T0)

    commits = store.group_commit.commits
    results = await asyncio.gather(store.write(lambda s: s.record_seq("CP1/T1", 1, "Updated", T0)),  # again
                                   store.write(other), return_exceptions=True)
    assert isinstance(results[0], Exception) and results[1] is None
    assert store.group_commit.commits == commits + 1  # the batch failed; then one unit alone committed
    async with store.session() as s:
        assert [v.value for v in await s.samples("CP1/T2")] == [50.0]
        assert await s.seq_seen("CP1/T2", 1)
