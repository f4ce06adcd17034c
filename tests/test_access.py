"""Access control, table-driven over every RPC: unauthenticated, unknown, revoked, wrong-scope and
wrong-tenant callers are refused before any work; the audit trail names every mutation's caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import symbol_database

from ledger.v1 import admin_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from ledger_server.access.scopes import ADMIN, METHOD_SCOPES, required_scope
from ledger_server.server import LedgerServer
from tests.conftest import open_channel
from tests.ledger_api import error_reason, new_account, new_asset, rid, transfer

SERVICE = pb.DESCRIPTOR.services_by_name["Ledger"]
TABLES = ("assets", "accounts", "transfers", "entries", "holds", "request_outcomes", "outbox", "callers")


def counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


def call(channel: grpc.Channel, method: Any, request: Any) -> grpc.StatusCode:
    """Invoke any Ledger RPC generically; returns the status code."""
    path = f"/{SERVICE.full_name}/{method.name}"
    response_type = symbol_database.Default().GetSymbol(method.output_type.full_name)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString(),
                                          response_deserializer=response_type.FromString)
            for _ in stream(request, timeout=5):
                break
        else:
            channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=response_type.FromString)(request, timeout=5)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def empty_request(method: Any) -> Any:
    return symbol_database.Default().GetSymbol(method.input_type.full_name)()


def make_key(stub: ledger_pb2_grpc.LedgerStub, scopes: list[str], tenant: str = "") -> admin_pb2.CreateApiKeyResponse:
    created: admin_pb2.CreateApiKeyResponse = stub.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(request_id=rid("key"), name="test", scopes=scopes, tenant=tenant))
    return created


@pytest.fixture(scope="module")
def keys(stub: ledger_pb2_grpc.LedgerStub) -> dict[str, str]:
    revoked = make_key(stub, [ADMIN])
    stub.RevokeCaller(admin_pb2.RevokeCallerRequest(request_id=rid(), caller_id=revoked.caller.id))
    return {
        "revoked": revoked.key,
        "events_only": make_key(stub, ["events:read"]).key,
        "reader": make_key(stub, ["accounts:read"]).key,
    }


def test_every_rpc_has_a_declared_scope() -> None:
    for method in SERVICE.methods:
        assert f"/{SERVICE.full_name}/{method.name}" in METHOD_SCOPES, method.name


@pytest.mark.parametrize("who", ["anonymous", "garbage", "malformed", "revoked", "wrong_scope"])
def test_refused_for_every_rpc(who: str, ledger_server: LedgerServer, keys: dict[str, str], database_url: str) -> None:
    key = {"anonymous": None, "garbage": "lk_" + "0" * 32 + "_" + "A" * 43, "malformed": "short",
           "revoked": keys["revoked"], "wrong_scope": keys["events_only"]}[who]
    expected = grpc.StatusCode.PERMISSION_DENIED if who == "wrong_scope" else grpc.StatusCode.UNAUTHENTICATED
    before = counts(database_url)
    with open_channel(ledger_server.target, key) as channel:
        for method in SERVICE.methods:
            if who == "wrong_scope" and required_scope(f"/{SERVICE.full_name}/{method.name}") == "events:read":
                continue
            assert call(channel, method, empty_request(method)) == expected, (who, method.name)
    assert counts(database_url) == before


def test_reader_scope_reads_but_cannot_write(stub: ledger_pb2_grpc.LedgerStub, ledger_server: LedgerServer,
                                             keys: dict[str, str]) -> None:
    asset = new_asset(stub)
    account = new_account(stub, asset)
    with open_channel(ledger_server.target, keys["reader"]) as channel:
        reader = ledger_pb2_grpc.LedgerStub(channel)
        assert reader.GetAccount(pb.GetAccountRequest(id=account.id)).id == account.id
        with pytest.raises(grpc.RpcError) as raised:
            reader.CreateAccount(pb.CreateAccountRequest(request_id=rid(), asset=asset))
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(raised.value) == "MISSING_SCOPE"


@pytest.fixture(scope="module")
def tenants(stub: ledger_pb2_grpc.LedgerStub, ledger_server: LedgerServer) -> Iterator[dict[str, Any]]:
    asset = new_asset(stub)
    scopes = ["accounts:read", "accounts:write", "transfers:write", "transfers:reverse"]
    acme_key, globex_key = make_key(stub, scopes, "acme").key, make_key(stub, scopes, "globex").key
    with open_channel(ledger_server.target, acme_key) as acme_channel, \
            open_channel(ledger_server.target, globex_key) as globex_channel:
        acme, globex = ledger_pb2_grpc.LedgerStub(acme_channel), ledger_pb2_grpc.LedgerStub(globex_channel)
        a1, a2 = new_account(acme, asset), new_account(acme, asset)
        g1 = new_account(globex, asset)
        assert a1.metadata["tenant"] == "acme" and g1.metadata["tenant"] == "globex"
        hold = transfer(acme, a1.id, a2.id, 5, asset, pending=True)
        posted = transfer(acme, a1.id, a2.id, 5, asset)
        yield {"asset": asset, "acme": acme, "globex": globex, "a1": a1.id, "a2": a2.id, "g1": g1.id,
               "hold": hold.id, "posted": posted.id}


def test_wrong_tenant_is_refused_for_every_account_rpc(tenants: dict[str, Any], database_url: str) -> None:
    t = tenants
    globex: ledger_pb2_grpc.LedgerStub = t["globex"]
    attempts = [
        ("GetAccount", pb.GetAccountRequest(id=t["a1"])),
        ("GetAccountBalance", pb.GetAccountBalanceRequest(account_id=t["a1"])),
        ("ListAccountEntries", pb.ListAccountEntriesRequest(account_id=t["a1"])),
        ("GetTransfer", pb.GetTransferRequest(id=t["posted"])),
        ("CreateTransfer", pb.CreateTransferRequest(request_id=rid(), debit_account_id=t["a1"],
                                                    credit_account_id=t["g1"], amount="1", asset=t["asset"])),
        ("CreateTransfers", pb.CreateTransfersRequest(request_id=rid(), transfers=[pb.CreateTransferRequest(
            request_id=rid(), debit_account_id=t["g1"], credit_account_id=t["a2"], amount="1", asset=t["asset"])])),
        ("PostPendingTransfer", pb.PostPendingTransferRequest(request_id=rid(), pending_id=t["hold"])),
        ("VoidPendingTransfer", pb.VoidPendingTransferRequest(request_id=rid(), pending_id=t["hold"])),
        ("ReverseTransfer", pb.ReverseTransferRequest(request_id=rid(), transfer_id=t["posted"])),
        ("CreateAccount", pb.CreateAccountRequest(request_id=rid(), asset=t["asset"], metadata={"tenant": "acme"})),
    ]
    before = counts(database_url)
    for method, request in attempts:
        with pytest.raises(grpc.RpcError) as raised:
            getattr(globex, method)(request)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
        assert error_reason(raised.value) == "TENANT_MISMATCH", method
    assert counts(database_url) == before
    listed = globex.ListAccounts(pb.ListAccountsRequest(asset=t["asset"]))
    assert [a.id for a in listed.accounts] == [t["g1"]]


def test_audit_names_the_caller(stub: ledger_pb2_grpc.LedgerStub, ledger_server: LedgerServer) -> None:
    writer = make_key(stub, ["accounts:write"])
    with open_channel(ledger_server.target, writer.key) as channel:
        request_id = rid("audited")
        ledger_pb2_grpc.LedgerStub(channel).CreateAccount(pb.CreateAccountRequest(
            request_id=request_id, asset=new_asset(stub)))
    records = stub.ListAuditRecords(admin_pb2.ListAuditRecordsRequest(caller=writer.caller.id)).records
    assert [(r.request_id, r.operation, r.code) for r in records] == [(request_id, "CreateAccount", 0)]


def test_api_key_secret_is_shown_once_and_stored_hashed(stub: ledger_pb2_grpc.LedgerStub, database_url: str) -> None:
    request = admin_pb2.CreateApiKeyRequest(request_id=rid(), name="svc", scopes=["accounts:read"])
    first = stub.CreateApiKey(request)
    again = stub.CreateApiKey(request)
    assert first.key.startswith("lk_") and again.key == "" and again.caller == first.caller
    secret = first.key[len("lk_") + 32 + 1:]  # the secret itself may contain "_"
    assert len(secret) == 43
    with psycopg.connect(database_url) as conn:
        dump = conn.execute("SELECT string_agg(t::text, ' ') FROM (SELECT * FROM callers) t").fetchone()[0]  # type: ignore[index]
        outcomes = conn.execute("SELECT string_agg(encode(outcome, 'escape'), ' ') FROM request_outcomes").fetchone()[0]  # type: ignore[index]
    assert secret not in dump and secret not in outcomes
    assert first.caller.id in [c.id for c in stub.ListCallers(admin_pb2.ListCallersRequest(page_size=1000)).callers]


def test_verify_ledger_rpc(stub: ledger_pb2_grpc.LedgerStub) -> None:
    report = stub.VerifyLedger(admin_pb2.VerifyLedgerRequest())
    assert report.ok and "assets_not_balanced" in report.checked
