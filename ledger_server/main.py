"""`ledger-server`: run the ledger. With no database URL it starts an embedded PostgreSQL."""

from __future__ import annotations

import argparse
import base64
import logging
import os
import pathlib
import secrets
import signal
import sys
import threading
from collections.abc import Sequence

from ledger_server import replicas
from ledger_server.access.callers import provision_admin_key
from ledger_server.events.component import EventsConfig
from ledger_server.events.webhooks import config as webhooks_config
from ledger_server.gc_pauses import freeze_startup_heap
from ledger_server.migrate import migrate
from ledger_server.server import LedgerServer, ServerConfig

log = logging.getLogger("ledger_server")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="ledger-server", description=__doc__)
    parser.add_argument("--listen", default=env("LEDGER_LISTEN", "127.0.0.1:50051"),
                        help="gRPC address (env LEDGER_LISTEN, default 127.0.0.1:50051)")
    parser.add_argument("--database-url", default=env("LEDGER_DATABASE_URL"),
                        help="PostgreSQL URL (env LEDGER_DATABASE_URL); embedded PostgreSQL when unset")
    parser.add_argument("--redis-url", default=env("LEDGER_REDIS_URL"),
                        help="Redis URL for rate limits and caches (env LEDGER_REDIS_URL); optional")
    parser.add_argument("--metrics-listen", default=env("LEDGER_METRICS_LISTEN"),
                        help="Prometheus address, e.g. 127.0.0.1:9464 (env LEDGER_METRICS_LISTEN)")
    parser.add_argument("--state-dir", default=env("LEDGER_STATE_DIR", ".state"),
                        help="where the embedded PostgreSQL keeps its data (env LEDGER_STATE_DIR)")
    parser.add_argument("--grace-seconds", type=float, default=float(env("LEDGER_GRACE_SECONDS", "10")),
                        help="how long SIGTERM waits for in-flight calls")
    parser.add_argument("--tls-cert", default=env("LEDGER_TLS_CERT"), help="server certificate chain (PEM)")
    parser.add_argument("--tls-key", default=env("LEDGER_TLS_KEY"), help="server private key (PEM)")
    parser.add_argument("--tls-client-ca", default=env("LEDGER_TLS_CLIENT_CA"),
                        help="CA of client certificates: enables mutual TLS callers")
    parser.add_argument("--rate-limit", type=float, default=float(env("LEDGER_RATE_LIMIT", "2000")),
                        help="requests per second per caller (token bucket refill)")
    parser.add_argument("--rate-limit-burst", type=float, default=float(env("LEDGER_RATE_LIMIT_BURST", "4000")))
    parser.add_argument("--rate-limit-fail-closed", action="store_true",
                        default=env("LEDGER_RATE_LIMIT_FAIL_CLOSED", "") == "1",
                        help="refuse calls while Redis is down (default: fall back to per-replica buckets)")
    parser.add_argument("--worker-threads", type=int, default=int(env("LEDGER_WORKER_THREADS", "64")),
                        help="gRPC handler threads (env LEDGER_WORKER_THREADS; each open WatchEvents stream "
                             "holds one)")
    parser.add_argument("--processes", type=int, default=int(env("LEDGER_PROCESSES", "1")),
                        help="server processes sharing the port (env LEDGER_PROCESSES; metrics on consecutive "
                             "ports from --metrics-listen)")
    parser.add_argument("--shared-writer", action=argparse.BooleanOptionalAction,
                        default=env("LEDGER_SHARED_WRITER", "1") != "0",
                        help="with --processes N: one writer process commits for all of them (default); "
                             "--no-shared-writer (env LEDGER_SHARED_WRITER=0) gives each its own")
    parser.add_argument("--gil-switch-interval-ms", type=float,
                        default=float(env("LEDGER_GIL_SWITCH_INTERVAL_MS", "0.5")),
                        help="sys.setswitchinterval of each server process (CPython's default is 5 ms; "
                             "shorter lets the writer back in sooner after each database round trip)")
    parser.add_argument("--writer", choices=("process", "thread"), default=env("LEDGER_WRITER", "process"),
                        help="where the group-commit writer runs (env LEDGER_WRITER): a child process with its own "
                             "interpreter lock (default), or a thread of the server process")
    parser.add_argument("--warm-path", action=argparse.BooleanOptionalAction,
                        default=env("LEDGER_WARM_PATH", "1") != "0",
                        help="plain transfers between accounts the writer committed before skip the read round "
                             "trip (env LEDGER_WARM_PATH=0 turns it off; see docs/architecture.md)")
    parser.add_argument("--log-level", default=env("LEDGER_LOG_LEVEL", "INFO"))
    in_process = env("LEDGER_WEBHOOKS_IN_PROCESS")
    parser.add_argument("--webhooks-in-process", action=argparse.BooleanOptionalAction,
                        default=None if in_process is None else in_process.lower() in ("1", "true", "yes"),
                        help="run the webhook dispatcher in this process too (env LEDGER_WEBHOOKS_IN_PROCESS; "
                             "default: on with the embedded PostgreSQL, else run ledger-webhooks)")
    return parser.parse_args(argv)


