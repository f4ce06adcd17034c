"""Concurrent authorization holds travel to the ledger together.

Batching is the ledger's throughput lever: one `CreateTransfers` request (not atomic: each hold
succeeds or fails on its own, with its own request id and result) costs the ledger one handler
call and one group-commit job instead of one per hold. Batches form as the coalescer forms them:
at low load every hold travels alone.
"""

from __future__ import annotations

from ledger_cards.coalescer import Coalescer
from ledger_client import AsyncLedgerClient, NewTransfer, Transfer

BATCH_MAX = 500
QUEUE_MAX = 20_000


class HoldBatcher:
    def __init__(self, ledger: AsyncLedgerClient, in_flight_max: int = 1) -> None:
        self._ledger = ledger
        self._holds: Coalescer[NewTransfer, Transfer] = Coalescer(
            self._send, in_flight_max=in_flight_max, batch_max=BATCH_MAX, queue_max=QUEUE_MAX)

    def stats(self) -> dict[str, int]:
        return self._holds.stats()

    async def place(self, hold: NewTransfer) -> Transfer:
        """The hold's transfer, or the typed error the ledger gave this item."""
        assert hold.pending and hold.request_id is not None, hold
        return await self._holds.submit(hold)

    async def _send(self, holds: list[NewTransfer]) -> list[Transfer | BaseException]:
        result = await self._ledger.create_transfers(transfers=holds)
        placed: list[Transfer | BaseException] = []
        for item in result.results:
            if item.error is not None:
                placed.append(item.error)
            else:
                assert item.transfer is not None
                placed.append(item.transfer)
        return placed
