"""ledgerctl: the operators' command line on the SDK. Parser, dispatch, exit codes.

Every command group lives in its own module with a `register(commands, common)` function; event
tailing lives in `events.py`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ledger_client.cli import accounts, assets, cards, events, transfers
from ledger_client.cli.arguments import common_options, open_client
from ledger_client.cli.output import Output
from ledger_client.errors import (
    IdempotencyKeyReused,
    InvalidRequest,
    LedgerError,
    NotFound,
    PermissionDenied,
    Rejected,
    Transient,
    Unauthenticated,
)

COMMAND_GROUPS = (assets, accounts, transfers, events, cards)

EXIT_OK = 0
EXIT_FAILED = 1  # anything unexpected: INTERNAL, UNKNOWN, a bug
EXIT_USAGE = 2  # bad command line or a request the ledger calls invalid (INVALID_ARGUMENT)
EXIT_REFUSED = 3  # the ledger refused: a business rejection, not found, request id reused
EXIT_UNAVAILABLE = 4  # transient: retries and the deadline ran out; retry with the same --request-id
EXIT_DENIED = 5  # missing or wrong credentials

EPILOG = """\
exit codes: 0 done, 1 unexpected failure, 2 usage or invalid request, 3 refused by the ledger
(insufficient funds, not found, ...), 4 unavailable or timed out (retry with the same --request-id),
5 unauthenticated or permission denied.
Amounts: --amount is major units, exact at the asset's scale ("12.50"); --minor makes it minor units.
JSON (--json): money as strings of minor units; errors as {"error": {...}} on stderr."""


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="ledgerctl",
        description="Operate the ledger: assets, accounts, transfers, holds, entries.",
        parents=[common],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands, common)
    return parser


def exit_code(error: LedgerError) -> int:
    if isinstance(error, InvalidRequest):
        return EXIT_USAGE
    if isinstance(error, Rejected | NotFound | IdempotencyKeyReused):
        return EXIT_REFUSED
    if isinstance(error, Transient):
        return EXIT_UNAVAILABLE
    if isinstance(error, Unauthenticated | PermissionDenied):
        return EXIT_DENIED
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(as_json=bool(getattr(args, "json", False)))
    try:
        with open_client(args) as client:
            args.handler(client, args, out)
    except LedgerError as error:
        hint = ""
        if isinstance(error, Transient) and error.request_id:
            hint = f"nothing is lost: retry with --request-id {error.request_id} to do it at most once"
        out.error(error, hint)
        return exit_code(error)
    except (TypeError, ValueError, OSError) as error:  # bad input caught client-side, unreadable TLS files
        out.error(error)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
