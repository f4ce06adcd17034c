"""`ledger-chain-signer`: send the withdrawals of one chain from the hot wallet and settle their holds.

The key comes from an encrypted keystore (--keystore, password in LEDGER_SIGNER_KEYSTORE_PASSWORD)
or, for development only, from LEDGER_SIGNER_PRIVATE_KEY. The ledger's bearer key from LEDGER_API_KEY.
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

from ledger_chain.hot_wallet import (
    KEYSTORE_PASSWORD_ENV,
    PRIVATE_KEY_ENV,
    KeyUnavailableError,
    load_hot_wallet,
)
from ledger_chain.ledger_gateway import LedgerGateway
from ledger_chain.metrics import SignerMetrics
from ledger_chain.node import EthNode
from ledger_chain.signer import GWEI, ConfigurationError, Signer, SignerConfig

log = logging.getLogger("ledger_chain")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="ledger-chain-signer", description=__doc__)
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--chain-id", type=int, required=True)
    parser.add_argument("--ledger-target", default=env("LEDGER_TARGET", "127.0.0.1:50051"))
    parser.add_argument("--database-url", default=env("LEDGER_DATABASE_URL"))
    parser.add_argument("--keystore", default=env("LEDGER_SIGNER_KEYSTORE"), help="encrypted JSON keystore file")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--stuck-after", type=float, default=30.0, help="seconds unmined before a fee bump")
    parser.add_argument("--drop-after", type=float, default=120.0,
                        help="seconds the node refuses a transaction before it is cancelled")
    parser.add_argument("--max-fee-gwei", type=int, default=500, help="cap on maxFeePerGas")
    parser.add_argument("--backoff-max", type=float, default=30.0)
    parser.add_argument("--rpc-timeout", type=float, default=10.0)
    parser.add_argument("--metrics-listen", default=env("LEDGER_SIGNER_METRICS_LISTEN"))
    parser.add_argument("--log-level", default=env("LEDGER_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or LEDGER_DATABASE_URL is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        wallet = load_hot_wallet(args.keystore, os.environ.get(KEYSTORE_PASSWORD_ENV), os.environ.get(PRIVATE_KEY_ENV))
    except KeyUnavailableError as error:
        log.error("%s", error)
        return 2
    config = SignerConfig(
        chain_id=args.chain_id, poll_interval_s=args.poll_interval, stuck_after_s=args.stuck_after,
        drop_after_s=args.drop_after, max_fee_per_gas_cap=args.max_fee_gwei * GWEI, backoff_max_s=args.backoff_max,
    )
    metrics = SignerMetrics()
    if args.metrics_listen:
        host, _, port = args.metrics_listen.rpartition(":")
        start_http_server(int(port), addr=host or "0.0.0.0", registry=metrics.registry)
    gateway = LedgerGateway(args.ledger_target, os.environ.get("LEDGER_API_KEY"))
    signer = Signer(config, EthNode(args.rpc_url, args.rpc_timeout), gateway, wallet, metrics)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("signer for chain %d, hot wallet %s", args.chain_id, signer.address)
    try:
        signer.run(args.database_url, stop)
    except ConfigurationError as error:
        log.error("%s", error)
        return 2
    finally:
        gateway.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
