"""`ledger-server`: run the ledger. With no database URL it starts an embedded PostgreSQL."""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import signal
import sys
import threading
from collections.abc import Sequence

from ledger_server.events.component import EventsConfig
from ledger_server.events.webhooks import config as webhooks_config
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
    parser.add_argument("--log-level", default=env("LEDGER_LOG_LEVEL", "INFO"))
    in_process = env("LEDGER_WEBHOOKS_IN_PROCESS")
    parser.add_argument("--webhooks-in-process", action=argparse.BooleanOptionalAction,
                        default=None if in_process is None else in_process.lower() in ("1", "true", "yes"),
                        help="run the webhook dispatcher in this process too (env LEDGER_WEBHOOKS_IN_PROCESS; "
                             "default: on with the embedded PostgreSQL, else run ledger-webhooks)")
    return parser.parse_args(argv)


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
    server = LedgerServer(
        ServerConfig(
            listen=args.listen, database_url=database_url, metrics_listen=args.metrics_listen,
            redis_url=args.redis_url,
            events=EventsConfig(webhooks=webhooks_config.from_env() if dispatch_here else None),
        )
    ).start()
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
