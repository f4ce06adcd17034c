"""The first things a user does: create an asset, two accounts, move money, read it back."""

from __future__ import annotations

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from tests.ledger_api import new_account, new_asset, transfer


def test_transfer_moves_money(stub: ledger_pb2_grpc.LedgerStub) -> None:
    asset = new_asset(stub)
    a = new_account(stub, asset)
    b = new_account(stub, asset, no_overdraft=True)
    t = transfer(stub, a.id, b.id, 1500, asset)
    assert t.state == pb.POSTED and t.kind == pb.SINGLE_PHASE
    got = stub.GetAccount(pb.GetAccountRequest(id=b.id))
    assert (got.credits_posted, got.debits_posted, got.version) == ("1500", "0", 1)
