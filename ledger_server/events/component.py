"""Events and webhooks inside a ledger server: the feed, the LedgerEvents service, and optionally
an in-process webhook dispatcher. server.py wires it in with a few lines."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import grpc
from psycopg_pool import ConnectionPool

from ledger.v1 import events_service_pb2, events_service_pb2_grpc
from ledger_server.access.tenancy import TenantGuard
from ledger_server.events.feed import OutboxFeed
from ledger_server.events.metrics import EventsMetrics
from ledger_server.events.service import LedgerEventsService
from ledger_server.events.webhooks.config import DispatcherConfig
from ledger_server.events.webhooks.dispatcher import Dispatcher
from ledger_server.events.webhooks.url_policy import UrlPolicy
from ledger_server.metrics import Metrics

log = logging.getLogger(__name__)
SERVICE_NAME = events_service_pb2.DESCRIPTOR.services_by_name["LedgerEvents"].full_name


@dataclass(frozen=True)
class EventsConfig:
    max_watchers: int = 32               # each open stream holds one server thread
    fallback_poll_s: float = 1.0         # the feed's poll when no NOTIFY arrives
    webhooks: DispatcherConfig | None = None  # run a dispatcher in this process
    url_policy: UrlPolicy | None = None  # default: the dispatcher's, else LEDGER_WEBHOOKS_ALLOW_* variables


class EventsComponent:
    def __init__(self, database_url: str, pool: ConnectionPool[Any], rpc_metrics: Metrics, config: EventsConfig,
                 server: grpc.Server) -> None:
        metrics = EventsMetrics(rpc_metrics.registry)
        self._feed = OutboxFeed(database_url, metrics, config.fallback_poll_s)
        policy = config.url_policy or (config.webhooks.policy if config.webhooks else UrlPolicy.from_env())
        service = LedgerEventsService(self._feed, pool, metrics, rpc_metrics, policy, config.max_watchers,
                                      TenantGuard(pool))
        events_service_pb2_grpc.add_LedgerEventsServicer_to_server(service, server)
        self._dispatcher = Dispatcher(database_url, config.webhooks, metrics) if config.webhooks else None

    def start(self) -> None:
        self._feed.start()
        if self._dispatcher is not None:
            self._dispatcher.start()

    def stop(self) -> None:
        """End the streams (clients reconnect elsewhere) and the dispatcher; before the gRPC drain."""
        self._feed.stop()
        if self._dispatcher is not None:
            self._dispatcher.stop()
