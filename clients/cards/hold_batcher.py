"""Concurrent authorization holds travel to the ledger together.

Batching is the ledger's throughput lever: one `CreateTransfers` request (not atomic: each hold
succeeds or fails on its own, with its own request id and result) costs the ledger one handler
call and one group-commit job instead of one per hold. Batches form naturally: a hold goes at once
when fewer than `in_flight_max` batches are on their way, otherwise it waits for the next one and
leaves with everything that queued meanwhile. At low load every hold travels alone.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ledger_client import AsyncLedgerClient, NewTransfer, Transfer

BATCH_MAX = 500
QUEUE_MAX = 20_000


class HoldBatcher:
    def __init__(self, ledger: AsyncLedgerClient, in_flight_max: int = 4) -> None:
        assert 1 <= in_flight_max <= 64
        self._ledger = ledger
        self._in_flight_max = in_flight_max
        self._in_flight = 0
        self._queue: deque[tuple[NewTransfer, asyncio.Future[Transfer]]] = deque()
        self._tasks: set[asyncio.Future[None]] = set()

    async def place(self, hold: NewTransfer) -> Transfer:
        """The hold's transfer, or the typed error the ledger gave this item."""
        assert hold.pending and hold.request_id is not None, hold
        if len(self._queue) >= QUEUE_MAX:
            raise OverflowError("too many holds waiting for the ledger")
        future: asyncio.Future[Transfer] = asyncio.get_running_loop().create_future()
        self._queue.append((hold, future))
        if self._in_flight < self._in_flight_max:
            self._in_flight += 1
            self._tasks.add(task := asyncio.ensure_future(self._send()))
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _send(self) -> None:
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(BATCH_MAX, len(self._queue)))]
                try:
                    result = await self._ledger.create_transfers(transfers=[hold for hold, _ in batch])
                except Exception as error:  # the whole request failed (after the SDK's retries)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for item, (_, future) in zip(result.results, batch, strict=True):
                    if future.done():
                        continue
                    if item.error is not None:
                        future.set_exception(item.error)
                    else:
                        assert item.transfer is not None
                        future.set_result(item.transfer)
        finally:
            self._in_flight -= 1
            assert self._in_flight >= 0
