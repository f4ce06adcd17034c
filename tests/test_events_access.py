"""Access control on service LedgerEvents: scopes per RPC, and tenant-limited callers confined to
their own accounts' events (and kept away from webhooks, which carry every tenant's events)."""

from __future__ import annotations

import grpc
import pytest

from ledger.v1 import admin_pb2, events_pb2, events_service_pb2, events_service_pb2_grpc, ledger_pb2_grpc, webhooks_pb2
from ledger_server.access.scopes import METHOD_SCOPES
from ledger_server.server import LedgerServer
from tests.conftest import open_channel
from tests.ledger_api import error_reason, new_account, new_asset, rid, transfer

SERVICE = events_service_pb2.DESCRIPTOR.services_by_name["LedgerEvents"]


def _key(stub: ledger_pb2_grpc.LedgerStub, scopes: list[str], tenant: str = "") -> str:
    created: admin_pb2.CreateApiKeyResponse = stub.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(request_id=rid("key"), name="events-test", scopes=scopes, tenant=tenant))
    return created.key


def test_every_events_rpc_has_a_declared_scope() -> None:
    for method in SERVICE.methods:
        assert f"/{SERVICE.full_name}/{method.name}" in METHOD_SCOPES, method.name


def test_scopes_separate_watching_from_managing_webhooks(
    stub: ledger_pb2_grpc.LedgerStub, ledger_server: LedgerServer
) -> None:
    new_asset(stub)  # at least one event to watch
    create = webhooks_pb2.CreateWebhookEndpointRequest(request_id=rid(), url="https://hooks.example.com/ledger")
    with open_channel(ledger_server.target, _key(stub, ["events:read"])) as channel:
        events = events_service_pb2_grpc.LedgerEventsStub(channel)
        stream = events.WatchEvents(events_pb2.WatchEventsRequest(), timeout=10)
        assert next(iter(stream)).sequence > 0
        stream.cancel()
        with pytest.raises(grpc.RpcError) as raised:
            events.CreateWebhookEndpoint(create)
        assert (raised.value.code(), error_reason(raised.value)) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE")
    with open_channel(ledger_server.target, _key(stub, ["webhooks:write"])) as channel:
        assert events_service_pb2_grpc.LedgerEventsStub(channel).CreateWebhookEndpoint(create).secret
    with open_channel(ledger_server.target, None) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            next(iter(events_service_pb2_grpc.LedgerEventsStub(channel).WatchEvents(events_pb2.WatchEventsRequest())))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_tenant_sees_only_its_accounts_and_manages_no_webhooks(
    stub: ledger_pb2_grpc.LedgerStub, ledger_server: LedgerServer
) -> None:
    asset = new_asset(stub)
    writer_scopes = ["accounts:read", "accounts:write", "transfers:write"]
    with open_channel(ledger_server.target, _key(stub, writer_scopes, "acme")) as acme_channel, \
            open_channel(ledger_server.target, _key(stub, writer_scopes, "globex")) as globex_channel:
        acme, globex = ledger_pb2_grpc.LedgerStub(acme_channel), ledger_pb2_grpc.LedgerStub(globex_channel)
        a1, a2, g1 = new_account(acme, asset).id, new_account(acme, asset).id, new_account(globex, asset).id
        moved = transfer(acme, a1, a2, 7, asset)
    key = _key(stub, ["events:read", "webhooks:write"], "acme")
    with open_channel(ledger_server.target, key) as channel:
        events = events_service_pb2_grpc.LedgerEventsStub(channel)
        for request in (events_pb2.WatchEventsRequest(), events_pb2.WatchEventsRequest(account_ids=[a1, g1])):
            with pytest.raises(grpc.RpcError) as raised:
                next(iter(events.WatchEvents(request, timeout=10)))
            assert (raised.value.code(), error_reason(raised.value)) == (
                grpc.StatusCode.PERMISSION_DENIED, "TENANT_MISMATCH")
        stream = events.WatchEvents(events_pb2.WatchEventsRequest(
            account_ids=[a1], event_types=[events_pb2.TRANSFER_POSTED]), timeout=10)
        assert next(iter(stream)).transfer.id == moved.id
        stream.cancel()
        with pytest.raises(grpc.RpcError) as raised:
            events.ListWebhookEndpoints(webhooks_pb2.ListWebhookEndpointsRequest())
        assert error_reason(raised.value) == "TENANT_MISMATCH"
