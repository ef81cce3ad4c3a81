"""Group commit: single-row writes that arrive while statements are in flight go together in the next.

The hot path's last write, recording a placed order, is one short statement per order, and on a
busy process most of its cost is the round trip (a write to the database's socket, a commit), not
the row. :class:`GroupCommit` keeps each caller's contract (its call returns once *its* row is
committed, with its own answer or its own error) while orders placed during one statement share
the next: under load several orders cost one round trip and one commit; alone, an order is
written at once, as before.

A write that finds a lane free runs at once in its caller's task (no extra task, no extra
latency). The statement of a batch runs in a task of its own, so a caller that is cancelled while
waiting does not cancel the write of the others (nor its own: the row is written; only the answer
is dropped). When a batch fails with an error the database raised (a constraint of one row, a
deadlock), each of its rows is written again on its own so that only the row at fault gets the
error; any other failure (the connection lost: the batch may or may not have committed) is every
caller's error, as it would have been without batching.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.exc import DBAPIError

from gateway.dberrors import raised_by_server

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Writes items in batches of up to ``max_batch``: ``many`` for two or more, ``one`` for a
    single item (and for each item of a batch the database refused). At most ``lanes`` statements
    are in flight at once: a write finding a lane free goes at once; the others wait for the next
    free lane and go together. (More than one lane, so that a statement that waits, on a lock of
    one of its rows or on a connection gone quiet, holds up its own batch and not every order of
    the process.)"""

    def __init__(
        self,
        one: Callable[[Item], Awaitable[Result]],
        many: Callable[[Sequence[Item]], Awaitable[list[Result]]],
        max_batch: int = 100,
        lanes: int = 2,
    ) -> None:
        if max_batch < 1 or lanes < 1:
            raise ValueError("max_batch and lanes must be at least 1")
        self._one = one
        self._many = many
        self._max_batch = max_batch
        self._lanes = lanes
        self._in_flight = 0
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    async def write(self, item: Item) -> Result:
        if self._in_flight < self._lanes and not self._waiting:
            # A lane is free: written here and now, as without batching (and cancelled with its
            # caller, as without batching). Those arriving meanwhile go in a later statement.
            self._in_flight += 1
            try:
                return await self._one(item)
            finally:
                self._in_flight -= 1
                self._start_writer()
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        self._start_writer()
        return await answer

    def _start_writer(self) -> None:
        """Give what waits to a free lane, if there is one."""
        if not self._waiting or self._in_flight >= self._lanes:
            return
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        self._in_flight += 1
        writer = asyncio.get_running_loop().create_task(self._write_in_lane(batch))
        self._writers.add(writer)
        writer.add_done_callback(self._writers.discard)

    async def _write_in_lane(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            await self._write_batch(batch)
        except BaseException as exc:  # cancelled (shutdown): nobody will write these
            self._fail(batch, exc)
            raise
        finally:
            self._in_flight -= 1
            self._start_writer()

    async def _write_batch(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        if len(batch) == 1:
            await self._settle_alone(*batch[0])
            return
        try:
            results = await self._many([item for item, _ in batch])
        except DBAPIError as exc:
            if not raised_by_server(exc):
                self._fail(batch, exc)
                return
            for item, answer in batch:  # only the row at fault gets the error
                await self._settle_alone(item, answer)
            return
        except Exception as exc:
            self._fail(batch, exc)
            return
        for (_, answer), result in zip(batch, results, strict=True):
            if not answer.done():
                answer.set_result(result)

    async def _settle_alone(self, item: Item, answer: asyncio.Future[Result]) -> None:
        try:
            result = await self._one(item)
        except Exception as exc:
            if not answer.done():
                answer.set_exception(exc)
            return
        if not answer.done():
            answer.set_result(result)

    @staticmethod
    def _fail(batch: Sequence[tuple[Item, asyncio.Future[Result]]], exc: BaseException) -> None:
        for _, answer in batch:
            if answer.done():
                continue
            if isinstance(exc, asyncio.CancelledError):
                answer.cancel()
            else:
                answer.set_exception(exc)
