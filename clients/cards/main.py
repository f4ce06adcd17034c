"""`ledger-card-gateway`: serve the card gateway, reconcile a settlement file, make a webhook secret.

    ledger-card-gateway serve --listen 127.0.0.1:8080          (flags or environment, see --help)
    ledger-card-gateway reconcile settlement-2024-05-01.json   (prints the report; posts nothing)
    ledger-card-gateway post-proposals report.json --event EVT --reviewer alice   (posts reviewed ones)
    ledger-card-gateway new-secret
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from ledger_cards.authorizer import APPROVED, DECLINED, AuthorizerConfig
from ledger_cards.lifecycle import LifecycleConfig
from ledger_cards.signatures import new_secret
from ledger_server.gc_pauses import freeze_startup_heap

if TYPE_CHECKING:
    import uvicorn

    from ledger_cards.app import GatewayConfig
    from ledger_server.process_supervisor import ChildContext

log = logging.getLogger("ledger_cards")


def _common(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--database-url", default=env("LEDGER_DATABASE_URL"),
                        help="the ledger's PostgreSQL (card tables of migration 0006); env LEDGER_DATABASE_URL")
    parser.add_argument("--ledger-target", default=env("LEDGER_TARGET", "127.0.0.1:50051"),
                        help="the ledger's gRPC address (env LEDGER_TARGET)")
    parser.add_argument("--ledger-connections", type=int, default=int(env("LEDGER_CONNECTIONS", "1")),
                        help="gRPC connections to the ledger, used in turn (env LEDGER_CONNECTIONS): at least "
                             "the ledger's --processes")
    parser.add_argument("--ledger-api-key", default=env("LEDGER_API_KEY"),
                        help="API key for the ledger, scopes accounts:read/write, transfers:write, "
                             "transfers:reverse (env LEDGER_API_KEY)")


def parse(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="ledger-card-gateway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway (authorizations, webhooks, card admin)")
    _common(serve)
    serve.add_argument("--listen", default=env("CARD_GATEWAY_LISTEN", "127.0.0.1:8080"), help="host:port")
    serve.add_argument("--webhook-secret", action="append",
                       default=[s for s in env("CARD_WEBHOOK_SECRETS", "").split(",") if s],
                       help="whsec_... shared with the processor; repeat to rotate (env CARD_WEBHOOK_SECRETS)")
    serve.add_argument("--admin-key", default=env("CARD_GATEWAY_ADMIN_KEY"),
                       help="bearer key of the card admin endpoints (env CARD_GATEWAY_ADMIN_KEY)")
    serve.add_argument("--redis-url", default=env("LEDGER_REDIS_URL"),
                       help="Redis for spend counters and replay detection (env LEDGER_REDIS_URL)")
    serve.add_argument("--auth-budget-ms", type=int, default=int(env("CARD_AUTH_BUDGET_MS", "250")),
                       help="answer every authorization within this (default 250)")
    serve.add_argument("--timeout-decision", choices=[APPROVED, DECLINED],
                       default=env("CARD_TIMEOUT_DECISION", DECLINED), help="the answer when the budget runs out")
    serve.add_argument("--hold-timeout-seconds", type=int, default=int(env("CARD_HOLD_TIMEOUT_SECONDS", "864000")),
                       help="the ledger releases an authorization hold after this (default 10 days)")
    serve.add_argument("--over-capture-tolerance-bps", type=int,
                       default=int(env("CARD_OVER_CAPTURE_TOLERANCE_BPS", "2000")),
                       help="captures above the authorization up to this many basis points are normal")
    serve.add_argument("--workers", type=int, default=int(env("CARD_GATEWAY_WORKERS", "16")),
                       help="concurrent webhook appliers (one transaction token each)")
    serve.add_argument("--processes", type=int, default=int(env("CARD_GATEWAY_PROCESSES", "1")),
                       help="gateway processes sharing the listening socket (env CARD_GATEWAY_PROCESSES): "
                            "replicas, whose state lives in PostgreSQL and Redis")
    serve.add_argument("--log-level", default=env("CARD_GATEWAY_LOG_LEVEL", "WARNING"))
    reconcile = commands.add_parser("reconcile", help="compare a processor settlement file with the ledger")
    _common(reconcile)
    reconcile.add_argument("file", help="the settlement file (JSON; see clients/cards/README.md)")
    post = commands.add_parser("post-proposals", help="post reviewed compensating entries of a reconciliation report")
    _common(post)
    post.add_argument("report", help="the JSON report printed by `reconcile`")
    post.add_argument("--event", action="append", default=[], dest="events", metavar="EVENT_TOKEN",
                      help="the proposal to post, by the event token it is for (repeat for several)")
    post.add_argument("--reviewer", required=True, help="who reviewed them (recorded on every transfer)")
    commands.add_parser("new-secret", help="print a new webhook secret")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "new-secret":
        print(new_secret())
        return 0
    if args.command == "post-proposals":
        from ledger_cards.reconcile import ProposalError, run_post_proposals

        if not args.ledger_api_key:
            print("--ledger-api-key (or its environment variable) is required", file=sys.stderr)
            return 2
        try:
            results = asyncio.run(run_post_proposals(
                args.ledger_target, args.ledger_api_key, args.report, args.events, args.reviewer))
        except ProposalError as error:
            print(f"refused: {error}", file=sys.stderr)
            return 2
        print(json.dumps(results, indent=2, sort_keys=True))
        return 0 if all(r["posted"] for r in results) else 1
    if not args.database_url or not args.ledger_api_key:
        print("--database-url and --ledger-api-key (or their environment variables) are required", file=sys.stderr)
        return 2
    if args.command == "reconcile":
        from ledger_cards.reconcile import run_reconcile

        report = asyncio.run(run_reconcile(args.database_url, args.ledger_target, args.ledger_api_key, args.file))
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0 if report["matched"] else 1
    return serve(args)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ledger_cards.app import Gateway, GatewayConfig, build_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not args.webhook_secret or not args.admin_key:
        print("--webhook-secret and --admin-key (or their environment variables) are required", file=sys.stderr)
        return 2
    lifecycle = LifecycleConfig(hold_timeout_seconds=args.hold_timeout_seconds,
                                over_capture_tolerance_bps=args.over_capture_tolerance_bps)
    config = GatewayConfig(
        database_url=args.database_url, ledger_target=args.ledger_target, ledger_api_key=args.ledger_api_key,
        webhook_secrets=tuple(args.webhook_secret), admin_key=args.admin_key, redis_url=args.redis_url,
        authorizer=AuthorizerConfig(budget_ms=args.auth_budget_ms, timeout_decision=args.timeout_decision,
                                    lifecycle=lifecycle),
        workers=args.workers, ledger_connections=args.ledger_connections,
    )
    host, _, port = args.listen.rpartition(":")
    if args.processes > 1:
        from ledger_server.process_supervisor import PROCESSES_MAX, supervise

        if args.processes > PROCESSES_MAX:
            print(f"--processes: at most {PROCESSES_MAX}", file=sys.stderr)
            return 2

        # Bound once here; every process accepts on the same socket (the kernel hands each
        # connection to one of them).
        listening = socket.create_server((host or "127.0.0.1", int(port)), backlog=2048)
        return supervise("card-gateway", _serve_on_socket, [(config, listening, args.log_level)] * args.processes,
                         GRACE_S, args.log_level.upper())
    server = _ready_server(uvicorn.Config(
        build_app(Gateway(config)), host=host or "127.0.0.1", port=int(port), **_uvicorn_options(args.log_level),
    ))
    server.run()
    return 0


GRACE_S = 10


def _uvicorn_options(log_level: str) -> dict[str, Any]:
    return {"loop": "uvloop", "http": "httptools", "log_level": log_level.lower(), "access_log": False,
            "proxy_headers": False,  # no client address is used: no need to parse forwarding headers
            "timeout_graceful_shutdown": GRACE_S}


def _ready_server(config: uvicorn.Config) -> uvicorn.Server:
    """The server with everything it imports loaded now (the protocol classes, the event loop), so
    the startup heap is frozen whole before the first request (ledger_server/gc_pauses.py)."""
    import uvicorn

    config.load()
    freeze_startup_heap()
    return uvicorn.Server(config)


def _serve_on_socket(context: ChildContext, config: GatewayConfig, listening: socket.socket, log_level: str) -> None:
    """One of `serve --processes N`: uvicorn on the shared socket; it handles SIGTERM itself (drain)."""
    import uvicorn

    from ledger_cards.app import Gateway, build_app

    server = _ready_server(uvicorn.Config(build_app(Gateway(config)), **_uvicorn_options(log_level)))

    def report_serving() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        context.serving()

    threading.Thread(target=report_serving, name="report-serving", daemon=True).start()
    server.run(sockets=[listening])


if __name__ == "__main__":
    sys.exit(main())
