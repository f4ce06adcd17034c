"""What the load generator sends: one client session per thread, one call at a time.

A session hands out the next call (method, request, transfers it carries) and hears the response,
so a multi-step flow (a card hold, then its post or void) can follow its own state. Requests are
built on the client as a real client would, request ids unique per run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.v1 import ledger_pb2 as pb

WORKLOADS = ("uniform", "hot", "card", "batch")
AMOUNT_MAX = 1000
CARD_HOLD_AMOUNT = 1000
CARD_VOID_EVERY = 4  # one authorization in four is voided whole; the others are cleared for less


@dataclass(frozen=True)
class Accounts:
    """The accounts a run created: `spread` is the large population, `hot` the few every hot
    transfer credits, `merchants` what card holds are placed towards."""

    asset: str
    spread: Sequence[str]
    hot: Sequence[str]
    merchants: Sequence[str]


@dataclass(frozen=True)
class Call:
    method: str  # a Ledger RPC name
    request: Any
    transfers: int  # transfers the call creates when it succeeds (1000 for a batch)


class Session(Protocol):
    def next_call(self) -> Call: ...

    def on_result(self, call: Call, response: Any | None) -> None:
        """The response of `call`, or None when it failed."""


class _Ids:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._next = 0

    def __call__(self) -> str:
        self._next += 1
        return f"{self._prefix}-{self._next}"


def _pair(rng: random.Random, spread: Sequence[str]) -> tuple[str, str]:
    debit, credit = rng.sample(spread, 2)
    return debit, credit


class Uniform:
    """Random pairs out of the whole population: almost no two transfers share an account."""

    def __init__(self, accounts: Accounts, rng: random.Random, prefix: str) -> None:
        self._a, self._rng, self._id = accounts, rng, _Ids(prefix)

    def request(self) -> pb.CreateTransferRequest:
        debit, credit = _pair(self._rng, self._a.spread)
        return pb.CreateTransferRequest(
            request_id=self._id(), debit_account_id=debit, credit_account_id=credit,
            amount=str(self._rng.randint(1, AMOUNT_MAX)), asset=self._a.asset,
        )

    def next_call(self) -> Call:
        return Call("CreateTransfer", self.request(), 1)

    def on_result(self, call: Call, response: Any | None) -> None:
        pass


class Hot:
    """Every transfer credits one of a few accounts (a merchant's or a fee account): contention."""

    def __init__(self, accounts: Accounts, rng: random.Random, prefix: str) -> None:
        self._a, self._rng, self._id = accounts, rng, _Ids(prefix)

    def next_call(self) -> Call:
        credit = self._rng.choice(self._a.hot)
        debit = self._rng.choice(self._a.spread)
        request = pb.CreateTransferRequest(
            request_id=self._id(), debit_account_id=debit, credit_account_id=credit,
            amount=str(self._rng.randint(1, AMOUNT_MAX)), asset=self._a.asset,
        )
        return Call("CreateTransfer", request, 1)

    def on_result(self, call: Call, response: Any | None) -> None:
        pass


class Card:
    """Card authorizations: a hold, then a partial post (the rest of the hold is released) or,
    one time in CARD_VOID_EVERY, a void of the whole hold."""

    def __init__(self, accounts: Accounts, rng: random.Random, prefix: str) -> None:
        self._a, self._rng, self._id = accounts, rng, _Ids(prefix)
        self._pending_id: str | None = None
        self._flows = 0

    def next_call(self) -> Call:
        if self._pending_id is None:
            request = pb.CreateTransferRequest(
                request_id=self._id(), debit_account_id=self._rng.choice(self._a.spread),
                credit_account_id=self._rng.choice(self._a.merchants), amount=str(CARD_HOLD_AMOUNT),
                asset=self._a.asset, pending=True, timeout_seconds=3600,
            )
            return Call("CreateTransfer", request, 1)
        self._flows += 1
        if self._flows % CARD_VOID_EVERY == 0:
            return Call("VoidPendingTransfer", pb.VoidPendingTransferRequest(
                request_id=self._id(), pending_id=self._pending_id), 1)
        amount = str(self._rng.randint(1, CARD_HOLD_AMOUNT - 1))
        return Call("PostPendingTransfer", pb.PostPendingTransferRequest(
            request_id=self._id(), pending_id=self._pending_id, amount=amount), 1)

    def on_result(self, call: Call, response: Any | None) -> None:
        if call.method == "CreateTransfer" and response is not None:
            self._pending_id = response.id
        else:
            self._pending_id = None  # settled, or failed: start a new authorization


class Batch:
    """CreateTransfers with `size` uniform transfers per call (not atomic: each item on its own)."""

    def __init__(self, accounts: Accounts, rng: random.Random, prefix: str, size: int) -> None:
        assert 1 <= size <= 8000
        self._uniform = Uniform(accounts, rng, prefix + "-i")
        self._id = _Ids(prefix)
        self._size = size

    def next_call(self) -> Call:
        request = pb.CreateTransfersRequest(request_id=self._id())
        request.transfers.extend(self._uniform.request() for _ in range(self._size))
        return Call("CreateTransfers", request, self._size)

    def on_result(self, call: Call, response: Any | None) -> None:
        pass


def new_session(
    workload: str, accounts: Accounts, rng: random.Random, prefix: str, batch_size: int
) -> Session:
    if workload == "uniform":
        return Uniform(accounts, rng, prefix)
    if workload == "hot":
        return Hot(accounts, rng, prefix)
    if workload == "card":
        return Card(accounts, rng, prefix)
    if workload == "batch":
        return Batch(accounts, rng, prefix, batch_size)
    raise ValueError(f"unknown workload {workload!r}; one of {WORKLOADS}")
