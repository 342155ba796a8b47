"""The ready gate (csms/ocpp/ready.py): at most `limit` connections discover capabilities at once, the
others wait in arrival order; without a limit nobody waits."""

from __future__ import annotations

import asyncio

from csms.ocpp.ready import UNLIMITED, ReadyGate


async def _run(gate: ReadyGate, n: int) -> tuple[int, list[int]]:
    inside, peak, order = 0, 0, []
    release = asyncio.Event()

    async def one(i: int) -> None:
        nonlocal inside, peak
        async with gate:
            inside += 1
            peak = max(peak, inside)
            order.append(i)
            await release.wait()
            inside -= 1

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(*tasks)
    return peak, order


async def test_at_most_limit_inside_in_arrival_order() -> None:
    gate = ReadyGate(3)
    peak, order = await _run(gate, 10)
    assert peak == 3
    assert order == list(range(10))


async def test_waiting_counts_the_queue() -> None:
    gate = ReadyGate(1)
    async with gate:
        waiter = asyncio.create_task(gate.__aenter__())
        await asyncio.sleep(0)
        assert gate.waiting == 1
    await waiter
    await gate.__aexit__(None, None, None)
    assert gate.waiting == 0


async def test_unlimited_never_waits() -> None:
    peak, _ = await _run(UNLIMITED, 50)
    assert peak == 50
