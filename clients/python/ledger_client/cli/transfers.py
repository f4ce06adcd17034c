"""`ledgerctl transfer create|hold|post|void|reverse|show`."""

from __future__ import annotations

import argparse
from typing import Any

from ledger_client.cli.arguments import add_money, add_write_options, amount_of
from ledger_client.cli.output import Output, jsonable, money, pairs, when
from ledger_client.client import LedgerClient
from ledger_client.request_ids import new_request_id
from ledger_client.results import Transfer


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser(
        "transfer",
        help="move money: transfer, hold, post, void, reverse",
        description="Transfers between two accounts of one asset.",
    )
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")

    create = verbs.add_parser(
        "create",
        parents=[common],
        help="move money now",
        description="Move an amount from the debit account to the credit account.",
    )
    _add_parties(create)
    add_money(create, required=True, what="the amount")
    add_write_options(create)
    create.set_defaults(handler=create_transfer, parser=create, pending=False)

    hold = verbs.add_parser(
        "hold",
        parents=[common],
        help="reserve money (a pending transfer)",
        description="Reserve an amount; post or void it later.",
    )
    _add_parties(hold)
    add_money(hold, required=True, what="the amount")
    hold.add_argument(
        "--expires-in",
        type=int,
        default=0,
        metavar="SECONDS",
        help="release the hold automatically after this long (default: never)",
    )
    add_write_options(hold)
    hold.set_defaults(handler=create_transfer, parser=hold, pending=True)

    post = verbs.add_parser(
        "post",
        parents=[common],
        help="settle a hold (all or part)",
        description="Post a hold: all of it, or --amount of it (the rest is released).",
    )
    post.add_argument("pending_id")
    add_money(post, required=False, what="how much of the hold to post")
    add_write_options(post)
    post.set_defaults(handler=post_pending, parser=post)

    void = verbs.add_parser("void", parents=[common], help="release a hold", description="Release a hold.")
    void.add_argument("pending_id")
    add_write_options(void)
    void.set_defaults(handler=void_pending, parser=void)

    reverse = verbs.add_parser(
        "reverse",
        parents=[common],
        help="compensate a posted transfer",
        description="Reverse a posted transfer (all that is left of it, or --amount).",
    )
    reverse.add_argument("transfer_id")
    add_money(reverse, required=False, what="how much to reverse")
    add_write_options(reverse)
    reverse.set_defaults(handler=reverse_transfer, parser=reverse)

    show = verbs.add_parser(
        "show",
        parents=[common],
        help="show a transfer",
        description="Show a transfer by id, or by the request id that created it.",
    )
    key = show.add_mutually_exclusive_group(required=True)
    key.add_argument("transfer_id", nargs="?")
    key.add_argument("--by-request-id", metavar="REQUEST_ID")
    show.set_defaults(handler=show_transfer, parser=show)


def _add_parties(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debit", required=True, metavar="ACCOUNT_ID", help="the account debited (money leaves)"
    )
    parser.add_argument(
        "--credit", required=True, metavar="ACCOUNT_ID", help="the account credited (money arrives)"
    )
    parser.add_argument("--asset", required=True)


def _emit(client: LedgerClient, transfer: Transfer, out: Output) -> None:
    scale = client.get_asset(code=transfer.asset).scale
    out.emit(
        {**jsonable(transfer), "scale": scale},
        pairs(
            [
                ("id", transfer.id),
                ("kind", transfer.kind.value),
                ("state", transfer.state.value),
                ("amount", f"{money(transfer.amount, scale)} {transfer.asset}"),
                ("debit", transfer.debit_account_id),
                ("credit", transfer.credit_account_id),
                *([("pending id", transfer.pending_id)] if transfer.pending_id else []),
                *([("reverses", transfer.reverses_transfer_id)] if transfer.reverses_transfer_id else []),
                *([("expires", when(transfer.expires_at))] if transfer.expires_at else []),
                ("request id", transfer.request_id),
                ("created", when(transfer.created_at)),
                ("metadata", ", ".join(f"{k}={v}" for k, v in sorted(transfer.metadata.items())) or "-"),
            ]
        ),
    )


def _request_id(args: argparse.Namespace) -> str:
    """Fixed before the first attempt, so a failure can name it and the operator can retry safely."""
    value: str = args.request_id or new_request_id()
    return value


def create_transfer(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    amount = amount_of(args, args.parser.error)
    assert amount is not None
    transfer = client.create_transfer(
        debit_account_id=args.debit,
        credit_account_id=args.credit,
        amount=amount,
        asset=args.asset,
        pending=args.pending,
        hold_timeout_seconds=getattr(args, "expires_in", 0),
        metadata=dict(args.meta),
        request_id=_request_id(args),
    )
    _emit(client, transfer, out)


def post_pending(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    transfer = client.post_pending_transfer(
        pending_id=args.pending_id,
        amount=amount_of(args, args.parser.error),
        metadata=dict(args.meta),
        request_id=_request_id(args),
    )
    _emit(client, transfer, out)


def void_pending(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    transfer = client.void_pending_transfer(
        pending_id=args.pending_id, metadata=dict(args.meta), request_id=_request_id(args)
    )
    _emit(client, transfer, out)


def reverse_transfer(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    transfer = client.reverse_transfer(
        transfer_id=args.transfer_id,
        amount=amount_of(args, args.parser.error),
        metadata=dict(args.meta),
        request_id=_request_id(args),
    )
    _emit(client, transfer, out)


def show_transfer(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    transfer = client.get_transfer(transfer_id=args.transfer_id, request_id=args.by_request_id)
    _emit(client, transfer, out)
