"""Group commit: units of work that arrive while a commit runs share the next database transaction.

A charger's message is answered only after what it changed is committed. Committing each message in
its own transaction made the message path queue on the database: on SQLite every write transaction
takes the file's single write lock, and concurrent sessions wait in SQLite's busy handler (sleeps of
up to 100 ms), so 500 chargers saw seconds of latency at 60 % CPU. Here one writer runs the queued
units one after another in one transaction and commits once; each caller's `await` returns after that
commit, so "nothing acknowledged before it is committed" holds for every unit.

A unit is `async def work(s: StoreSession) -> T`: database work only (it may run twice, see below),
no side effects outside the session; publish events after `write()` returns.

If a unit raises (or the commit fails), nothing of the batch is committed: the batch is rolled back
and each unit is run again alone, so one charger's bad message fails only its own answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

T = TypeVar("T")
S = TypeVar("S")

#: Units per transaction at most: bounds the session's identity map and how long one commit holds the lock.
MAX_BATCH = 256


class GroupCommit(Generic[S]):
    """`await gc.write(work)` -> work's result, once committed. `session()` opens one transaction."""

    def __init__(self, session: Callable[[], AbstractAsyncContextManager[S]], max_batch: int = MAX_BATCH) -> None:
        self._session = session
        self._max_batch = max_batch
        self._queue: list[tuple[Callable[[S], Awaitable[Any]], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: Figures for /metrics: transactions committed and units in them.
        self.commits = 0
        self.units = 0
        #: Wall time the writer spent in transactions (a busy fraction near 1 means the message path queues
        #: on the writer, not on the event loop) and the largest batch it took.
        self.busy_s = 0.0
        self.max_units = 0

    async def write(self, work: Callable[[S], Awaitable[T]]) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, fut))
        if self._writer is None:
            # A task, not the caller: a caller cancelled mid-commit (its charger went away) must not
            # cancel the others' transaction.
            self._writer = asyncio.get_running_loop().create_task(self._drain(), name="group-commit")
        return await fut

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                self.max_units = max(self.max_units, len(batch))
                t0 = time.perf_counter()
                try:
                    await self._commit(batch)
                finally:
                    self.busy_s += time.perf_counter() - t0
        finally:
            self._writer = None
            for _, fut in self._queue:  # only on cancellation (shutdown): nothing of these was committed
                if not fut.done():
                    fut.cancel()
            self._queue.clear()

    async def _commit(self, batch: list[tuple[Callable[[S], Awaitable[Any]], asyncio.Future[Any]]]) -> None:
        results: list[Any] = []
        try:
            async with self._session() as s:
                for work, _ in batch:
                    results.append(await work(s))
        except Exception as e:  # noqa: BLE001 - handed to the caller(s)
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(e)
                return
            for item in batch:  # rolled back as a whole: each unit again, alone
                await self._commit([item])
            return
        self.commits += 1
        self.units += len(batch)
        for (_, fut), r in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(r)
