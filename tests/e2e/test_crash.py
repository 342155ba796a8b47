"""kill -9 of a CSMS under load loses nothing it acknowledged.

A real CSMS process (python -m csms, SQLite file) serves chargers of both versions that send meter
values back to back, so that many messages share a group commit. It is killed with SIGKILL at a random
moment, restarted on the same database, and killed again. After each kill, every meter value and
transaction start whose CALLRESULT a charger received must be in the database: an answer sent before
the commit would show up here as a missing row.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[2]
KILLS = 4
CHARGERS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Charger:
    """Sends meter values as fast as they are answered; remembers what was acknowledged."""

    def __init__(self, ident: str, v16: bool) -> None:
        self.ident, self.v16 = ident, v16
        self.energy_wh = 1000
        self.tx_id: Any = None
        self.seq = 0
        self.acked_wh: list[int] = []
        self.ids = itertools.count(1)

    async def call(self, ws: Any, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        uid = str(next(self.ids))
        await ws.send(json.dumps([2, uid, action, payload]))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg[0] == 2:  # a CSMS request (profiles, capabilities): accept it
                await ws.send(json.dumps([3, msg[1], {"unknownKey": []} if msg[2] == "GetConfiguration"
                                          else {"getVariableResult": []} if msg[2] == "GetVariables"
                                          else {"status": "Accepted"}]))
            elif msg[1] == uid:
                assert msg[0] == 3, msg
                return msg[2]  # type: ignore[no-any-return]

    def connect(self, url: str):  # type: ignore[no-untyped-def]
        proto = "ocpp1.6" if self.v16 else "ocpp2.0.1"
        return connect(f"{url}/{self.ident}", subprotocols=[proto], open_timeout=10)  # type: ignore[list-item]

    async def boot(self, ws) -> None:  # type: ignore[no-untyped-def]
        if self.v16:
            await self.call(ws, "BootNotification", {"chargePointVendor": "K", "chargePointModel": "9"})
        else:
            await self.call(ws, "BootNotification", {"reason": "PowerUp",
                                                     "chargingStation": {"vendorName": "K", "model": "9"}})

    async def run(self, url: str) -> None:
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            async with self.connect(url) as ws:
                await self.boot(ws)
                if self.tx_id is None:
                    await self._start(ws)
                while True:
                    self.energy_wh += 1
                    await self._meter(ws, self.energy_wh)
                    self.acked_wh.append(self.energy_wh)

    async def _start(self, ws: Any) -> None:
        if self.v16:
            ans = await self.call(ws, "StartTransaction", {"connectorId": 1, "idTag": "K9", "meterStart": 1000,
                                                           "timestamp": _now()})
            self.tx_id = ans["transactionId"]
        else:
            tx = f"{self.ident}-tx"
            await self.call(ws, "TransactionEvent", self._event("Started", tx, 1000))
            self.tx_id = tx

    def _event(self, kind: str, tx: str, wh: int) -> dict[str, Any]:
        self.seq += 1
        ev: dict[str, Any] = {"eventType": kind, "timestamp": _now(), "triggerReason": "MeterValuePeriodic",
                              "seqNo": self.seq, "transactionInfo": {"transactionId": tx},
                              "meterValue": [{"timestamp": _now(), "sampledValue": [
                                  {"value": wh, "measurand": "Energy.Active.Import.Register",
                                   "unitOfMeasure": {"unit": "Wh"}}]}]}
        if kind == "Started":
            ev["evse"] = {"id": 1, "connectorId": 1}
            ev["idToken"] = {"idToken": "K9", "type": "ISO14443"}
        return ev

    async def _meter(self, ws: Any, wh: int) -> None:
        if self.v16:
            await self.call(ws, "MeterValues", {"connectorId": 1, "transactionId": self.tx_id, "meterValue": [
                {"timestamp": _now(), "sampledValue": [{"value": str(wh), "unit": "Wh",
                                                        "measurand": "Energy.Active.Import.Register"}]}]})
        else:
            await self.call(ws, "TransactionEvent", self._event("Updated", self.tx_id, wh))


def _config(tmp: Path, port: int) -> Path:
    chargers = "\n".join(f"  - {{id: K-{i}, site: default}}" for i in range(CHARGERS))
    path = tmp / "crash.yaml"
    path.write_text(f"""
