"""The planner thread after shutdown: a late plan request ends quietly (cancelled), never with the pool's
"cannot schedule new futures after shutdown" in a task nobody awaits."""

import asyncio

import pytest

from csms.services.solver_thread import SolverThread


async def test_runs_work_then_cancels_requests_after_shutdown() -> None:
    solver = SolverThread()
    assert await solver.run(lambda a, b: a + b, 2, 3) == 5
    solver.shutdown()
    late = solver.submit(lambda: 1)
    assert late.cancelled()
    with pytest.raises(asyncio.CancelledError):
        await solver.run(lambda: 1)
