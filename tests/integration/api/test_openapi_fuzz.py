"""Property test over the OpenAPI document: schemathesis generates requests for every operation, valid ones
and deliberately invalid ones, and the running CSMS must answer each without a 5xx, with errors in the one
JSON error shape.

The CSMS runs in its own thread and event loop (schemathesis and hypothesis call synchronously over real
HTTP), on SQLite, with one charger of each version connected so that commands reach a live station.
Bounded: a few examples per operation and mode, about 20 s in all.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from csms.app import CsmsApp  # noqa: E402
from simulator.charger import Charger, ChargerConfig  # noqa: E402
from simulator.clock import SimClock  # noqa: E402

from .conftest import ADMIN_KEY, api_config  # noqa: E402

EXAMPLES = 12  # per operation and generation mode


class CsmsThread:
    """CsmsApp plus two simulator chargers on a private event loop in a daemon thread."""

    def __init__(self, db_url: str) -> None:
        self.cfg = api_config(db_url)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.app: CsmsApp | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="csms-under-fuzz", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        chargers: list[Charger] = []
        try:
            self.app = app = CsmsApp(self.cfg)
            await app.start()
            url = f"ws://127.0.0.1:{app.ocpp_port}{app.cfg.server.path_prefix}"
            for ident, proto in (("CP-1", "1.6"), ("CP-2", "2.0.1")):
                cp = Charger(ChargerConfig(ident, url=url, protocol=proto, meter_interval_s=60), SimClock())
                await cp.connect(timeout=10)
                chargers.append(cp)
        except BaseException as e:  # noqa: BLE001 - reported to the test thread
            self.error = e
            self.ready.set()
            return
        self.ready.set()
        try:
            await self._stop.wait()
        finally:
            for cp in chargers:
                await cp.close()
            await app.stop()

    def __enter__(self) -> "CsmsThread":
        self.thread.start()
        assert self.ready.wait(30), "CSMS did not start"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)

    @property
    def base_url(self) -> str:
        assert self.app is not None
        return f"http://127.0.0.1:{self.app.api_port}"


@pytest.fixture
def csms(tmp_path: Path) -> Iterator[CsmsThread]:
    with CsmsThread(f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}") as c:
        yield c


def test_no_operation_answers_5xx(csms: CsmsThread) -> None:
    schema = schemathesis.openapi.from_url(f"{csms.base_url}/openapi.json")
    headers = {"X-API-Key": ADMIN_KEY}
    problems: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 30

    def variants(op: Any) -> list[dict[str, str]]:
        """Generated path parameters mostly name nothing (404): also aim at the live chargers and the site."""
        out: list[dict[str, str]] = [{}]
        if op.method.upper() == "DELETE":
            return out  # keep the live chargers and the site for the other operations
        if "{station_id}" in op.path:
            out += [{"station_id": "CP-1"}, {"station_id": "CP-2"}]
        if "{site_id}" in op.path:
            out += [{"site_id": "s1"}]
        return out

    for op in operations:
        if op.path == "/api/v1/events":
            continue  # a stream that never ends by design (tests/integration/api/test_live.py)
        for mode, known in [(m, k) for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                            for k in variants(op)]:
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode, path_parameters=known or None))
            def check(case: Any) -> None:
                r = case.call(base_url=csms.base_url, headers=headers, timeout=15)
                where = f"{case.method} {case.formatted_path} {mode.value}"
                if r.status_code >= 500:
                    problems.append(f"{where} -> {r.status_code}: {r.text[:200]}")
                    return
                if r.status_code >= 400 and r.status_code != 405:
                    body = r.json()
                    if not (isinstance(body, dict) and set(body) == {"error"} and body["error"].get("message")):
                        problems.append(f"{where} -> {r.status_code} not in the error shape: {r.text[:200]}")

            try:
                check()
            except Unsatisfiable:
                pass  # nothing to make invalid (e.g. an operation without parameters in NEGATIVE mode)
    assert not problems, "\n".join(sorted(set(problems))[:30])