server: {{port: {port}, security_profile: 0}}
api: {{enabled: false}}
database: {{url: "sqlite+aiosqlite:///{tmp / 'crash.db'}"}}
sites: [{{id: default, grid_limit_kw: 50}}]
chargers:
{chargers}
id_tokens: [{{value: K9}}]
smart_charging: {{enabled: false}}
logging: {{level: WARNING}}
""")
    return path


async def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the CSMS exited during start-up"
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("the CSMS did not listen")


def _stored(db: Path) -> tuple[dict[str, set[int]], set[str]]:
    """Energy readings (Wh) per station, and the charger transaction ids, as committed."""
    con = sqlite3.connect(db)
    try:
        energy: dict[str, set[int]] = {}
        for sid, value in con.execute("SELECT station_id, value FROM meter_samples "
                                      "WHERE measurand = 'Energy.Active.Import.Register'"):
            energy.setdefault(sid, set()).add(round(value))
        txs = {f"{sid}/{tx}" for sid, tx in con.execute("SELECT station_id, charger_tx_id FROM transactions")}
    finally:
        con.close()
    return energy, txs


@pytest.mark.slow
async def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    port = _free_port()
    cfg = _config(tmp_path, port)
    chargers = [Charger(f"K-{i}", v16=i % 2 == 0) for i in range(CHARGERS)]
    rng = random.Random(9)
    total_acked = 0
    for kill in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-m", "csms", "--config", str(cfg)], cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await _wait_port(port, proc)
            before = sum(len(c.acked_wh) for c in chargers)
            tasks = [asyncio.create_task(c.run(f"ws://127.0.0.1:{port}/ocpp")) for c in chargers]
            await asyncio.sleep(rng.uniform(1.5, 3.0))
            os.kill(proc.pid, signal.SIGKILL)  # mid-commit, mid-answer: wherever it is
            proc.wait(10)
            await asyncio.wait(tasks, timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        acked_now = sum(len(c.acked_wh) for c in chargers) - before
        assert acked_now > 0, f"kill {kill}: no meter value was acknowledged before the kill"
        energy, txs = _stored(tmp_path / "crash.db")
        for c in chargers:
            assert c.tx_id is not None, f"{c.ident}: transaction start never acknowledged"
            assert f"{c.ident}/{c.tx_id}" in txs, f"kill {kill}: acknowledged transaction {c.tx_id} of {c.ident} lost"
            missing = set(c.acked_wh) - energy.get(c.ident, set())
            assert not missing, f"kill {kill}: {c.ident} acknowledged {len(missing)} meter values that are not " \
                                f"stored, e.g. {sorted(missing)[:5]}"
        total_acked += acked_now
    assert total_acked >= 100, f"too few messages ({total_acked}) to say anything about group commit"


class SessionCharger(Charger):
    """Runs short sessions back to back (start, three meter values, end) and remembers which ends the CSMS
    acknowledged. 1.6: StopTransaction, then StatusNotification Available (the unplug); 2.0.1: Ended with
    EVDisconnected. Like a real charger, it resends an end that was not acknowledged after a reconnect, and
    reports its connector's status after each boot."""

    def __init__(self, ident: str, v16: bool) -> None:
        super().__init__(ident, v16)
        self.ended: set[str] = set()  # transaction ids whose end was acknowledged
        self.ending = False  # an end sent, not yet acknowledged
        self.sessions = itertools.count(1)
        self.last = False  # finish the current session, then return

    async def run(self, url: str) -> None:
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            async with self.connect(url) as ws:
                await self.boot(ws)
                if self.ending:
                    await self._end(ws)
                if self.v16 and self.tx_id is None:
                    await self._status(ws, "Available")
                while True:
                    if self.tx_id is None:
                        if self.last:
                            return
                        await self._start_session(ws)
                    for _ in range(3):
                        self.energy_wh += 100
                        await self._meter(ws, self.energy_wh)
                    self.ending = True
                    await self._end(ws)

    async def _status(self, ws: Any, status: str) -> None:
        await self.call(ws, "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": status,
                                                   "timestamp": _now()})

    async def _start_session(self, ws: Any) -> None:
        if self.v16:
            await self._status(ws, "Preparing")
            ans = await self.call(ws, "StartTransaction", {"connectorId": 1, "idTag": "K9",
                                                           "meterStart": self.energy_wh, "timestamp": _now()})
            self.tx_id = ans["transactionId"]
        else:
            tx = f"{self.ident}-s{next(self.sessions)}"
            await self.call(ws, "TransactionEvent", self._event("Started", tx, self.energy_wh))
            self.tx_id = tx

    async def _end(self, ws: Any) -> None:
        if self.v16:
            await self.call(ws, "StopTransaction", {"transactionId": self.tx_id, "meterStop": self.energy_wh,
                                                    "timestamp": _now(), "reason": "Local"})
        else:
            ev = self._event("Ended", self.tx_id, self.energy_wh)
            ev["transactionInfo"]["stoppedReason"] = "EVDisconnected"
            await self.call(ws, "TransactionEvent", ev)
        self.ended.add(str(self.tx_id))
        self.tx_id, self.ending = None, False
        if self.v16:
            await self._status(ws, "Available")  # the unplug (lost with a kill: resent after the next boot)


