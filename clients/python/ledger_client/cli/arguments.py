"""Argument types and options shared by ledgerctl commands (connection, output, money, metadata)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from typing import Any

from ledger_client.call_core import DEFAULT_TIMEOUT_S
from ledger_client.channel import DEFAULT_TARGET, ChannelSettings, tls_from_values
from ledger_client.client import LedgerClient
from ledger_client.money import Amount

_MINOR = re.compile(r"[0-9]{1,40}")


def common_options() -> argparse.ArgumentParser:
    """Options accepted before or after any command. SUPPRESS lets a later one win over an earlier one."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection and output")
    s = argparse.SUPPRESS
    group.add_argument(
        "--target", default=s, help=f"ledger address (env LEDGER_TARGET, default {DEFAULT_TARGET})"
    )
    group.add_argument(
        "--token", default=s, help="API key, sent as `authorization: Bearer` (env LEDGER_API_KEY)"
    )
    group.add_argument(
        "--tls", action="store_true", default=s, help="use TLS with the system roots (env LEDGER_TLS=1)"
    )
    group.add_argument(
        "--tls-ca", default=s, metavar="FILE", help="CA bundle for the server (env LEDGER_TLS_CA)"
    )
    group.add_argument(
        "--tls-cert", default=s, metavar="FILE", help="client certificate for mTLS (env LEDGER_TLS_CERT)"
    )
    group.add_argument(
        "--tls-key", default=s, metavar="FILE", help="client key for mTLS (env LEDGER_TLS_KEY)"
    )
    group.add_argument(
        "--tls-server-name",
        default=s,
        metavar="NAME",
        help="name to verify in the server certificate (env LEDGER_TLS_SERVER_NAME)",
    )
    group.add_argument(
        "--timeout",
        type=positive_seconds,
        default=s,
        metavar="SECONDS",
        help=f"overall deadline of each call, retries included (default {DEFAULT_TIMEOUT_S:g})",
    )
    group.add_argument(
        "--json", action="store_true", default=s, help="print JSON (money as strings of minor units)"
    )
    return parent


def option(args: argparse.Namespace, name: str, env: str | None = None) -> Any:
    value = getattr(args, name, None)
    if value is None and env is not None:
        value = os.environ.get(env) or None
    return value


def open_client(args: argparse.Namespace) -> LedgerClient:
    tls = tls_from_values(
        ca_file=option(args, "tls_ca", "LEDGER_TLS_CA"),
        cert_file=option(args, "tls_cert", "LEDGER_TLS_CERT"),
        key_file=option(args, "tls_key", "LEDGER_TLS_KEY"),
        server_name=option(args, "tls_server_name", "LEDGER_TLS_SERVER_NAME"),
        enabled=bool(getattr(args, "tls", False)) or os.environ.get("LEDGER_TLS", "") in ("1", "true", "yes"),
    )
    settings = ChannelSettings(
        target=option(args, "target", "LEDGER_TARGET") or DEFAULT_TARGET,
        token=option(args, "token", "LEDGER_API_KEY"),
        tls=tls,
        wait_for_ready=False,  # an operator should see "connection refused" or a TLS error, not a timeout
    )
    return LedgerClient(settings=settings, timeout=getattr(args, "timeout", DEFAULT_TIMEOUT_S))


def positive_seconds(text: str) -> float:
    try:
        value = float(text)  # a duration, not money
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be in (0, 3600] seconds")
    return value


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def timestamp(text: str) -> dt.datetime:
    """ISO 8601; a time without an offset is UTC."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def add_money(parser: argparse.ArgumentParser, *, required: bool, what: str) -> None:
    parser.add_argument(
        "--amount",
        required=required,
        help=f"{what} in major units, exact at the asset's scale (12.50); see --minor",
    )
    parser.add_argument("--minor", action="store_true", help="--amount is an integer of minor units (1250)")


def amount_of(args: argparse.Namespace, parser_error: Any) -> Amount | None:
    text: str | None = args.amount
    if text is None:
        if args.minor:
            parser_error("--minor needs --amount")
        return None
    if args.minor:
        if not _MINOR.fullmatch(text):
            parser_error(f"--amount {text!r} with --minor must be an integer of minor units")
        return int(text)
    return text


def add_write_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--request-id", help="idempotency key; reuse it to retry safely (default: a new UUIDv7)"
    )
    parser.add_argument(
        "--meta",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata (repeatable)",
    )