def provision_keys(database_url: str, embedded: bool, state_dir: pathlib.Path) -> None:
    """LEDGER_BOOTSTRAP_ADMIN_KEY is stored (hashed, idempotently). The embedded default generates
    an admin key at first start, prints it once and keeps it in <state-dir>/admin-key (mode 0600)."""
    provisioned = os.environ.get("LEDGER_BOOTSTRAP_ADMIN_KEY")
    if provisioned:
        provision_admin_key(database_url, provisioned)
        return
    key_file = state_dir / "admin-key"
    if not embedded or key_file.exists():
        return
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    provision_admin_key(database_url, key, name="embedded-admin")
    key_file.touch(mode=0o600)
    key_file.write_text(key + "\n")
    print(f"generated admin key (also in {key_file}): {key}", flush=True)
    print(f"  export LEDGER_API_KEY=$(cat {key_file})", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    embedded = None
    database_url = args.database_url
    if not database_url:
        from ledger_server.embedded_postgres import EmbeddedPostgres

        embedded = EmbeddedPostgres(pathlib.Path(args.state_dir) / "postgres")
        database_url = embedded.database_url()
        log.info("no LEDGER_DATABASE_URL: using the embedded PostgreSQL at %s", database_url)
    dispatch_here = args.webhooks_in_process if args.webhooks_in_process is not None else embedded is not None
    applied = migrate(database_url)
    log.info("schema up to date (%d migrations applied now)", len(applied))
    provision_keys(database_url, embedded is not None, pathlib.Path(args.state_dir))
    config = ServerConfig(
        listen=args.listen, database_url=database_url, metrics_listen=args.metrics_listen,
        worker_threads=args.worker_threads,
        redis_url=args.redis_url, tls_cert=args.tls_cert, tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca, rate_limit_per_s=args.rate_limit,
        rate_limit_burst=args.rate_limit_burst, rate_limit_fail_open=not args.rate_limit_fail_closed,
        events=EventsConfig(webhooks=webhooks_config.from_env() if dispatch_here else None),
        gil_switch_interval_s=args.gil_switch_interval_ms / 1000,
        writer_process=args.writer == "process",
        warm_path=args.warm_path,
    )
    if args.processes > 1:
        try:
            return replicas.serve(config, args.processes, args.grace_seconds, args.log_level, args.shared_writer)
        finally:
            if embedded is not None:
                embedded.stop()
    server = LedgerServer(config).start()
    freeze_startup_heap()
    print(f"ledger listening on {server.target}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log.info("signal received: draining")
    server.stop(args.grace_seconds)
    if embedded is not None:
        embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