def _billing(db: Path) -> tuple[set[str], list[str]]:
    """Ended transaction keys, and the transaction key of every invoice (duplicates kept)."""
    con = sqlite3.connect(db)
    try:
        ended = {f"{sid}/{tx}" for sid, tx in con.execute(
            "SELECT station_id, charger_tx_id FROM transactions WHERE ended_at IS NOT NULL")}
        invoiced = [k for (k,) in con.execute("SELECT tx_key FROM invoices")]
    finally:
        con.close()
    return ended, invoiced


@pytest.mark.slow
async def test_kill_9_bills_every_ended_session_exactly_once(tmp_path: Path) -> None:
    """Sessions start and end back to back while the CSMS is killed with SIGKILL three times (wherever it is:
    between a transaction's commit and billing seeing it, with billing's queue full, mid-invoice). After a
    last clean run in which every charger finishes its session, each ended transaction has exactly one
    invoice: the restarts' reconciliation completes what the killed processes never billed."""
    port = _free_port()
    cfg = _config(tmp_path, port)
    db = tmp_path / "crash.db"
    chargers = [SessionCharger(f"K-{i}", v16=i % 2 == 0) for i in range(CHARGERS)]
    rng = random.Random(11)
    for kill in range(4):
        last = kill == 3
        proc = subprocess.Popen([sys.executable, "-m", "csms", "--config", str(cfg)], cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await _wait_port(port, proc)
            for c in chargers:
                c.last = last
            tasks = [asyncio.create_task(c.run(f"ws://127.0.0.1:{port}/ocpp")) for c in chargers]
            if last:  # every charger finishes its session; billing invoices at the unplug
                await asyncio.wait(tasks, timeout=30)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    ended, invoiced = _billing(db)
                    if ended and ended <= set(invoiced):
                        break
                    await asyncio.sleep(0.2)
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
            else:
                await asyncio.sleep(rng.uniform(1.5, 3.0))
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                await asyncio.wait(tasks, timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    ended, invoiced = _billing(db)
    acked = {f"{c.ident}/{t}" for c in chargers for t in c.ended}
    assert all(c.tx_id is None for c in chargers), "a charger did not finish its last session"
    assert len(acked) >= 3 * CHARGERS, f"too few sessions ({len(acked)}) to say anything"
    assert acked <= ended, f"acknowledged ends not stored: {sorted(acked - ended)[:5]}"
    dup = sorted({k for k in invoiced if invoiced.count(k) > 1})
    assert not dup, f"invoiced twice: {dup[:5]}"
    missing = sorted(ended - set(invoiced))
    assert not missing, f"{len(missing)} of {len(ended)} ended transactions without an invoice, e.g. {missing[:5]}"
    assert set(invoiced) <= ended
