"""Assembles one ledger server: posting engine, group committer, reads, gRPC, health, metrics."""

from __future__ import annotations

import logging
import pathlib
import sys
import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server
from psycopg_pool import ConnectionPool

from ledger.v1 import ledger_pb2, ledger_pb2_grpc
from ledger_server.access.callers import CallerDirectory
from ledger_server.access.interceptor import AccessInterceptor
from ledger_server.access.rate_limit import RateLimiter
from ledger_server.access.tenancy import TenantGuard
from ledger_server.events.component import SERVICE_NAME as EVENTS_SERVICE_NAME
from ledger_server.events.component import EventsComponent, EventsConfig
from ledger_server.expiry import HoldExpirer
from ledger_server.group_commit import Committer, GroupCommitter
from ledger_server.metrics import Metrics
from ledger_server.posting import PostingEngine
from ledger_server.reads import Reads
from ledger_server.service import LedgerService
from ledger_server.writer_process import WriterProcessCommitter

log = logging.getLogger(__name__)
SERVICE_NAME = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].full_name
MESSAGE_BYTES_MAX = 32 * 1024 * 1024  # a full 8000-item batch with metadata fits


@dataclass(frozen=True)
class ServerConfig:
    listen: str
    database_url: str
    metrics_listen: str | None = None
    redis_url: str | None = None
    worker_threads: int = 64
    max_concurrent_rpcs: int = 2000
    read_pool_size: int = 8
    commit_timeout_s: float = 10.0
    hold_expiry_interval_s: float = 1.0
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    rate_limit_per_s: float = 2000.0
    rate_limit_burst: float = 4000.0
    rate_limit_fail_open: bool = True
    reuse_port: bool = False  # several processes share the port (replicas.py); else a taken port fails
    # How long a Python thread may hold the interpreter lock while another waits (CPython: 5 ms).
    # A writer thread (writer_process=False) waits for it after every database round trip; 0.5 ms
    # lowered the open-loop p99 at 500/s from 90-108 to 40-62 ms then (benchmarks/README.md); the
    # thread reading the writer process's answers waits for it once per batch. Process-wide.
    gil_switch_interval_s: float = 0.0005
    # The group-commit writer in a child process with its own interpreter lock (writer_process.py);
    # False: a thread of this process, as before (benchmarks/README.md has both measured).
    writer_process: bool = True
    # The writer's warm path (posting.py): transfers between accounts it committed before skip the
    # read round trip. False: every batch reads (`ledger-server --no-warm-path`).
    warm_path: bool = True
    # A directory shared by the server processes of one host (replicas.py): they share one writer
    # process, elected there (writer_process.py). None: this server starts a writer of its own.
    writer_socket_dir: str | None = None
    events: EventsConfig = field(default_factory=EventsConfig)  # WatchEvents, webhooks

    def __post_init__(self) -> None:
        assert 0.0001 <= self.gil_switch_interval_s <= 0.1, "GIL switch interval: 0.1 ms to 100 ms"


class LedgerServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self._pool: ConnectionPool[Any] = ConnectionPool(
            config.database_url, min_size=1, max_size=config.read_pool_size, kwargs={"autocommit": True},
            open=True, timeout=10, name="ledger-reads",
        )
        pool = self._pool
        self.metrics.pool_size.set_function(lambda: float(pool.get_stats().get("pool_size", 0)))
        self.metrics.pool_in_use.set_function(
            lambda: float(pool.get_stats().get("pool_size", 0) - pool.get_stats().get("pool_available", 0))
        )
        self._committer: Committer = (
            WriterProcessCommitter(config.database_url, self.metrics, warm_path=config.warm_path,
                                   socket_dir=config.writer_socket_dir)
            if config.writer_process
            else GroupCommitter(PostingEngine(config.database_url, self.metrics, warm_path=config.warm_path),
                                self.metrics)
        )
        self._expirer = HoldExpirer(self._pool, self._committer, self.metrics, config.hold_expiry_interval_s)
        self.callers = CallerDirectory(self._pool)
        limiter = RateLimiter(config.redis_url, config.rate_limit_per_s, config.rate_limit_burst,
                              fail_open=config.rate_limit_fail_open)
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.worker_threads, thread_name_prefix="rpc"),
            interceptors=[AccessInterceptor(self.callers, limiter, self.metrics)],
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
                ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
                ("grpc.max_metadata_size", 16 * 1024),
                ("grpc.so_reuseport", int(config.reuse_port)),
            ],
        )
        service = LedgerService(
            self._committer, Reads(self._pool), self.metrics, config.commit_timeout_s, TenantGuard(self._pool),
            self.callers, config.database_url, self._pool,
        )
        ledger_pb2_grpc.add_LedgerServicer_to_server(service, self._grpc)
        self._events = EventsComponent(config.database_url, self._pool, self.metrics, config.events, self._grpc)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        reflection.enable_server_reflection(
            (SERVICE_NAME, EVENTS_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self._grpc
        )
        self.port = self._bind(config)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {config.listen}")
        self._metrics_server: Any = None
        self._stopped = threading.Event()

    def _bind(self, config: ServerConfig) -> int:
        if not config.tls_cert:
            return int(self._grpc.add_insecure_port(config.listen))
        assert config.tls_key, "--tls-key goes with --tls-cert"
        key = pathlib.Path(config.tls_key).read_bytes()
        chain = pathlib.Path(config.tls_cert).read_bytes()
        client_ca = pathlib.Path(config.tls_client_ca).read_bytes() if config.tls_client_ca else None
        # With a client CA every connection must present a certificate it signed (mutual TLS); a bearer
        # key on the call still names the caller when present. Without one: TLS plus bearer keys.
        credentials = grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None,
        )
        return int(self._grpc.add_secure_port(config.listen, credentials))

    @property
    def target(self) -> str:
        host = self.config.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def start(self) -> LedgerServer:
        sys.setswitchinterval(self.config.gil_switch_interval_s)
        if self.config.metrics_listen:
            host, _, port = self.config.metrics_listen.rpartition(":")
            self._metrics_server = start_http_server(int(port), addr=host or "0.0.0.0", registry=self.metrics.registry)
        self._events.start()
        self._grpc.start()
        for name in ("", SERVICE_NAME, EVENTS_SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("ledger serving on %s", self.target)
        return self

    def stop(self, grace_s: float = 10.0) -> None:
        """Drain: refuse new calls, let in-flight ones finish (their commits included), then close."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._health.enter_graceful_shutdown()
        self._events.stop()
        self._grpc.stop(grace_s).wait()
        self._expirer.stop()
        self._committer.stop()
        self._pool.close()
        if self._metrics_server is not None:
            server = self._metrics_server[0] if isinstance(self._metrics_server, tuple) else self._metrics_server
            server.shutdown()
        log.info("ledger stopped")

    def wait(self) -> None:
        self._grpc.wait_for_termination()
