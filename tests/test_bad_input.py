"""Every RPC refuses malformed input with INVALID_ARGUMENT (or NOT_FOUND on reads) and a documented
reason, and writes nothing: the row counts of every table are unchanged afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import timestamp_pb2

from ledger.v1 import admin_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from tests.chain_bad_input import chain_cases
from tests.ledger_api import error_reason, new_account, new_asset, rid, transfer

TABLES = ("assets", "accounts", "transfers", "entries", "holds", "request_outcomes", "outbox", "callers")
U128_MAX = (1 << 128) - 1
MISSING = "0189abcd-0000-7000-8000-00000000beef"
LONG_ID = "x" * 256


def counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


@pytest.fixture(scope="module")
def world(stub: ledger_pb2_grpc.LedgerStub) -> dict[str, str]:
    asset = new_asset(stub)
    a, b = new_account(stub, asset), new_account(stub, asset)
    hold = transfer(stub, a.id, b.id, 10, asset, pending=True)
    return {"asset": asset, "a": a.id, "b": b.id, "hold": hold.id}


def transfer_request(w: dict[str, str], **overrides: Any) -> pb.CreateTransferRequest:
    fields: dict[str, Any] = dict(request_id=rid(), debit_account_id=w["a"], credit_account_id=w["b"],
                                  amount="5", asset=w["asset"])
    fields.update(overrides)
    return pb.CreateTransferRequest(**fields)


def cases(w: dict[str, str]) -> Iterator[tuple[str, Any, grpc.StatusCode, str]]:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    for bad in ["", "-5", "0", "+5", " 5", "5.0", "1e3", "0x10", str(U128_MAX + 1), "٣", "5 ", "1" * 80]:
        yield "CreateTransfer", transfer_request(w, amount=bad), invalid, "INVALID_AMOUNT"
    yield "CreateTransfer", transfer_request(w, request_id=""), invalid, "INVALID_REQUEST_ID"
    yield "CreateTransfer", transfer_request(w, request_id=LONG_ID), invalid, "INVALID_REQUEST_ID"
    yield "CreateTransfer", transfer_request(w, request_id="has space"), invalid, "INVALID_REQUEST_ID"
    yield "CreateTransfer", transfer_request(w, request_id="ünï"), invalid, "INVALID_REQUEST_ID"
    yield "CreateTransfer", transfer_request(w, debit_account_id="nope"), invalid, "INVALID_ID"
    yield "CreateTransfer", transfer_request(w, credit_account_id=""), invalid, "MISSING_FIELD"
    yield "CreateTransfer", transfer_request(w, asset="usd"), invalid, "INVALID_ASSET_CODE"
    yield "CreateTransfer", transfer_request(w, timeout_seconds=5), invalid, "INVALID_TIMEOUT"
    yield "CreateTransfer", transfer_request(w, pending=True, timeout_seconds=10**9), invalid, "INVALID_TIMEOUT"
    yield "CreateTransfer", transfer_request(w, metadata={f"k{i}": "v" for i in range(33)}), invalid, \
        "INVALID_METADATA"
    yield "CreateTransfer", transfer_request(w, metadata={"k": "v" * 513}), invalid, "INVALID_METADATA"
    yield "CreateTransfer", transfer_request(w, metadata={"k": "a\x00b"}), invalid, "INVALID_METADATA"
    yield "CreateTransfers", pb.CreateTransfersRequest(request_id=rid()), invalid, "BATCH_EMPTY"
    yield "CreateTransfers", pb.CreateTransfersRequest(request_id="", transfers=[transfer_request(w)]), invalid, \
        "INVALID_REQUEST_ID"
    yield "CreateTransfers", pb.CreateTransfersRequest(
        request_id=rid(), transfers=[transfer_request(w), transfer_request(w, amount="-1")]), invalid, "INVALID_AMOUNT"
    batch_id = rid()
    yield "CreateTransfers", pb.CreateTransfersRequest(
        request_id=batch_id, transfers=[transfer_request(w, request_id=batch_id)]), invalid, "INVALID_REQUEST_ID"
    yield "CreateTransfers", pb.CreateTransfersRequest(
        request_id=rid(), transfers=[transfer_request(w)] * 8001), invalid, "BATCH_TOO_LARGE"
    yield "CreateAsset", pb.CreateAssetRequest(request_id=rid(), code="usd", scale=2), invalid, "INVALID_ASSET_CODE"
    yield "CreateAsset", pb.CreateAssetRequest(request_id=rid(), code="", scale=2), invalid, "INVALID_ASSET_CODE"
    yield "CreateAsset", pb.CreateAssetRequest(request_id=rid(), code="A" * 17, scale=2), invalid, \
        "INVALID_ASSET_CODE"
    yield "CreateAsset", pb.CreateAssetRequest(request_id=rid(), code="ZZZ", scale=19), invalid, "INVALID_SCALE"
    yield "CreateAsset", pb.CreateAssetRequest(request_id="", code="ZZZ", scale=2), invalid, "INVALID_REQUEST_ID"
    yield "CreateAccount", pb.CreateAccountRequest(
        request_id=rid(), asset=w["asset"], debits_must_not_exceed_credits=True,
        credits_must_not_exceed_debits=True), invalid, "INVALID_FLAGS"
    yield "CreateAccount", pb.CreateAccountRequest(request_id=rid(), asset="x"), invalid, "INVALID_ASSET_CODE"
    yield "CreateAccount", pb.CreateAccountRequest(request_id="", asset=w["asset"]), invalid, "INVALID_REQUEST_ID"
    yield "CreateAccount", pb.CreateAccountRequest(request_id=rid(), asset=w["asset"], metadata={"": "v"}), \
        invalid, "INVALID_METADATA"
    yield "PostPendingTransfer", pb.PostPendingTransferRequest(request_id=rid(), pending_id="bad"), invalid, \
        "INVALID_ID"
    yield "PostPendingTransfer", pb.PostPendingTransferRequest(request_id=rid(), pending_id=w["hold"],
                                                               amount="0"), invalid, "INVALID_AMOUNT"
    yield "PostPendingTransfer", pb.PostPendingTransferRequest(request_id="", pending_id=w["hold"]), invalid, \
        "INVALID_REQUEST_ID"
    yield "VoidPendingTransfer", pb.VoidPendingTransferRequest(request_id=rid(), pending_id=""), invalid, \
        "MISSING_FIELD"
    yield "VoidPendingTransfer", pb.VoidPendingTransferRequest(request_id="", pending_id=w["hold"]), invalid, \
        "INVALID_REQUEST_ID"
    yield "ReverseTransfer", pb.ReverseTransferRequest(request_id=rid(), transfer_id="zz"), invalid, "INVALID_ID"
    yield "ReverseTransfer", pb.ReverseTransferRequest(request_id=rid(), transfer_id=MISSING, amount="1.5"), \
        invalid, "INVALID_AMOUNT"
    yield "GetAccount", pb.GetAccountRequest(id="nope"), invalid, "INVALID_ID"
    yield "GetAccount", pb.GetAccountRequest(id=MISSING), grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND"
    yield "GetAccount", pb.GetAccountRequest(id=MISSING.upper()), grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND"
    yield "GetAccount", pb.GetAccountRequest(id="{" + MISSING + "}"), invalid, "INVALID_ID"
    yield "GetAccount", pb.GetAccountRequest(id=MISSING.replace("-", "")), invalid, "INVALID_ID"
    yield "GetAsset", pb.GetAssetRequest(code="NOPE"), grpc.StatusCode.NOT_FOUND, "ASSET_NOT_FOUND"
    yield "GetAsset", pb.GetAssetRequest(code="n o"), invalid, "INVALID_ASSET_CODE"
    yield "ListAssets", pb.ListAssetsRequest(page_size=1001), invalid, "INVALID_PAGE_SIZE"
    yield "ListAssets", pb.ListAssetsRequest(page_token="garbage"), invalid, "INVALID_PAGE_TOKEN"
    yield "ListAccounts", pb.ListAccountsRequest(page_size=5000), invalid, "INVALID_PAGE_SIZE"
    yield "ListAccounts", pb.ListAccountsRequest(page_token="!!!"), invalid, "INVALID_PAGE_TOKEN"
    yield "ListAccounts", pb.ListAccountsRequest(asset="lower"), invalid, "INVALID_ASSET_CODE"
    yield "GetAccountBalance", pb.GetAccountBalanceRequest(account_id=""), invalid, "MISSING_FIELD"
    yield "GetAccountBalance", pb.GetAccountBalanceRequest(account_id=MISSING), grpc.StatusCode.NOT_FOUND, \
        "ACCOUNT_NOT_FOUND"
    yield "GetAccountBalance", pb.GetAccountBalanceRequest(
        account_id=w["a"], as_of=timestamp_pb2.Timestamp(seconds=-(10**12))), invalid, "INVALID_TIME_RANGE"
    yield "ListAccountEntries", pb.ListAccountEntriesRequest(account_id="x"), invalid, "INVALID_ID"
    yield "ListAccountEntries", pb.ListAccountEntriesRequest(
        account_id=w["a"], start_time=timestamp_pb2.Timestamp(seconds=10),
        end_time=timestamp_pb2.Timestamp(seconds=5)), invalid, "INVALID_TIME_RANGE"
    other_token = pb.ListAccountEntriesRequest(account_id=w["b"], page_size=1)
    yield "ListAccountEntries", other_token, grpc.StatusCode.OK, ""  # produces a token for the next case
    yield "GetTransfer", pb.GetTransferRequest(), invalid, "MISSING_FIELD"
    yield "GetTransfer", pb.GetTransferRequest(id="x"), invalid, "INVALID_ID"
    yield "GetTransfer", pb.GetTransferRequest(id=MISSING), grpc.StatusCode.NOT_FOUND, "TRANSFER_NOT_FOUND"
    yield "GetTransfer", pb.GetTransferRequest(request_id=""), invalid, "INVALID_REQUEST_ID"
    yield "AdjustPendingTransfer", pb.AdjustPendingTransferRequest(request_id=rid(), pending_id=w["hold"],
                                                                   amount="0"), invalid, "INVALID_AMOUNT"
    yield "AdjustPendingTransfer", pb.AdjustPendingTransferRequest(request_id=rid(), pending_id="x", amount="5"), \
        invalid, "INVALID_ID"
    yield "ApplyOperations", pb.ApplyOperationsRequest(request_id=rid()), invalid, "BATCH_EMPTY"
    yield "ApplyOperations", pb.ApplyOperationsRequest(request_id=rid(), operations=[pb.Operation()]), invalid, \
        "MISSING_FIELD"
    yield "ApplyOperations", pb.ApplyOperationsRequest(request_id=rid(), operations=[pb.Operation(
        post_pending=pb.PostPendingTransferRequest(request_id=rid(), pending_id=w["hold"], amount="-1"))]), \
        invalid, "INVALID_AMOUNT"
    yield "CreateApiKey", admin_pb2.CreateApiKeyRequest(request_id=rid(), name="k", scopes=["root"]), invalid, \
        "INVALID_SCOPE"
    yield "CreateApiKey", admin_pb2.CreateApiKeyRequest(request_id=rid(), name="k"), invalid, "INVALID_SCOPE"
    yield "CreateApiKey", admin_pb2.CreateApiKeyRequest(request_id=rid(), name="", scopes=["admin"]), invalid, \
        "MISSING_FIELD"
    yield "CreateApiKey", admin_pb2.CreateApiKeyRequest(request_id="", name="k", scopes=["admin"]), invalid, \
        "INVALID_REQUEST_ID"
    yield "CreateCertificateCaller", admin_pb2.CreateCertificateCallerRequest(
        request_id=rid(), name="svc", certificate_subject="", scopes=["admin"]), invalid, "MISSING_FIELD"
    yield "RevokeCaller", admin_pb2.RevokeCallerRequest(request_id=rid(), caller_id="x"), invalid, "INVALID_ID"
    yield "ListCallers", admin_pb2.ListCallersRequest(page_size=2000), invalid, "INVALID_PAGE_SIZE"
    yield "ListAuditRecords", admin_pb2.ListAuditRecordsRequest(page_token="zz"), invalid, "INVALID_PAGE_TOKEN"
    yield "VerifyLedger", admin_pb2.VerifyLedgerRequest(), grpc.StatusCode.OK, ""
    yield from chain_cases(w)  # the chain RPCs (tests/chain_bad_input.py)


def test_every_rpc_refuses_bad_input_and_writes_nothing(
    stub: ledger_pb2_grpc.LedgerStub, world: dict[str, str], database_url: str
) -> None:
    before = counts(database_url)
    seen_methods = set()
    for method, request, code, reason in cases(world):
        seen_methods.add(method)
        if code == grpc.StatusCode.OK:
            continue
        with pytest.raises(grpc.RpcError) as raised:
            getattr(stub, method)(request, timeout=10)
        assert raised.value.code() == code, (method, request, raised.value.details())
        assert error_reason(raised.value) == reason, (method, request)
    assert counts(database_url) == before
    rpcs = set(pb.DESCRIPTOR.services_by_name["Ledger"].methods_by_name)
    assert rpcs <= seen_methods | {"ListAccountEntries"}, rpcs - seen_methods


def test_page_token_of_another_query_is_refused(stub: ledger_pb2_grpc.LedgerStub, world: dict[str, str]) -> None:
    transfer(stub, world["a"], world["b"], 1, world["asset"])
    page = stub.ListAccountEntries(pb.ListAccountEntriesRequest(account_id=world["b"], page_size=1))
    assert page.next_page_token
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListAccountEntries(pb.ListAccountEntriesRequest(account_id=world["a"], page_token=page.next_page_token))
    assert error_reason(raised.value) == "INVALID_PAGE_TOKEN"


def test_forged_page_tokens_are_refused(stub: ledger_pb2_grpc.LedgerStub, world: dict[str, str]) -> None:
    """Page tokens are not secret: a client can forge one for the right query with any key inside."""
    from ledger_server import pagination

    for key in ["zzz", "\x00", None, [1, 2], {"a": 1}, -5, 2**70, "x" * 300]:
        forged = [
            ("ListAccounts", pb.ListAccountsRequest(page_token=pagination.encode(key, ["accounts", None, {}]))),
            ("ListAssets", pb.ListAssetsRequest(page_token=pagination.encode(key, "assets"))),
            ("ListAccountEntries", pb.ListAccountEntriesRequest(
                account_id=world["a"], page_token=pagination.encode(key, ["entries", world["a"], None, None]))),
            ("ListCallers", admin_pb2.ListCallersRequest(page_token=pagination.encode(key, "callers"))),
            ("ListAuditRecords", admin_pb2.ListAuditRecordsRequest(
                page_token=pagination.encode(key, ["audit", None, None]))),
        ]
        for method, request in forged:
            if key is None and method != "ListAuditRecords":
                continue  # a null key is simply the first page
            with pytest.raises(grpc.RpcError) as raised:
                getattr(stub, method)(request)
                raise AssertionError(f"{method} accepted a forged key {key!r}")
            assert error_reason(raised.value) == "INVALID_PAGE_TOKEN", (method, key)
