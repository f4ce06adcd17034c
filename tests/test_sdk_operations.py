"""SDK: adjust_pending_transfer and apply_operations (mixed atomic batches) against a real server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ledger_client import (
    AdjustPending,
    AsyncLedgerClient,
    BatchItemFailed,
    InsufficientFunds,
    LedgerClient,
    NewTransfer,
    PendingAmountUnchanged,
    PostPending,
    Reverse,
    TransferKind,
    TransferState,
    VoidPending,
)
from ledger_server.server import LedgerServer
from tests.conftest import ADMIN_KEY


def _setup(client: LedgerClient, funds: int = 10_000) -> tuple[str, str, str, str]:
    asset = "O" + uuid.uuid4().hex[:10].upper()
    client.create_asset(code=asset, scale=2)
    funding = client.create_account(asset=asset).id
    wallet = client.create_account(asset=asset, debits_must_not_exceed_credits=True).id
    merchant = client.create_account(asset=asset).id
    client.create_transfer(debit_account_id=funding, credit_account_id=wallet, amount=funds, asset=asset)
    return asset, funding, wallet, merchant


def test_adjust_pending_raises_and_lowers_a_hold(ledger_server: LedgerServer) -> None:
    with LedgerClient(ledger_server.target, token=ADMIN_KEY) as client:
        asset, _, wallet, merchant = _setup(client)
        hold = client.create_transfer(
            debit_account_id=wallet, credit_account_id=merchant, amount=1000, asset=asset, pending=True
        )
        up = client.adjust_pending_transfer(pending_id=hold.id, amount=1500, request_id=f"up-{hold.id}")
        assert (up.kind, up.amount, up.pending_id) == (TransferKind.INCREASE_PENDING, 500, hold.id)
        assert client.adjust_pending_transfer(pending_id=hold.id, amount=1500, request_id=f"up-{hold.id}") == up
        down = client.adjust_pending_transfer(pending_id=hold.id, amount="4.00")  # major units: one lookup
        assert (down.kind, down.amount) == (TransferKind.DECREASE_PENDING, 1100)
        assert client.get_account(account_id=wallet).debits_pending == 400
        with pytest.raises(PendingAmountUnchanged):
            client.adjust_pending_transfer(pending_id=hold.id, amount=400)
        with pytest.raises(InsufficientFunds):
            client.adjust_pending_transfer(pending_id=hold.id, amount=10_001)
        posted = client.post_pending_transfer(pending_id=hold.id)
        assert posted.amount == 400
        assert client.get_account(account_id=wallet).posted_balance == 10_000 - 400


def test_apply_operations_atomic_mixed_batch_commits_all_or_nothing(ledger_server: LedgerServer) -> None:
    with LedgerClient(ledger_server.target, token=ADMIN_KEY) as client:
        asset, funding, wallet, merchant = _setup(client)
        fees = client.create_account(asset=asset).id
        hold = client.create_transfer(
            debit_account_id=wallet, credit_account_id=merchant, amount=3000, asset=asset, pending=True
        )
        batch = f"clearing-{hold.id}"
        result = client.apply_operations(
            operations=[
                AdjustPending(pending_id=hold.id, amount=2000, request_id=f"{batch}:adjust"),
                NewTransfer(debit_account_id=wallet, credit_account_id=merchant, amount=1000, asset=asset,
                            request_id=f"{batch}:post"),
                NewTransfer(debit_account_id=merchant, credit_account_id=fees, amount=20, asset=asset),
            ],
            atomic=True, request_id=batch,
        )
        assert result.ok and len(result) == 3
        assert [t.kind for t in result.transfers] == [
            TransferKind.DECREASE_PENDING, TransferKind.SINGLE_PHASE, TransferKind.SINGLE_PHASE
        ]
        account = client.get_account(account_id=wallet)
        assert (account.debits_pending, account.debits_posted) == (2000, 1000)

        # An atomic batch with one failing item changes nothing; every item reports why.
        failed = client.apply_operations(
            operations=[
                PostPending(pending_id=hold.id, amount=500),
                NewTransfer(debit_account_id=wallet, credit_account_id=merchant, amount=99_999, asset=asset),
            ],
            atomic=True,
        )
        assert not failed.ok
        assert isinstance(failed.results[0].error, BatchItemFailed)
        assert isinstance(failed.results[1].error, InsufficientFunds)
        assert client.get_transfer(transfer_id=hold.id).state == TransferState.PENDING

        # Non-atomic: each item on its own; reverse and void in one request.
        single = result.transfers[1]
        mixed = client.apply_operations(operations=[
            Reverse(transfer_id=single.id, amount=250), VoidPending(pending_id=hold.id),
        ])
        assert mixed.ok
        assert [t.kind for t in mixed.transfers] == [TransferKind.REVERSAL, TransferKind.VOID_PENDING]
        account = client.get_account(account_id=wallet)
        assert (account.debits_pending, account.debits_posted, account.credits_posted) == (0, 1000, 10_250)
        assert funding


def test_async_client_has_the_same_operations(ledger_server: LedgerServer) -> None:
    with LedgerClient(ledger_server.target, token=ADMIN_KEY) as client:
        asset, _, wallet, merchant = _setup(client)

    async def run() -> None:
        async with AsyncLedgerClient(ledger_server.target, token=ADMIN_KEY) as aio:
            hold = await aio.create_transfer(
                debit_account_id=wallet, credit_account_id=merchant, amount=100, asset=asset, pending=True
            )
            raised = await aio.adjust_pending_transfer(pending_id=hold.id, amount=180)
            assert raised.amount == 80
            result = await aio.apply_operations(
                operations=[PostPending(pending_id=hold.id, amount=150)], atomic=True
            )
            assert result.ok and result.transfers[0].amount == 150

    asyncio.run(run())
