"""The heap keeper moves long-lived objects out of the full collections' way, and its hourly sweep still frees
the garbage cycles among them (heap_keeper.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref

from csms.heap_keeper import HeapKeeper


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_frozen_objects_are_skipped_by_full_collections_and_freed_by_the_sweep() -> None:
    keeper = HeapKeeper()
    gc.collect()
    try:
        alive = _cycle()                 # a cycle that becomes garbage only after it was frozen
        keeper.freeze()
        assert gc.get_freeze_count() > 0
        gc.collect()
        assert alive() is not None       # frozen: a full collection does not look at it
        young = _cycle()                 # allocated after the freeze: collected as before
        gc.collect()
        assert young() is None
        assert keeper.full_sweep() >= 2 and alive() is None
        assert gc.get_freeze_count() > 0  # frozen again after the sweep
    finally:
        gc.unfreeze()


async def test_the_keeper_freezes_periodically_and_unfreezes_when_stopped() -> None:
    keeper = HeapKeeper(freeze_every_s=0.02, full_every_s=0.1)
    task = asyncio.create_task(keeper.run())
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert keeper.freezes >= 3 and keeper.full_sweeps >= 1
    assert gc.get_freeze_count() == 0
