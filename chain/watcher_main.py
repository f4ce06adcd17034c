"""`ledger-chain-watcher`: follow one EVM chain and credit its deposits through the ledger.

Run one per chain, or several (standbys take over within seconds of the leader's death). The
ledger's bearer key comes from LEDGER_API_KEY; the database (the ledger's) from --database-url or
LEDGER_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from prometheus_client import start_http_server

from ledger_chain.ledger_gateway import LedgerGateway
from ledger_chain.metrics import WatcherMetrics
from ledger_chain.node import EthNode
from ledger_chain.watcher import ConfigurationError, Watcher, WatcherConfig

log = logging.getLogger("ledger_chain")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="ledger-chain-watcher", description=__doc__)
    parser.add_argument("--rpc-url", required=True, help="the node's JSON-RPC HTTP endpoint")
    parser.add_argument("--chain-id", type=int, required=True, help="checked against the node's eth_chainId")
    parser.add_argument("--ledger-target", default=env("LEDGER_TARGET", "127.0.0.1:50051"),
                        help="the ledger's gRPC address (env LEDGER_TARGET)")
    parser.add_argument("--database-url", default=env("LEDGER_DATABASE_URL"),
                        help="the ledger's PostgreSQL (env LEDGER_DATABASE_URL)")
    parser.add_argument("--start-block", type=int, default=None,
                        help="first block to read on the very first start (default: the head then)")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between head checks at the tip")
    parser.add_argument("--range-max", type=int, default=100, help="blocks per read / eth_getLogs range")
    parser.add_argument("--keep-blocks", type=int, default=512, help="block hashes kept: the deepest reorg handled")
    parser.add_argument("--standby-poll", type=float, default=1.0,
                        help="seconds between a standby's attempts to take over")
    parser.add_argument("--backoff-max", type=float, default=30.0, help="longest wait after node failures (s)")
    parser.add_argument("--rpc-timeout", type=float, default=10.0, help="per-request node timeout (s)")
    parser.add_argument("--metrics-listen", default=env("LEDGER_CHAIN_METRICS_LISTEN"),
                        help="Prometheus address, e.g. 127.0.0.1:9465")
    parser.add_argument("--log-level", default=env("LEDGER_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or LEDGER_DATABASE_URL is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = WatcherConfig(
        chain_id=args.chain_id, start_block=args.start_block, poll_interval_s=args.poll_interval,
        range_max=args.range_max, keep_blocks=args.keep_blocks, backoff_max_s=args.backoff_max,
        standby_poll_s=args.standby_poll,
    )
    metrics = WatcherMetrics()
    if args.metrics_listen:
        host, _, port = args.metrics_listen.rpartition(":")
        start_http_server(int(port), addr=host or "0.0.0.0", registry=metrics.registry)
    gateway = LedgerGateway(args.ledger_target, os.environ.get("LEDGER_API_KEY"))
    watcher = Watcher(config, EthNode(args.rpc_url, args.rpc_timeout), gateway, metrics)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("watching chain %d through %s", args.chain_id, args.rpc_url)
    try:
        watcher.run(args.database_url, stop)
    except ConfigurationError as error:
        log.error("%s", error)
        return 2
    finally:
        gateway.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
