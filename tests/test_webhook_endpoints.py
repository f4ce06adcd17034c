"""Webhook endpoint management: secrets, idempotency by request_id, validation, disabling events."""

# ruff: noqa: F811 - the shared fixtures are imported by name, and tests take them as parameters
from __future__ import annotations

import threading

import grpc
import psycopg
import pytest

from ledger.v1 import events_pb2, events_service_pb2_grpc, ledger_pb2_grpc, webhooks_pb2
from ledger.v1 import ledger_pb2 as pb
from tests.events_api import max_sequence
from tests.ledger_api import error_reason, rid
from tests.webhook_fixtures import (  # noqa: F401 - fixtures, used by name
    events,
    ledger,
    receiver,
    webhook_channel,
    webhook_database,
    webhook_server,
)
from tests.webhook_receiver import WebhookReceiver

Stub = events_service_pb2_grpc.LedgerEventsStub


def _create(events: Stub, url: str, request_id: str | None = None, **fields: object) -> webhooks_pb2.WebhookEndpoint:
    endpoint: webhooks_pb2.WebhookEndpoint = events.CreateWebhookEndpoint(
        webhooks_pb2.CreateWebhookEndpointRequest(request_id=request_id or rid("hook"), url=url, **fields)  # type: ignore[arg-type]
    )
    return endpoint


def _listed(events: Stub) -> list[webhooks_pb2.WebhookEndpoint]:
    found: list[webhooks_pb2.WebhookEndpoint] = []
    token = ""
    while True:
        page = events.ListWebhookEndpoints(webhooks_pb2.ListWebhookEndpointsRequest(page_size=2, page_token=token))
        found.extend(page.endpoints)
        token = page.next_page_token
        if not token:
            return found


def test_create_returns_a_secret_once_and_list_never_shows_it(events: Stub, receiver: WebhookReceiver) -> None:
    endpoint = _create(events, receiver.url("/create"), event_types=[events_pb2.TRANSFER_POSTED],
                       description="payments")
    assert endpoint.id and endpoint.secret.startswith("whsec_")
    assert endpoint.state == webhooks_pb2.WEBHOOK_ENDPOINT_STATE_ENABLED
    assert list(endpoint.event_types) == [events_pb2.TRANSFER_POSTED]
    listed = {e.id: e for e in _listed(events)}
    assert listed[endpoint.id].url == endpoint.url and listed[endpoint.id].secret == ""


def test_create_is_idempotent_by_request_id(events: Stub, receiver: WebhookReceiver) -> None:
    request = webhooks_pb2.CreateWebhookEndpointRequest(request_id=rid("hook"), url=receiver.url("/idem"))
    first = events.CreateWebhookEndpoint(request)
    again, call = events.CreateWebhookEndpoint.with_call(request)
    assert again == first  # the same endpoint and the same secret, byte for byte
    assert ("ledger-replayed", "true") in call.trailing_metadata()
    other = webhooks_pb2.CreateWebhookEndpointRequest(request_id=request.request_id, url=receiver.url("/other"))
    with pytest.raises(grpc.RpcError) as raised:
        events.CreateWebhookEndpoint(other)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(raised.value) == "IDEMPOTENCY_KEY_REUSED"
    assert sum(1 for e in _listed(events) if e.id == first.id) == 1


def test_request_ids_are_shared_with_the_core(events: Stub, ledger: ledger_pb2_grpc.LedgerStub,
                                              receiver: WebhookReceiver) -> None:
    request_id = rid("shared")
    ledger.CreateAsset(pb.CreateAssetRequest(request_id=request_id, code="HOOKX", scale=2))
    with pytest.raises(grpc.RpcError) as raised:
        _create(events, receiver.url("/shared"), request_id=request_id)
    assert error_reason(raised.value) == "IDEMPOTENCY_KEY_REUSED"


