"""Hypothesis frame fuzzer against the running CSMS (CsmsApp, SQLite) on both OCPP versions.

Properties, per frame: the server neither crashes nor closes the connection; every frame but an answer gets
exactly one answer (with the frame's id when it can be read, else "-1"); answers (CALLRESULT/CALLERROR) get
none; a neighbour charger on its own connection keeps being served. The CSMS runs in a thread with its own
event loop, the clients are websockets' synchronous ones (hypothesis drives plain functions)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.v16.enums import Action as A16
from ocpp.v201.enums import Action as A201
from websockets.sync.client import ClientConnection, connect

from csms.app import CsmsApp
from csms.config import parse_config

PROTO = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
ACTIONS = sorted({a.value for a in A16} | {a.value for a in A201})


class Running:
    """The CSMS in a background thread; `url`, `stop()`."""

    def __init__(self, tmp: Path) -> None:
        self.cfg = parse_config(f"""
server: {{port: 0, security_profile: 0, response_timeout_s: 2}}
api: {{enabled: false}}
database: {{url: "sqlite+aiosqlite:///{tmp / 'csms.db'}"}}
logging: {{level: ERROR}}
chargers: [{{id: FUZZ-16}}, {{id: FUZZ-201}}, {{id: NEIGHBOUR}}]
""", env={})
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "CSMS did not start"
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                app = CsmsApp(self.cfg)
                await app.start()
            except BaseException as e:  # noqa: BLE001 - reported to the test thread
                self._error = e
                self._ready.set()
                return
            self.url = f"ws://127.0.0.1:{app.ocpp_port}/ocpp"
            self._ready.set()
            await self._stop.wait()
            await app.stop()

        asyncio.run(main())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def csms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    r = Running(tmp_path_factory.mktemp("fuzz"))
    yield r
    r.stop()


@pytest.fixture(scope="module")
def conns(csms: Running) -> Iterator[dict[str, ClientConnection]]:
    with contextlib.ExitStack() as stack:
        def open_(ident: str, proto: str) -> ClientConnection:
            return stack.enter_context(connect(f"{csms.url}/{ident}", subprotocols=[proto],  # type: ignore[list-item]
                                               open_timeout=5))

        yield {"1.6": open_("FUZZ-16", "ocpp1.6"), "2.0.1": open_("FUZZ-201", "ocpp2.0.1"),
               "neighbour": open_("NEIGHBOUR", "ocpp2.0.1")}


def next_answer(ws: ClientConnection, timeout: float = 5.0) -> list[Any]:
    """The next CALLRESULT/CALLERROR; the CSMS's own CALLs to the charger (after a fuzzed boot) are skipped."""
    while True:
        msg = json.loads(ws.recv(timeout=timeout))
        if msg[0] != 2:
            return msg  # type: ignore[no-any-return]


# --- frames --------------------------------------------------------------------------------------------
leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(leaves, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=10), kids, max_size=4), max_leaves=25)
ids = st.text(min_size=1, max_size=40).filter(lambda s: not s.startswith("probe"))
calls = st.builds(lambda uid, action, payload: json.dumps([2, uid, action, payload]), ids,
                  st.sampled_from(ACTIONS) | st.text(max_size=30),
                  st.dictionaries(st.sampled_from(["connectorId", "evseId", "idTag", "idToken", "status",
                                                   "timestamp", "meterValue", "transactionId", "reason",
                                                   "chargingStation", "vendorId", "data"]) | st.text(max_size=8),
                                  json_values, max_size=6) | json_values)
typed = st.tuples(st.sampled_from([2, 3, 4, 5, 0, -1, "2", 2.5, True, None]), json_values | ids, json_values,
                  json_values).flatmap(lambda t: st.integers(0, 4).map(lambda n: json.dumps(list(t)[:n])))
deep = st.integers(1, 3000).map(lambda n: '[2,"deep","DataTransfer",{"vendorId":"V","data":'
                                + "[" * n + "]" * n + "}]")
frames = st.one_of(calls, typed, json_values.map(json.dumps), st.text(max_size=200), st.binary(max_size=64), deep,
                   st.text(max_size=100).map(lambda t: '[2,"cut",' + t))


def expected(frame: str | bytes) -> str | None:
    """The id the answer must carry; None: no answer (an answer frame). '?' : unparsable, id read from the text
    or "-1"."""
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        return "?"
    if type(msg) is list and msg and type(msg[0]) is int and msg[0] in (3, 4):
        return None
    if type(msg) is list and len(msg) > 1 and type(msg[1]) is str:
        return msg[1]  # type: ignore[no-any-return]
    return "-1"


probe_no = 0


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(frame=frames)
def test_every_frame_is_answered_and_nothing_breaks(conns: dict[str, ClientConnection], version: str,
                                                    frame: str | bytes) -> None:
    global probe_no
    probe_no += 1
    ws, neighbour = conns[version], conns["neighbour"]
    ws.send(frame)
    want = expected(frame)
    if want is not None:
        answer = next_answer(ws)
        assert answer[0] in (3, 4), answer
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        if want == "?":
            assert answer[0] == 4 and (answer[1] == "-1" or f'"{answer[1]}"' in text), (frame, answer)
        else:
            assert answer[1] == want, (frame, answer)
        if answer[0] == 4:
            assert answer[2] != "InternalError", (frame, answer)
    probe = f"probe-{probe_no}"
    ws.send(json.dumps([2, probe, "Heartbeat", {}]))
    assert next_answer(ws)[:2] == [3, probe], frame  # the connection still works, nothing else was sent
    neighbour.send(json.dumps([2, probe, "Heartbeat", {}]))
    assert next_answer(neighbour)[:2] == [3, probe]
