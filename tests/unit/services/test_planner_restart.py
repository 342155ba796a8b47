"""A plan waiting longer than the hang limit restarts its worker only if the worker is hung, not when it is busy
with other sites' plans (at 10,000 chargers the worker was at 100 % through the boot ramp, plans queued behind
each other, and a kill threw every site's warm model away)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from csms.services.planner_process import BUSY_WITHIN_S, PlannerProcesses


def _workers() -> tuple[PlannerProcesses, list[str]]:
    procs = PlannerProcesses(1)
    killed: list[str] = []
    worker = procs._of("s")
    worker.proc = SimpleNamespace(returncode=None, kill=lambda: killed.append("s"))  # type: ignore[assignment]
    return procs, killed


def test_a_worker_that_answers_others_is_left_alone() -> None:
    procs, killed = _workers()
    procs._of("s").last_answer = time.monotonic() - BUSY_WITHIN_S / 2
    procs.restart("s")
    assert killed == []


def test_a_worker_silent_for_the_hang_limit_is_killed() -> None:
    procs, killed = _workers()
    procs._of("s").last_answer = time.monotonic() - BUSY_WITHIN_S - 1
    procs.restart("s")
    assert killed == ["s"]
