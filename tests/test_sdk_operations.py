"""The SDK's hold adjustments and mixed operation batches, against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ledger_client import (
    AdjustPending,
    AsyncLedgerClient,
    InsufficientFunds,
    LedgerClient,
    NewTransfer,
    PostPending,
    Reverse,
    TransferKind,
    VoidPending,
)
from ledger_server.server import LedgerServer
from tests.conftest import ADMIN_KEY


@pytest.fixture
def client(ledger_server: LedgerServer) -> Iterator[LedgerClient]:
    with LedgerClient(ledger_server.target, token=ADMIN_KEY) as sdk:
        yield sdk


def test_adjust_and_apply_operations(client: LedgerClient, ledger_server: LedgerServer) -> None:
    import uuid

    code = "S" + uuid.uuid4().hex[:8].upper()
    client.create_asset(code=code, scale=2)
    world = client.create_account(asset=code)
    wallet = client.create_account(asset=code, debits_must_not_exceed_credits=True)
    fees = client.create_account(asset=code)
    client.create_transfer(debit_account_id=world.id, credit_account_id=wallet.id, amount=100, asset=code)
    hold = client.create_transfer(debit_account_id=wallet.id, credit_account_id=world.id, amount=30, asset=code,
                                  pending=True)
    raised = client.adjust_pending_transfer(pending_id=hold.id, amount=50)
    assert raised.kind == TransferKind.INCREASE_PENDING and raised.amount == 20
    with pytest.raises(InsufficientFunds):
        client.adjust_pending_transfer(pending_id=hold.id, amount=101)
    result = client.apply_operations(atomic=True, operations=[
        PostPending(pending_id=hold.id, amount=40),
        NewTransfer(debit_account_id=wallet.id, credit_account_id=fees.id, amount="0.05", asset=code),
    ])
    assert result.ok and [t.kind for t in result.transfers] == [TransferKind.POST_PENDING, TransferKind.SINGLE_PHASE]
    assert client.get_account(account_id=wallet.id).debits_posted == 45

    async def async_flow() -> None:
        async with AsyncLedgerClient(ledger_server.target, token=ADMIN_KEY) as sdk:
            second = await sdk.create_transfer(debit_account_id=wallet.id, credit_account_id=world.id, amount=10,
                                               asset=code, pending=True)
            await sdk.adjust_pending_transfer(pending_id=second.id, amount=5)
            mixed = await sdk.apply_operations(operations=[
                VoidPending(pending_id=second.id), Reverse(transfer_id=result.transfers[1].id),
                AdjustPending(pending_id=second.id, amount=7)])
            assert [item.ok for item in mixed] == [True, True, False]

    asyncio.run(async_flow())


def test_chain_registry_through_the_sdk(client: LedgerClient) -> None:
    import uuid

    code = "C" + uuid.uuid4().hex[:8].upper()
    client.create_asset(code=code, scale=18)
    account = client.create_account(asset=code, debits_must_not_exceed_credits=True)
    chain_id = 31_000 + int(uuid.uuid4().int % 1000)
    registered = client.register_chain_asset(chain_id=chain_id, asset=code, decimals=18, confirmations=3)
    assert registered.asset == code
    address = "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
    client.register_deposit_address(chain_id=chain_id, address=address, account_id=account.id)
    assert [a.asset for a in client.list_chain_assets(chain_id=chain_id).assets] == [code]
    assert len(client.list_deposit_addresses(chain_id=chain_id).addresses) == 1
    assert list(client.list_chain_deposits(account_id=account.id).deposits) == []
