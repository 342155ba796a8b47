"""A stalled event loop is reported with the loop thread's stack, naming the synchronous work that holds it."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from csms.stall_watch import StallWatch


def _synchronous_culprit() -> None:
    time.sleep(0.6)


async def test_a_stall_is_logged_with_the_code_that_holds_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    watch = StallWatch(stall_s=0.2, every_s=0.05)
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(0.2)
        with caplog.at_level(logging.WARNING, logger="csms.stall"):
            _synchronous_culprit()
            await asyncio.sleep(0.2)
        stalls = [r.getMessage() for r in caplog.records if r.name == "csms.stall"]
        assert len(stalls) == 1 and watch.stalls == 1          # one report per stall, not one per check
        assert "_synchronous_culprit" in stalls[0] and "event loop stalled" in stalls[0]
        caplog.clear()
        await asyncio.sleep(0.4)                                 # a loop that runs is not reported
        assert not [r for r in caplog.records if r.name == "csms.stall"]
    finally:
        task.cancel()


async def test_a_stall_in_a_garbage_collection_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """A collection stalls the loop in whatever code allocated when it began: the report names the collection."""
    import gc

    watch = StallWatch(stall_s=0.2, every_s=0.05)
    task = asyncio.create_task(watch.run())

    def slow_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            time.sleep(0.5)                      # stands in for a full collection over a large heap

    try:
        await asyncio.sleep(0.2)
        gc.callbacks.append(slow_gc)             # after the watch's callback: it has noted the start by then
        try:
            with caplog.at_level(logging.WARNING, logger="csms.stall"):
                gc.collect()
                await asyncio.sleep(0.2)
        finally:
            gc.callbacks.remove(slow_gc)
        stalls = [r.getMessage() for r in caplog.records if r.name == "csms.stall"]
        assert len(stalls) == 1 and "generation-2 garbage collection" in stalls[0] and watch.gc_stalls == 1
    finally:
        task.cancel()
