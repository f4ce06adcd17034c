"""Prometheus metrics of event delivery, registered on the server's (or the dispatcher's) registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class EventsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.watermark = Gauge(
            "ledger_events_watermark", "Highest outbox sequence known to be final (no lower one can appear)",
            registry=r,
        )
        self.watermark_probe_seconds = Histogram(
            "ledger_events_watermark_probe_seconds", "Time to probe the watermark and read new events",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.watchers = Gauge("ledger_events_watchers", "Open WatchEvents streams", registry=r)
        self.streamed = Counter("ledger_events_streamed_total", "Events sent on WatchEvents streams", registry=r)
        self.attempts = Counter(
            "ledger_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"], registry=r
        )
        self.attempt_seconds = Histogram(
            "ledger_webhook_attempt_seconds", "Duration of webhook delivery attempts", buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dead = Counter("ledger_webhook_dead_total", "Deliveries moved to the dead-letter state", registry=r)
        self.fanned_out = Counter(
            "ledger_webhook_deliveries_created_total", "Deliveries created from outbox events", registry=r
        )
        self.endpoints_disabled = Counter(
            "ledger_webhook_endpoints_disabled_total", "Endpoints disabled by the dispatcher", ["reason"], registry=r
        )
        self.in_flight = Gauge("ledger_webhook_in_flight", "Endpoints being delivered to right now", registry=r)