def test_concurrent_duplicates_create_one_endpoint(events: Stub, receiver: WebhookReceiver) -> None:
    request = webhooks_pb2.CreateWebhookEndpointRequest(request_id=rid("race"), url=receiver.url("/race"))
    before = len(_listed(events))
    results: list[webhooks_pb2.WebhookEndpoint] = []
    barrier = threading.Barrier(16)

    def create() -> None:
        barrier.wait()
        results.append(events.CreateWebhookEndpoint(request))

    threads = [threading.Thread(target=create) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 16 and len({r.SerializeToString() for r in results}) == 1
    assert len(_listed(events)) == before + 1


@pytest.mark.parametrize(("url", "event_types", "reason"), [
    ("https://169.254.169.254/latest", [], "URL_NOT_ALLOWED"),
    ("https://[fe80::1]/hook", [], "URL_NOT_ALLOWED"),
    ("ftp://example.com/hook", [], "INVALID_URL"),
    ("", [], "MISSING_FIELD"),
    ("https://hooks.example.com/", [42], "INVALID_EVENT_TYPE"),
])
def test_bad_endpoints_are_refused_and_nothing_is_written(
    events: Stub, webhook_database: str, url: str, event_types: list[int], reason: str
) -> None:
    request_id = rid("bad")
    with pytest.raises(grpc.RpcError) as raised:
        _create(events, url, request_id=request_id, event_types=event_types)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(raised.value) == reason
    with psycopg.connect(webhook_database) as conn:
        assert conn.execute("SELECT 1 FROM request_outcomes WHERE request_id = %s", (request_id,)).fetchone() is None


def test_update_changes_url_and_filter(events: Stub, receiver: WebhookReceiver) -> None:
    endpoint = _create(events, receiver.url("/before"))
    updated = events.UpdateWebhookEndpoint(webhooks_pb2.UpdateWebhookEndpointRequest(
        request_id=rid("upd"), id=endpoint.id, url=receiver.url("/after"),
        event_types=webhooks_pb2.EventTypeSet(event_types=[events_pb2.HOLD_CREATED, events_pb2.HOLD_POSTED]),
    ))
    assert updated.url == receiver.url("/after") and updated.secret == ""
    assert list(updated.event_types) == [events_pb2.HOLD_CREATED, events_pb2.HOLD_POSTED]
    cleared = events.UpdateWebhookEndpoint(webhooks_pb2.UpdateWebhookEndpointRequest(
        request_id=rid("upd"), id=endpoint.id, event_types=webhooks_pb2.EventTypeSet()))
    assert list(cleared.event_types) == [] and cleared.url == updated.url


def test_unknown_endpoint_is_a_final_refusal(events: Stub) -> None:
    unknown = "01890a5d-ac96-774b-bcce-b302099a8057"
    request = webhooks_pb2.DisableWebhookEndpointRequest(request_id=rid("gone"), id=unknown)
    for _ in range(2):  # the refusal is bound to the request id: the retry gets the same answer
        with pytest.raises(grpc.RpcError) as raised:
            events.DisableWebhookEndpoint(request)
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(raised.value) == "WEBHOOK_ENDPOINT_NOT_FOUND"


def test_disabling_emits_an_event_and_re_enabling_restores(
    events: Stub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    endpoint = _create(events, receiver.url("/disable"))
    after = max_sequence(webhook_database)
    disabled = events.DisableWebhookEndpoint(webhooks_pb2.DisableWebhookEndpointRequest(
        request_id=rid("dis"), id=endpoint.id))
    assert disabled.state == webhooks_pb2.WEBHOOK_ENDPOINT_STATE_DISABLED
    assert disabled.disabled_reason == events_pb2.WEBHOOK_DISABLED_MANUALLY and disabled.HasField("disabled_at")
    stream = events.WatchEvents(events_pb2.WatchEventsRequest(
        after_sequence=after, event_types=[events_pb2.WEBHOOK_ENDPOINT_DISABLED]), timeout=10)
    event = next(iter(stream))
    stream.cancel()
    assert event.webhook_endpoint_disabled.endpoint_id == endpoint.id
    assert event.webhook_endpoint_disabled.reason == events_pb2.WEBHOOK_DISABLED_MANUALLY
    enabled = events.UpdateWebhookEndpoint(webhooks_pb2.UpdateWebhookEndpointRequest(
        request_id=rid("en"), id=endpoint.id, enabled=True))
    assert enabled.state == webhooks_pb2.WEBHOOK_ENDPOINT_STATE_ENABLED and not enabled.HasField("disabled_at")


def test_rotation_returns_a_new_secret_and_replays_it(events: Stub, receiver: WebhookReceiver) -> None:
    endpoint = _create(events, receiver.url("/rotate"))
    request = webhooks_pb2.RotateWebhookSecretRequest(request_id=rid("rot"), id=endpoint.id, grace_period_seconds=60)
    rotated = events.RotateWebhookSecret(request)
    assert rotated.secret.startswith("whsec_") and rotated.secret != endpoint.secret
    assert events.RotateWebhookSecret(request).secret == rotated.secret
    with pytest.raises(grpc.RpcError) as raised:
        events.RotateWebhookSecret(webhooks_pb2.RotateWebhookSecretRequest(
            request_id=rid("rot"), id=endpoint.id, grace_period_seconds=8 * 86400))
    assert error_reason(raised.value) == "INVALID_GRACE_PERIOD"


def test_secrets_never_reach_request_outcomes(events: Stub, receiver: WebhookReceiver, webhook_database: str) -> None:
    endpoint = _create(events, receiver.url("/nosecret"))
    with psycopg.connect(webhook_database) as conn:
        rows = conn.execute("SELECT outcome FROM request_outcomes WHERE operation LIKE %s", ("%Webhook%",)).fetchall()
    assert rows and all(endpoint.secret.encode() not in bytes(r[0]) for r in rows)
