"""The ledger.v1.LedgerEvents gRPC service: WatchEvents and the webhook management RPCs.

Same conventions as service Ledger: validation first (INVALID_ARGUMENT with a reason, nothing
written), mutations idempotent by request_id (replays carry `ledger-replayed: true`), errors as
rich statuses with a google.rpc.ErrorInfo, latency and outcome per method in the RPC metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import grpc
from psycopg_pool import ConnectionPool

from ledger.v1 import events_pb2, events_service_pb2_grpc, webhooks_pb2
from ledger_server import validation as v
from ledger_server.access.interceptor import current_principal
from ledger_server.access.tenancy import TenantGuard
from ledger_server.errors import LedgerError
from ledger_server.events.feed import OutboxFeed
from ledger_server.events.metrics import EventsMetrics
from ledger_server.events.stream import WatchLimiter, stream_events
from ledger_server.events.webhooks import deliveries, endpoints, idempotency
from ledger_server.events.webhooks import requests as r
from ledger_server.events.webhooks.url_policy import UrlPolicy
from ledger_server.metrics import Metrics
from ledger_server.rpc_handler import Handler, metered


def _rpc(handler: Handler) -> Handler:
    """The shared RPC decorator (rich status, metrics), for callers without a tenant only: an
    endpoint receives every tenant's events, so a tenant-limited caller may not manage them."""

    @functools.wraps(handler)
    def tenantless(self: LedgerEventsService, request: Any, context: grpc.ServicerContext) -> Any:
        if current_principal().tenant is not None:
            raise LedgerError(grpc.StatusCode.PERMISSION_DENIED, "TENANT_MISMATCH",
                              "webhooks carry every tenant's events: a tenant-limited caller may not manage them")
        return handler(self, request, context)

    return metered("rpc_metrics")(tenantless)


class LedgerEventsService(events_service_pb2_grpc.LedgerEventsServicer):
    def __init__(self, feed: OutboxFeed, pool: ConnectionPool[Any], metrics: EventsMetrics, rpc_metrics: Metrics,
                 policy: UrlPolicy, max_watchers: int, tenants: TenantGuard) -> None:
        self.feed = feed
        self.tenants = tenants
        self.pool = pool
        self.metrics = metrics
        self.rpc_metrics = rpc_metrics
        self.policy = policy
        self.limiter = WatchLimiter(max_watchers, metrics)

    def _mutate(self, command: Any, execute: idempotency.Execute, context: grpc.ServicerContext) -> bytes:
        outcome = idempotency.run_once(self.pool, command.request_id, command.operation, command.request_hash(),
                                       execute)
        if outcome.replayed:
            context.set_trailing_metadata((("ledger-replayed", "true"),))
        return outcome.response()

    def _with_secret(self, payload: bytes, request_id: str) -> webhooks_pb2.WebhookEndpoint:
        endpoint = webhooks_pb2.WebhookEndpoint.FromString(payload)
        endpoint.secret = endpoints.secret_of_request(self.pool, request_id)
        return endpoint

    # -- events -----------------------------------------------------------------------------------

    def WatchEvents(
        self, request: events_pb2.WatchEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[events_pb2.LedgerEvent]:
        # Streams are counted by ledger_events_watchers and ledger_events_streamed_total.
        yield from stream_events(self.feed, self.pool, self.metrics, self.limiter, self.tenants, request, context)

    # -- endpoints --------------------------------------------------------------------------------

    @_rpc
    def CreateWebhookEndpoint(
        self, request: webhooks_pb2.CreateWebhookEndpointRequest, context: grpc.ServicerContext
    ) -> webhooks_pb2.WebhookEndpoint:
        command = r.create_endpoint(request, self.policy)
        payload = self._mutate(command, lambda conn: endpoints.create(conn, command), context)
        return self._with_secret(payload, command.request_id)

    @_rpc
    def ListWebhookEndpoints(
        self, request: webhooks_pb2.ListWebhookEndpointsRequest, context: grpc.ServicerContext
    ) -> webhooks_pb2.ListWebhookEndpointsResponse:
        return endpoints.list_endpoints(self.pool, v.page_size(request.page_size), request.page_token)

    @_rpc
    def UpdateWebhookEndpoint(
        self, request: webhooks_pb2.UpdateWebhookEndpointRequest, context: grpc.ServicerContext
    ) -> webhooks_pb2.WebhookEndpoint:
        command = r.update_endpoint(request, self.policy)
        payload = self._mutate(command, lambda conn: endpoints.update(conn, command), context)
        return webhooks_pb2.WebhookEndpoint.FromString(payload)

    @_rpc
    def DisableWebhookEndpoint(
        self, request: webhooks_pb2.DisableWebhookEndpointRequest, context: grpc.ServicerContext
    ) -> webhooks_pb2.WebhookEndpoint:
        command = r.disable_endpoint(request)
        payload = self._mutate(command, lambda conn: endpoints.disable_by_request(conn, command), context)
        return webhooks_pb2.WebhookEndpoint.FromString(payload)

    @_rpc
    def RotateWebhookSecret(
        self, request: webhooks_pb2.RotateWebhookSecretRequest, context: grpc.ServicerContext
    ) -> webhooks_pb2.WebhookEndpoint:
        command = r.rotate_secret(request)
        payload = self._mutate(command, lambda conn: endpoints.rotate_secret(conn, command), context)
        return self._with_secret(payload, command.request_id)

    # -- deliveries -------------------------------------------------------------------------------

    @_rpc
    def ListDeadLetters(
        self, request: webhooks_pb2.ListDeadLettersRequest, context: grpc.ServicerContext
    ) -> webhooks_pb2.ListDeadLettersResponse:
        return deliveries.list_dead_letters(
            self.pool, r.optional_endpoint(request.endpoint_id), v.page_size(request.page_size), request.page_token
        )

    @_rpc
    def ReplayDeliveries(
        self, request: webhooks_pb2.ReplayDeliveriesRequest, context: grpc.ServicerContext
    ) -> webhooks_pb2.ReplayDeliveriesResponse:
        command = r.replay(request)
        payload = self._mutate(command, lambda conn: deliveries.replay(conn, command), context)
        return webhooks_pb2.ReplayDeliveriesResponse.FromString(payload)

    @_rpc
    def ListDeliveryAttempts(
        self, request: webhooks_pb2.ListDeliveryAttemptsRequest, context: grpc.ServicerContext
    ) -> webhooks_pb2.ListDeliveryAttemptsResponse:
        return deliveries.list_attempts(
            self.pool, v.identifier(request.delivery_id, "delivery_id"), v.page_size(request.page_size),
            request.page_token,
        )
