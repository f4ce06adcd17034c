"""Fixtures of the webhook tests: a server that accepts loopback receivers, a receiver, a dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from ledger.v1 import events_service_pb2_grpc, ledger_pb2_grpc
from ledger_server.access.callers import provision_admin_key
from ledger_server.events.component import EventsConfig
from ledger_server.server import LedgerServer, ServerConfig
from tests.conftest import ADMIN_KEY, open_channel
from tests.events_api import DEV_POLICY
from tests.webhook_receiver import WebhookReceiver


@pytest.fixture(scope="module")
def webhook_database(new_database: Callable[[], str]) -> str:
    return new_database()


@pytest.fixture(scope="module")
def webhook_server(webhook_database: str) -> Iterator[LedgerServer]:
    """Endpoint URLs on 127.0.0.1 are accepted (development policy); no dispatcher in process."""
    provision_admin_key(webhook_database, ADMIN_KEY)
    config = ServerConfig(listen="127.0.0.1:0", database_url=webhook_database,
                          events=EventsConfig(url_policy=DEV_POLICY))
    server = LedgerServer(config).start()
    yield server
    server.stop(grace_s=5)


@pytest.fixture(scope="module")
def webhook_channel(webhook_server: LedgerServer) -> Iterator[grpc.Channel]:
    with open_channel(webhook_server.target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield channel


@pytest.fixture(scope="module")
def events(webhook_channel: grpc.Channel) -> events_service_pb2_grpc.LedgerEventsStub:
    return events_service_pb2_grpc.LedgerEventsStub(webhook_channel)


@pytest.fixture(scope="module")
def ledger(webhook_channel: grpc.Channel) -> ledger_pb2_grpc.LedgerStub:
    return ledger_pb2_grpc.LedgerStub(webhook_channel)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()
