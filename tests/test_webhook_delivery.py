"""Webhook delivery against a real HTTP receiver: headers and signatures, per-endpoint order,
retries, Retry-After, 410 Gone, redirects, timeouts, size caps, dead letters and replay, secret
rotation, disabling an endpoint that keeps failing."""

# ruff: noqa: F811 - the shared fixtures are imported by name, and tests take them as parameters
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import grpc
import psycopg
import pytest

from ledger.v1 import events_pb2, events_service_pb2_grpc, ledger_pb2_grpc, webhooks_pb2
from ledger_client.webhooks import WebhookVerificationError, verify
from ledger_server.events.webhooks.retry_schedule import RetrySchedule
from ledger_server.events.webhooks.url_policy import UrlPolicy
from tests.conftest import ServerProcess, open_channel
from tests.events_api import fast_dispatcher_config, max_sequence, running_dispatcher
from tests.ledger_api import error_reason, new_account, new_asset, rid, transfer
from tests.webhook_fixtures import (  # noqa: F401 - fixtures, used by name
    events,
    ledger,
    receiver,
    webhook_channel,
    webhook_database,
    webhook_server,
)
from tests.webhook_receiver import Behaviour, WebhookReceiver

Stub = events_service_pb2_grpc.LedgerEventsStub


def _wait(predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _endpoint(events: Stub, receiver: WebhookReceiver, path: str, *types: int) -> webhooks_pb2.WebhookEndpoint:
    endpoint: webhooks_pb2.WebhookEndpoint = events.CreateWebhookEndpoint(webhooks_pb2.CreateWebhookEndpointRequest(
        request_id=rid("hook"), url=receiver.url(path), event_types=list(types)))  # type: ignore[arg-type]
    receiver.secrets[path] = [endpoint.secret]
    return endpoint


def _transfers(ledger: ledger_pb2_grpc.LedgerStub, count: int) -> list[str]:
    asset = new_asset(ledger)
    a, b = new_account(ledger, asset).id, new_account(ledger, asset).id
    return [transfer(ledger, a, b, i + 1, asset).id for i in range(count)]


def _deliveries(database_url: str, endpoint_id: str) -> list[tuple[str, int, int]]:
    """(id, sequence, state) of an endpoint's deliveries, by sequence."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id::text, sequence, state FROM webhook_deliveries WHERE endpoint_id = %s "
                            "ORDER BY sequence", (uuid.UUID(endpoint_id),)).fetchall()
    return [(str(i), int(s), int(st)) for i, s, st in rows]


def _all_in_state(database_url: str, endpoint_id: str, state: int, count: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = _deliveries(database_url, endpoint_id)
        return len(rows) == count and all(r[2] == state for r in rows)

    return check


def test_delivery_is_signed_and_carries_the_event(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    endpoint = _endpoint(events, receiver, "/happy", events_pb2.TRANSFER_POSTED)
    with running_dispatcher(webhook_database, fast_dispatcher_config()):
        ids = _transfers(ledger, 3)
        _wait(lambda: len(receiver.successes("/happy")) >= 3, what="three deliveries")
    got = receiver.successes("/happy")
    assert [r.document["data"]["transfer"]["id"] for r in got] == ids  # only the subscribed type, in order
    for request in got:
        assert request.verified_with == (endpoint.secret,)
        assert request.document["type"] == "transfer.posted"
        assert abs(request.timestamp - time.time()) < 60
    rows = _deliveries(webhook_database, endpoint.id)
    assert [r[0] for r in rows] == [r.webhook_id for r in got] and all(r[2] == 2 for r in rows)
    attempts = events.ListDeliveryAttempts(webhooks_pb2.ListDeliveryAttemptsRequest(delivery_id=rows[0][0]))
    assert [(a.number, a.status_code, a.outcome) for a in attempts.attempts] == [
        (1, 200, webhooks_pb2.WEBHOOK_ATTEMPT_SUCCEEDED)]


def test_failures_retry_in_order_with_the_same_webhook_id(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    endpoint = _endpoint(events, receiver, "/flaky", events_pb2.TRANSFER_POSTED)
    receiver.behave("/flaky", Behaviour(fail_ratio=0.5))
    config = fast_dispatcher_config(schedule=RetrySchedule.parse(",".join(["0"] + ["20ms"] * 30), jitter=0.1))
    with running_dispatcher(webhook_database, config):
        _transfers(ledger, 12)
        _wait(_all_in_state(webhook_database, endpoint.id, 2, 12), what="all delivered")
    first_success: dict[str, int] = {}
    for request in receiver.successes("/flaky"):
        first_success.setdefault(request.webhook_id, request.sequence)
    assert list(first_success.values()) == sorted(first_success.values())
    by_id: dict[str, set[int]] = {}
    for request in receiver.requests("/flaky"):
        by_id.setdefault(request.webhook_id, set()).add(request.sequence)
    assert all(len(s) == 1 for s in by_id.values()), "a webhook-id was reused for another event"
    assert len(receiver.requests("/flaky")) > 12, "the receiver failed nothing: the test proves little"


def test_retry_after_is_honoured(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    endpoint = _endpoint(events, receiver, "/busy", events_pb2.TRANSFER_POSTED)
    receiver.behave("/busy", Behaviour(status=429, headers={"Retry-After": "2"}))
    with running_dispatcher(webhook_database, fast_dispatcher_config()):
        _transfers(ledger, 1)
        _wait(lambda: len(receiver.requests("/busy")) >= 1, what="the first attempt")
        receiver.behave("/busy", Behaviour())
        _wait(_all_in_state(webhook_database, endpoint.id, 2, 1), what="delivery after Retry-After")
    first, second = receiver.requests("/busy")[:2]
    assert second.at - first.at >= 1.9  # the schedule alone would have retried after 50 ms


def test_410_gone_disables_the_endpoint(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    endpoint = _endpoint(events, receiver, "/gone", events_pb2.TRANSFER_POSTED)
    receiver.behave("/gone", Behaviour(status=410))
    after = max_sequence(webhook_database)
    _transfers(ledger, 3)  # all three are queued before the first attempt
    with running_dispatcher(webhook_database, fast_dispatcher_config()):
        _wait(_all_in_state(webhook_database, endpoint.id, 3, 3), what="dead letters")
        _transfers(ledger, 1)  # a disabled endpoint gets nothing new
        time.sleep(0.3)
    assert len(receiver.requests("/gone")) == 1  # nothing more is sent to a receiver that is gone
    assert len(_deliveries(webhook_database, endpoint.id)) == 3
    listed = {e.id: e for e in events.ListWebhookEndpoints(webhooks_pb2.ListWebhookEndpointsRequest()).endpoints}
    assert listed[endpoint.id].state == webhooks_pb2.WEBHOOK_ENDPOINT_STATE_DISABLED
    assert listed[endpoint.id].disabled_reason == events_pb2.WEBHOOK_DISABLED_GONE
    stream = events.WatchEvents(events_pb2.WatchEventsRequest(
        after_sequence=after, event_types=[events_pb2.WEBHOOK_ENDPOINT_DISABLED]), timeout=10)
    event = next(iter(stream))
    stream.cancel()
    assert (event.webhook_endpoint_disabled.endpoint_id, event.webhook_endpoint_disabled.reason) == (
        endpoint.id, events_pb2.WEBHOOK_DISABLED_GONE)


def test_redirects_are_not_followed_and_answers_are_capped(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    moved = _endpoint(events, receiver, "/moved", events_pb2.TRANSFER_POSTED)
    receiver.behave("/moved", Behaviour(status=307, headers={"Location": receiver.url("/elsewhere")}))
    chatty = _endpoint(events, receiver, "/chatty", events_pb2.TRANSFER_POSTED)
    receiver.behave("/chatty", Behaviour(body=b"x" * 2_000_000))
    config = fast_dispatcher_config(schedule=RetrySchedule.parse("0,50ms"))
    with running_dispatcher(webhook_database, config):
        _transfers(ledger, 1)
        _wait(_all_in_state(webhook_database, moved.id, 3, 1), what="the redirect to fail")
        _wait(_all_in_state(webhook_database, chatty.id, 2, 1), what="the big answer to be delivered")
    assert receiver.requests("/elsewhere") == []
    dead = events.ListDeadLetters(webhooks_pb2.ListDeadLettersRequest(endpoint_id=moved.id)).deliveries
    assert dead[0].last_attempt.status_code == 307 and "not followed" in dead[0].last_attempt.error
    delivery_id = _deliveries(webhook_database, chatty.id)[0][0]
    attempts = events.ListDeliveryAttempts(webhooks_pb2.ListDeliveryAttemptsRequest(delivery_id=delivery_id))
    assert len(attempts.attempts[0].response_excerpt) <= 1024


def test_a_stalled_receiver_times_out(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    endpoint = _endpoint(events, receiver, "/slow", events_pb2.TRANSFER_POSTED)
    receiver.behave("/slow", Behaviour(stall_ratio=1.0, stall_s=1.5))
    config = fast_dispatcher_config(schedule=RetrySchedule.parse("0"), request_timeout_s=0.5, lease_s=2.0)
    with running_dispatcher(webhook_database, config):
        _transfers(ledger, 1)
        _wait(_all_in_state(webhook_database, endpoint.id, 3, 1), what="a dead letter")
    dead = events.ListDeadLetters(webhooks_pb2.ListDeadLettersRequest(endpoint_id=endpoint.id)).deliveries[0]
    assert dead.last_attempt.outcome == webhooks_pb2.WEBHOOK_ATTEMPT_TIMED_OUT
    assert 400 <= dead.last_attempt.duration_ms < 1400


def test_forbidden_addresses_are_refused_at_send_time(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    """The server accepted a loopback URL (development), a production dispatcher refuses to call it."""
    endpoint = _endpoint(events, receiver, "/internal", events_pb2.TRANSFER_POSTED)
    config = fast_dispatcher_config(policy=UrlPolicy(allow_http=True), schedule=RetrySchedule.parse("0"))
    with running_dispatcher(webhook_database, config):
        _transfers(ledger, 1)
        _wait(_all_in_state(webhook_database, endpoint.id, 3, 1), what="a dead letter")
    assert receiver.requests("/internal") == []
    dead = events.ListDeadLetters(webhooks_pb2.ListDeadLettersRequest(endpoint_id=endpoint.id)).deliveries[0]
    assert dead.last_attempt.outcome == webhooks_pb2.WEBHOOK_ATTEMPT_ADDRESS_REFUSED


def test_dead_letters_then_replay_delivers_everything_in_order(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    """Acceptance 3: down past the schedule -> dead-letter list; back up -> a replay delivers all, in order."""
    endpoint = _endpoint(events, receiver, "/down", events_pb2.TRANSFER_POSTED)
    receiver.behave("/down", Behaviour(status=503))
    with running_dispatcher(webhook_database, fast_dispatcher_config()):
        ids = _transfers(ledger, 5)
        _wait(_all_in_state(webhook_database, endpoint.id, 3, 5), what="five dead letters")
        dead = events.ListDeadLetters(webhooks_pb2.ListDeadLettersRequest(endpoint_id=endpoint.id, page_size=2))
        listed = list(dead.deliveries)
        while dead.next_page_token:
            dead = events.ListDeadLetters(webhooks_pb2.ListDeadLettersRequest(
                endpoint_id=endpoint.id, page_size=2, page_token=dead.next_page_token))
            listed.extend(dead.deliveries)
        assert [d.sequence for d in listed] == sorted(d.sequence for d in listed) and len(listed) == 5
        assert all(d.attempt_count == 3 and d.state == webhooks_pb2.WEBHOOK_DELIVERY_DEAD for d in listed)
        assert all(d.last_attempt.status_code == 503 for d in listed)
        failed_attempts = len(receiver.requests("/down"))
        assert failed_attempts == 15

        receiver.behave("/down", Behaviour())
        replay = webhooks_pb2.ReplayDeliveriesRequest(
            request_id=rid("replay"), endpoint_range=webhooks_pb2.SequenceRange(endpoint_id=endpoint.id))
        replayed = events.ReplayDeliveries(replay)
        assert replayed.replayed_count == 5 and not replayed.truncated
        assert events.ReplayDeliveries(replay).replayed_count == 5  # idempotent: not queued twice
        _wait(_all_in_state(webhook_database, endpoint.id, 2, 5), what="the replay")
    delivered = receiver.successes("/down")
    assert [r.document["data"]["transfer"]["id"] for r in delivered] == ids
    assert [r.webhook_id for r in delivered] == [d.id for d in listed]  # the same webhook-id as before
    assert events.ListDeadLetters(webhooks_pb2.ListDeadLettersRequest(endpoint_id=endpoint.id)).deliveries == []


def test_replay_of_one_delivery_and_since_a_time(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    endpoint = _endpoint(events, receiver, "/again", events_pb2.TRANSFER_POSTED)
    with running_dispatcher(webhook_database, fast_dispatcher_config()):
        _transfers(ledger, 2)
        _wait(_all_in_state(webhook_database, endpoint.id, 2, 2), what="delivery")
        first_id = _deliveries(webhook_database, endpoint.id)[0][0]
        one = events.ReplayDeliveries(webhooks_pb2.ReplayDeliveriesRequest(request_id=rid("r1"), delivery_id=first_id))
        assert one.replayed_count == 1
        _wait(lambda: len(receiver.successes("/again")) == 3, what="the replayed delivery")
        since = webhooks_pb2.DeliveriesSince(endpoint_id=endpoint.id)
        since.since.FromSeconds(int(time.time()) - 600)
        nothing_dead = events.ReplayDeliveries(webhooks_pb2.ReplayDeliveriesRequest(request_id=rid("r2"), since=since))
        assert nothing_dead.replayed_count == 0
        everything = events.ReplayDeliveries(webhooks_pb2.ReplayDeliveriesRequest(
            request_id=rid("r3"), since=since, include_delivered=True))
        assert everything.replayed_count == 2
        _wait(lambda: len(receiver.successes("/again")) == 5, what="the replay since a time")
    ids = [r.webhook_id for r in receiver.successes("/again")]
    assert ids[2] == ids[0] and ids[3:] == ids[:2]
    with pytest.raises(grpc.RpcError) as raised:
        events.ReplayDeliveries(webhooks_pb2.ReplayDeliveriesRequest(
            request_id=rid("r4"), delivery_id=str(uuid.uuid4())))
    assert error_reason(raised.value) == "DELIVERY_NOT_FOUND"


def test_secret_rotation_old_and_new_both_sign_during_the_grace_period(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    """Acceptance 4: receivers holding the old or the new secret accept; after the grace period only
    the new one signs, and a receiver with the stale secret rejects (401) until it updates."""
    endpoint = _endpoint(events, receiver, "/rotating", events_pb2.TRANSFER_POSTED)
    old = endpoint.secret
    receiver.behave("/rotating", Behaviour(reject_unverified=True))
    config = fast_dispatcher_config(schedule=RetrySchedule.parse(",".join(["0"] + ["100ms"] * 40), jitter=0))
    with running_dispatcher(webhook_database, config):
        _transfers(ledger, 1)
        _wait(lambda: len(receiver.successes("/rotating")) == 1, what="a delivery under the first secret")
        new = events.RotateWebhookSecret(webhooks_pb2.RotateWebhookSecretRequest(
            request_id=rid("rot"), id=endpoint.id, grace_period_seconds=2)).secret
        receiver.secrets["/rotating"] = [old, new]
        _transfers(ledger, 1)
        _wait(lambda: len(receiver.successes("/rotating")) == 2, what="a delivery during the grace period")
        during = receiver.successes("/rotating")[1]
        assert set(during.verified_with) == {old, new} and len(during.signature.split(" ")) == 2
        time.sleep(2.2)  # the grace period ends
        receiver.secrets["/rotating"] = [old]  # a receiver that never updated its secret
        _transfers(ledger, 1)
        _wait(lambda: any(r.status == 401 for r in receiver.requests("/rotating")), what="a rejected delivery")
        stale = next(r for r in receiver.requests("/rotating") if r.status == 401)
        assert len(stale.signature.split(" ")) == 1
        with pytest.raises(WebhookVerificationError):
            verify(old, stale.body, {"webhook-id": stale.webhook_id, "webhook-timestamp": str(stale.timestamp),
                                     "webhook-signature": stale.signature})
        receiver.secrets["/rotating"] = [new]  # the receiver updates: the retries now succeed
        _wait(lambda: len(receiver.successes("/rotating")) == 3, what="the retry under the new secret")


def test_an_endpoint_failing_too_long_is_disabled(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    endpoint = _endpoint(events, receiver, "/broken", events_pb2.TRANSFER_POSTED)
    receiver.behave("/broken", Behaviour(status=500))
    config = fast_dispatcher_config(schedule=RetrySchedule.parse(",".join(["0"] + ["100ms"] * 40)),
                                    disable_after_s=1.0)
    with running_dispatcher(webhook_database, config):
        _transfers(ledger, 2)
        _wait(_all_in_state(webhook_database, endpoint.id, 3, 2), what="the endpoint to be disabled")
    listed = {e.id: e for e in events.ListWebhookEndpoints(webhooks_pb2.ListWebhookEndpointsRequest()).endpoints}
    assert listed[endpoint.id].disabled_reason == events_pb2.WEBHOOK_DISABLED_FAILING
    assert listed[endpoint.id].HasField("failing_since")
    with pytest.raises(grpc.RpcError) as raised:  # replays wait for the endpoint to be enabled again
        events.ReplayDeliveries(webhooks_pb2.ReplayDeliveriesRequest(
            request_id=rid("r"), endpoint_range=webhooks_pb2.SequenceRange(endpoint_id=endpoint.id)))
    assert error_reason(raised.value) == "WEBHOOK_ENDPOINT_NOT_ENABLED"


def test_attempt_history_is_append_only_and_kept_for_the_retention_floor(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    endpoint = _endpoint(events, receiver, "/history", events_pb2.TRANSFER_POSTED)
    with running_dispatcher(webhook_database, fast_dispatcher_config()):
        _transfers(ledger, 1)
        _wait(_all_in_state(webhook_database, endpoint.id, 2, 1), what="a delivery")
    with psycopg.connect(webhook_database) as conn:
        row = conn.execute("SELECT id FROM webhook_attempts LIMIT 1").fetchone()
        assert row is not None
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("UPDATE webhook_attempts SET error = 'x' WHERE id = %s", (row[0],))
        conn.rollback()
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("DELETE FROM webhook_attempts WHERE id = %s", (row[0],))
        conn.rollback()
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("DELETE FROM webhook_deliveries WHERE true")


def test_body_is_the_event_in_json(events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver,
                                   webhook_database: str) -> None:
    _endpoint(events, receiver, "/json", events_pb2.ACCOUNT_CREATED)
    with running_dispatcher(webhook_database, fast_dispatcher_config()):
        asset = new_asset(ledger)
        account = new_account(ledger, asset, metadata={"customer": "c-1"})
        _wait(lambda: len(receiver.successes("/json")) == 1, what="the account event")
    document = json.loads(receiver.successes("/json")[0].body)
    assert document["type"] == "account.created"
    assert document["data"]["account"]["id"] == account.id
    assert document["data"]["account"]["metadata"] == {"customer": "c-1"}
    assert document["data"]["account_ids"] == [account.id]
    assert int(document["data"]["sequence"]) > 0 and document["timestamp"].endswith("Z")


def test_retention_purges_only_old_final_deliveries(
    events: Stub, ledger: ledger_pb2_grpc.LedgerStub, receiver: WebhookReceiver, webhook_database: str
) -> None:
    from ledger_server.events.webhooks.dispatcher import purge_expired

    endpoint = _endpoint(events, receiver, "/retention", events_pb2.TRANSFER_POSTED)
    with running_dispatcher(webhook_database, fast_dispatcher_config()):
        _transfers(ledger, 2)
        _wait(_all_in_state(webhook_database, endpoint.id, 2, 2), what="deliveries")
    old_id, young_id = (row[0] for row in _deliveries(webhook_database, endpoint.id))
    with psycopg.connect(webhook_database, autocommit=True) as conn:
        # Age one delivery and its attempts past the 90-day retention (as a migration-level fixup
        # would; the triggers only guard deletes and attempt updates, so disable them for this).
        conn.execute("ALTER TABLE webhook_attempts DISABLE TRIGGER webhook_attempts_append_only")
        conn.execute("UPDATE webhook_attempts SET created_at = now() - interval '100 days' WHERE delivery_id = %s",
                     (uuid.UUID(old_id),))
        conn.execute("ALTER TABLE webhook_attempts ENABLE TRIGGER webhook_attempts_append_only")
        conn.execute("UPDATE webhook_deliveries SET created_at = now() - interval '100 days' WHERE id = %s",
                     (uuid.UUID(old_id),))
        assert purge_expired(conn, 90 * 86400.0) == 1
        left = {str(r[0]) for r in conn.execute(
            "SELECT id FROM webhook_deliveries WHERE endpoint_id = %s", (uuid.UUID(endpoint.id),)).fetchall()}
        assert left == {young_id}
        assert conn.execute("SELECT count(*) FROM webhook_attempts WHERE delivery_id = %s",
                            (uuid.UUID(old_id),)).fetchone() == (0,)


def test_ledger_server_runs_the_dispatcher_in_process(
    server_process: Callable[..., ServerProcess], receiver: WebhookReceiver, webhook_database: str
) -> None:
    """`ledger-server --webhooks-in-process` (here through its environment variables)."""
    env = {"LEDGER_WEBHOOKS_IN_PROCESS": "1", "LEDGER_WEBHOOKS_ALLOW_LOOPBACK": "1", "LEDGER_WEBHOOKS_ALLOW_HTTP": "1",
           "LEDGER_WEBHOOKS_SCHEDULE": "0,50ms,100ms", "LEDGER_WEBHOOKS_POLL": "200ms"}
    server = server_process(webhook_database, extra_env=env).start()
    try:
        with open_channel(server.target) as channel:
            events = events_service_pb2_grpc.LedgerEventsStub(channel)
            endpoint = _endpoint(events, receiver, "/in-process", events_pb2.TRANSFER_POSTED)
            _transfers(ledger_pb2_grpc.LedgerStub(channel), 2)
            _wait(_all_in_state(webhook_database, endpoint.id, 2, 2), what="in-process delivery")
    finally:
        assert server.terminate() == 0
    assert all(r.verified_with for r in receiver.successes("/in-process"))
