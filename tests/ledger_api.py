"""Small helpers for tests that drive the ledger through its gRPC API."""

from __future__ import annotations

import uuid

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc


def rid(prefix: str = "req") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def new_asset(stub: ledger_pb2_grpc.LedgerStub, scale: int = 2) -> str:
    code = "T" + uuid.uuid4().hex[:10].upper()
    stub.CreateAsset(pb.CreateAssetRequest(request_id=rid("asset"), code=code, scale=scale))
    return code


def new_account(
    stub: ledger_pb2_grpc.LedgerStub, asset: str, *, no_overdraft: bool = False, no_overcredit: bool = False,
    metadata: dict[str, str] | None = None,
) -> pb.Account:
    account: pb.Account = stub.CreateAccount(
        pb.CreateAccountRequest(
            request_id=rid("account"), asset=asset, debits_must_not_exceed_credits=no_overdraft,
            credits_must_not_exceed_debits=no_overcredit, metadata=metadata or {},
        )
    )
    return account


def transfer(
    stub: ledger_pb2_grpc.LedgerStub, debit: str, credit: str, amount: int, asset: str, *, pending: bool = False,
    timeout_seconds: int = 0, request_id: str | None = None,
) -> pb.Transfer:
    result: pb.Transfer = stub.CreateTransfer(
        pb.CreateTransferRequest(
            request_id=request_id or rid("transfer"), debit_account_id=debit, credit_account_id=credit,
            amount=str(amount), asset=asset, pending=pending, timeout_seconds=timeout_seconds,
        )
    )
    return result


def error_reason(error: grpc.RpcError) -> str:
    """The ErrorInfo.reason of a failed call (asserts there is exactly one ErrorInfo)."""
    status = rpc_status.from_call(error)
    assert status is not None, error
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append(info)
    assert len(infos) == 1, status
    assert infos[0].domain == "ledger.v1"
    reason: str = infos[0].reason
    return reason
