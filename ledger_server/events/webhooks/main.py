"""`ledger-webhooks`: run a webhook dispatcher (several may run at once, on any machines)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, start_http_server

from ledger_server.events.metrics import EventsMetrics
from ledger_server.events.webhooks import config as dispatcher_config
from ledger_server.events.webhooks.dispatcher import Dispatcher
from ledger_server.migrate import migrate

log = logging.getLogger("ledger_server.events.webhooks")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="ledger-webhooks", description=__doc__)
    parser.add_argument("--database-url", default=env("LEDGER_DATABASE_URL"),
                        help="PostgreSQL URL of the ledger (env LEDGER_DATABASE_URL); required")
    parser.add_argument("--metrics-listen", default=env("LEDGER_WEBHOOKS_METRICS_LISTEN"),
                        help="Prometheus address, e.g. 127.0.0.1:9465 (env LEDGER_WEBHOOKS_METRICS_LISTEN)")
    parser.add_argument("--grace-seconds", type=float, default=float(env("LEDGER_GRACE_SECONDS", "20")),
                        help="how long SIGTERM waits for attempts in flight")
    parser.add_argument("--log-level", default=env("LEDGER_LOG_LEVEL", "INFO"))
    dispatcher_config.add_arguments(parser)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url (or LEDGER_DATABASE_URL) is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = dispatcher_config.from_arguments(args)
    migrate(args.database_url)
    registry = CollectorRegistry()
    if args.metrics_listen:
        host, _, port = args.metrics_listen.rpartition(":")
        start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)
    dispatcher = Dispatcher(args.database_url, config, EventsMetrics(registry)).start()
    print("ledger-webhooks dispatching", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log.info("signal received: finishing attempts in flight")
    dispatcher.stop(args.grace_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
