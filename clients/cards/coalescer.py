"""Concurrent calls of one operation travel together: one round trip for everything that queued.

On the real-time path every authorization makes the same few calls (look up the card, place the
hold, record the answer). Sent one by one, each costs a round trip, a system call on each side and
(for the database) a statement's fixed cost; at hundreds of authorizations per second those fixed
costs are most of the CPU. A coalescer sends a call on the event loop's next turn when fewer than
`in_flight_max` sends are on their way (no timer: a lone call is not delayed), otherwise it waits
for the next send and leaves with everything that queued meanwhile: batches grow exactly as fast
as load does. One send in flight (the default) gave the largest batches and the lowest latency
under load (benchmarks/README.md, "Card authorization latency").

Each item gets its own result or its own exception; `send` must return one per item, in order.
An item whose result is not ready when the rest of its batch is (a row waiting for a lock, say)
may be returned as a future: the coalescer hands it on when it settles and sends the next batch
meanwhile, so one slow item never holds up the items queued behind it.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    def __init__(
        self, send: Callable[[list[Item]], Awaitable[Sequence[Result | BaseException | asyncio.Future[Result]]]], *,
        in_flight_max: int = 1, batch_max: int = 500, queue_max: int = 20_000,
    ) -> None:
        assert 1 <= in_flight_max <= 64 and 1 <= batch_max <= 10_000 and batch_max <= queue_max
        self._send = send
        self._in_flight_max = in_flight_max
        self._batch_max = batch_max
        self._queue_max = queue_max
        self._in_flight = 0
        self._queue: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._tasks: set[asyncio.Future[None]] = set()
        self.sends = 0  # batches sent and items in them: items / sends is the mean batch (/healthz)
        self.items = 0

    def stats(self) -> dict[str, int]:
        return {"sends": self.sends, "items": self.items, "queued": len(self._queue)}

    async def submit(self, item: Item) -> Result:
        """This item's result, or the exception `send` gave it (or raised for its whole batch)."""
        if len(self._queue) >= self._queue_max:
            raise OverflowError("too many calls waiting for one operation")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._in_flight < self._in_flight_max:
            self._in_flight += 1
            self._tasks.add(task := asyncio.ensure_future(self._drain()))
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self._batch_max, len(self._queue)))]
                self.sends += 1
                self.items += len(batch)
                try:
                    results = await self._send([item for item, _ in batch])
                except Exception as error:  # the whole send failed: every item of it gets the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                except BaseException:  # cancelled (shutdown): no caller is left waiting forever
                    for _, future in batch:
                        future.cancel()
                    raise
                assert len(results) == len(batch), (len(results), len(batch))
                for result, (_, future) in zip(results, batch, strict=True):
                    if future.done():  # its caller gave up (cancelled)
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    elif isinstance(result, asyncio.Future):
                        result.add_done_callback(functools.partial(_settle, future))
                    else:
                        future.set_result(result)
        finally:
            self._in_flight -= 1
            assert self._in_flight >= 0


def _settle(target: asyncio.Future[Result], source: asyncio.Future[Result]) -> None:
    """Hand a late result (or its exception, or its cancellation) to the caller's future."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())
