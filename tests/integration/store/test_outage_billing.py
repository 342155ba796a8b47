"""Exactly-once billing through a real database outage: PostgreSQL behind a TCP relay (test_outage.Relay) that
the test cuts while six 1.6 chargers end their transactions at once.

The cut comes as soon as the first StopTransaction is answered, so the outage falls among the ends: some are
committed and their events reach billing while the database is gone (billing skips them and reconciliation
repairs them, or its tick finishes them), the others are refused with InternalError and the chargers retry
them after the restore, as OCPP 1.6 chargers retry transaction messages. Afterwards every ended transaction
has exactly one invoice and the gap (`GET /billing/status`, `csms_billing_uninvoiced_ended`) is back to 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from csms.app import CsmsApp
from csms.config import parse_config

from .test_outage import Relay, answer

pytestmark = pytest.mark.postgres
CHARGERS = [f"CP-{i}" for i in range(1, 7)]
TAG = "TAG-1"


def call(uid: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, uid, action, payload])


def iso(minutes_ago: float = 0) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


def status(uid: str, value: str) -> str:
    return call(uid, "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": value})


async def start(ws: ClientConnection, cp: str) -> int:
    assert (await answer(ws, status(f"{cp}-prep", "Preparing")))[0] == 3
    res = await answer(ws, call(f"{cp}-start", "StartTransaction",
                                {"connectorId": 1, "idTag": TAG, "meterStart": 1000, "timestamp": iso(60)}))
    tx_id = res[2]["transactionId"]  # type: ignore[index]
    assert (await answer(ws, status(f"{cp}-chg", "Charging")))[0] == 3
    mv = {"connectorId": 1, "transactionId": tx_id, "meterValue": [{"timestamp": iso(30), "sampledValue": [
        {"value": "1500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]}
    assert (await answer(ws, call(f"{cp}-mv", "MeterValues", mv)))[0] == 3
    return int(tx_id)


def stop(cp: str, tx_id: int, attempt: int) -> str:
    return call(f"{cp}-stop-{attempt}", "StopTransaction",
                {"transactionId": tx_id, "idTag": TAG, "meterStop": 3000, "timestamp": iso(), "reason": "Local"})


async def test_sessions_ending_through_a_database_outage_are_invoiced_exactly_once(
        pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    relay, url = await Relay.open(pg_url)
    cfg = parse_config(f"""
server: {{port: 0, security_profile: 0}}
api: {{port: 0}}
database: {{url: "{url}"}}
sites: [{{id: s1, grid_limit_kw: 200}}]
chargers: [{", ".join(f"{{id: {cp}, site: s1}}" for cp in CHARGERS)}]
id_tokens: [{{value: {TAG}}}]
billing: {{reconcile_interval_s: 1, tick_s: 1}}
""", env={})
    async with CsmsApp(cfg) as app, httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}") as api:
        wss = {cp: await connect(f"ws://127.0.0.1:{app.ocpp_port}/ocpp/{cp}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                 open_timeout=5) for cp in CHARGERS}
        try:
            txs = {cp: await start(ws, cp) for cp, ws in wss.items()}
            caplog.clear()
            with caplog.at_level(logging.INFO):
                # Every charger stops at once; the database goes as soon as the first stop is answered.
                pending = {cp: asyncio.ensure_future(answer(wss[cp], stop(cp, txs[cp], 0))) for cp in CHARGERS}
                await asyncio.wait(pending.values(), return_when=asyncio.FIRST_COMPLETED)
                await relay.cut()
                first = {cp: await t for cp, t in pending.items()}
                refused = sorted(cp for cp, r in first.items() if r[0] == 4)
                assert all(first[cp][2] == "InternalError" for cp in refused)
                await asyncio.sleep(2.5)  # billing ticks and a reconciliation pass meet the outage too
                down = (await api.get("/metrics")).text
                await relay.restore()
                for cp in refused:  # the charger retries its transaction message until it is answered
                    for attempt in range(1, 20):
                        if (await answer(wss[cp], stop(cp, txs[cp], attempt)))[0] == 3:
                            break
                        await asyncio.sleep(0.5)
                    else:
                        raise AssertionError(f"{cp}: StopTransaction never accepted after the restore")
                for cp, ws in wss.items():  # then the driver unplugs
                    assert (await answer(ws, status(f"{cp}-fin", "Finishing")))[0] == 3
                    assert (await answer(ws, status(f"{cp}-free", "Available")))[0] == 3

                async def settled() -> dict[str, Any] | None:
                    st = (await api.get("/api/v1/billing/status")).json()
                    invoices = (await api.get("/api/v1/invoices", params={"limit": 100})).json()["items"]
                    done = len(invoices) >= len(CHARGERS) and st["uninvoiced_ended"] == 0
                    return {"status": st, "invoices": invoices} if done else None
                end = await _eventually(settled, timeout=30)
                metrics = (await api.get("/metrics")).text
            skipped = [r for r in caplog.records if "billing skipped" in r.getMessage()]
        finally:
            for ws in wss.values():
                await ws.close()
    await relay.cut()
    assert "csms_database_up 0.0" in down
    invoices = end["invoices"]
    # Exactly once: one invoice per ended transaction, none twice, each with the energy the charger metered.
    assert sorted(i["tx_key"] for i in invoices) == sorted(f"{cp}/{txs[cp]}" for cp in CHARGERS)
    assert [float(i["energy_wh"]) for i in invoices] == [2000.0] * len(CHARGERS)
    assert end["status"]["uninvoiced_ended"] == 0 and end["status"]["overdue"] == 0
    assert "csms_billing_uninvoiced_ended 0.0" in metrics
    print(f"outage among the ends: {len(refused)} stops refused and retried, "
          f"{len(CHARGERS) - len(refused)} committed; billing skipped {len(skipped)} items during the outage; "
          f"repairs {end['status']['repairs']}")


async def _eventually(predicate: Any, timeout: float) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await predicate()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("billing did not settle: an ended transaction is still without its invoice")
        await asyncio.sleep(0.2)
    return value
