"""Webhook effects that are ready at the same moment travel to the ledger as one atomic request.

Each event's operations must commit all together (`ApplyOperations(atomic=True)`); the events of
different transactions need not, but sending them one request each makes the ledger pay its
per-request cost per event. So concurrent events are merged into one atomic request; if it fails
(one event's hold expired, one capture exceeds a balance), every event of it is resent alone under
its own batch id, so one event's rejection never blocks another's. The items keep their own
deterministic request ids either way: after a crash an event resent alone replays the outcomes its
items got inside the merged request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from ledger_client import AsyncLedgerClient, BatchResult, Operation

EVENTS_PER_REQUEST_MAX = 200
OPERATIONS_PER_REQUEST_MAX = 4_000  # the ledger takes 8,000


class OperationsBatcher:
    def __init__(self, ledger: AsyncLedgerClient, in_flight_max: int = 4) -> None:
        assert 1 <= in_flight_max <= 64
        self._ledger = ledger
        self._in_flight_max = in_flight_max
        self._in_flight = 0
        self._queue: deque[tuple[list[Operation], str, asyncio.Future[BatchResult]]] = deque()
        self._tasks: set[asyncio.Future[None]] = set()
        self.requests = 0
        self.merged_failures = 0

    async def apply(self, operations: Sequence[Operation], batch_id: str) -> BatchResult:
        """The event's results, as if sent alone as an atomic batch with request id `batch_id`."""
        assert operations and all(op.request_id for op in operations), batch_id
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._queue.append((list(operations), batch_id, future))
        if self._in_flight < self._in_flight_max:
            self._in_flight += 1
            self._tasks.add(task := asyncio.ensure_future(self._send()))
            task.add_done_callback(self._tasks.discard)
        return await future

    def _take(self) -> list[tuple[list[Operation], str, asyncio.Future[BatchResult]]]:
        group = [self._queue.popleft()]
        size = len(group[0][0])
        while self._queue and len(group) < EVENTS_PER_REQUEST_MAX and \
                size + len(self._queue[0][0]) <= OPERATIONS_PER_REQUEST_MAX:
            group.append(self._queue.popleft())
            size += len(group[-1][0])
        return group

    async def _send(self) -> None:
        try:
            while self._queue:
                group = self._take()
                if len(group) == 1:
                    await self._alone(*group[0])
                    continue
                merged = [op for operations, _, _ in group for op in operations]
                try:
                    self.requests += 1
                    result = await self._ledger.apply_operations(operations=merged, atomic=True)
                except Exception:  # the request itself failed: each event alone says why
                    result = None
                if result is not None and result.ok:
                    start = 0
                    for operations, _, future in group:
                        part = BatchResult(result.results[start:start + len(operations)])
                        start += len(operations)
                        if not future.done():
                            future.set_result(part)
                    continue
                self.merged_failures += 1
                await asyncio.gather(*(self._alone(*entry) for entry in group))
        finally:
            self._in_flight -= 1
            assert self._in_flight >= 0

    async def _alone(self, operations: list[Operation], batch_id: str, future: asyncio.Future[BatchResult]) -> None:
        try:
            self.requests += 1
            result = await self._ledger.apply_operations(operations=operations, atomic=True, request_id=batch_id)
        except Exception as error:
            if not future.done():
                future.set_exception(error)
            return
        if not future.done():
            future.set_result(result)
