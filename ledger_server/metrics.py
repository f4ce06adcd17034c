"""Prometheus metrics of the server, served on --metrics-listen."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One registry per server, so tests can run several servers in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rpc_total = Counter(
            "ledger_rpc_total", "RPCs by method and outcome", ["method", "code"], registry=r
        )
        self.rpc_seconds = Histogram(
            "ledger_rpc_seconds", "RPC latency by method and outcome", ["method", "code"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.batch_seconds = Histogram(
            "ledger_batch_seconds", "Time to apply and commit one batch", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.batch_jobs = Histogram(
            "ledger_batch_jobs", "Jobs per committed batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096), registry=r,
        )
        self.batch_retries = Counter(
            "ledger_batch_retries_total", "Batch transactions rolled back and retried, by cause", ["cause"],
            registry=r,
        )
        self.batch_path = Counter(
            "ledger_batch_path_total", "Committed batches by path: warm (accounts from the writer's memory, one "
            "round trip) or read", ["path"], registry=r,
        )
        self.warm_fallbacks = Counter(
            "ledger_warm_fallbacks_total", "Warm batches rolled back because a remembered row was not current "
            "(or a request id was already stored), then run on the read path", registry=r,
        )
        self.batch_splits = Counter(
            "ledger_batch_splits_total", "Batches split after repeated failures", registry=r
        )
        self.lock_wait_seconds = Histogram(
            "ledger_lock_wait_seconds", "Time to acquire a batch's advisory locks", buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("ledger_commit_queue_depth", "Jobs waiting for the group committer", registry=r)
        self.holds_expired = Counter("ledger_holds_expired_total", "Holds released on expiry", registry=r)
        self.pool_in_use = Gauge("ledger_read_pool_in_use", "Read connections in use", registry=r)
        self.auth_refusals = Counter(
            "ledger_auth_refusals_total", "Calls refused before any work, by cause", ["cause"], registry=r
        )
        self.pool_size = Gauge("ledger_read_pool_size", "Read connections open", registry=r)
