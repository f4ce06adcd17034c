"""`ledgerctl card issue|show|freeze|unfreeze|close|controls`: the card gateway's admin API."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ledger_client.cards import DEFAULT_GATEWAY, Card, CardsClient
from ledger_client.cli.output import Output, pairs
from ledger_client.client import LedgerClient


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("card", help="issue and control cards (card gateway)",
                                description="Cards, through the card gateway's admin API.")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")
    gateway = argparse.ArgumentParser(add_help=False)
    options = gateway.add_argument_group("card gateway")
    options.add_argument("--gateway", default=os.environ.get("CARD_GATEWAY_URL", DEFAULT_GATEWAY),
                         help=f"gateway URL (env CARD_GATEWAY_URL, default {DEFAULT_GATEWAY})")
    options.add_argument("--gateway-key", default=os.environ.get("CARD_GATEWAY_ADMIN_KEY", ""),
                         help="the gateway's admin key (env CARD_GATEWAY_ADMIN_KEY)")
    controls = argparse.ArgumentParser(add_help=False)
    controls.add_argument("--daily-limit", type=int, default=None, help="minor units per UTC day")
    controls.add_argument("--monthly-limit", type=int, default=None, help="minor units per UTC month")
    controls.add_argument("--block-mcc", action="append", default=[], metavar="MCC",
                          help="a merchant category code to decline (repeatable)")

    issue = verbs.add_parser("issue", parents=[common, gateway, controls], help="issue a card",
                             description="Issue a card spending from a cardholder account.")
    issue.add_argument("--account", required=True, help="the cardholder's ledger account id")
    issue.add_argument("--card-token", required=True, help="the processor's card token")
    issue.set_defaults(handler=issue_card)
    for verb, handler, text in (("show", show_card, "show a card"), ("freeze", freeze_card, "freeze a card"),
                                ("unfreeze", unfreeze_card, "unfreeze a card"),
                                ("close", close_card, "close a card for good")):
        command = verbs.add_parser(verb, parents=[common, gateway], help=text, description=text.capitalize() + ".")
        command.add_argument("card_id")
        command.set_defaults(handler=handler)
    change = verbs.add_parser("controls", parents=[common, gateway, controls], help="set limits and MCC blocks",
                              description="Replace a card's spend limits and blocked MCCs.")
    change.add_argument("card_id")
    change.set_defaults(handler=set_controls)


def _client(args: argparse.Namespace) -> CardsClient:
    return CardsClient(args.gateway, admin_key=args.gateway_key)


def _limit(value: int | None) -> str:
    return "none" if value is None else str(value)


def _human(card: Card) -> str:
    limit = _limit
    return pairs([("id", card.id), ("card token", card.card_token), ("account", card.account_id),
                  ("asset", card.asset), ("state", card.state), ("daily limit", limit(card.daily_limit)),
                  ("monthly limit", limit(card.monthly_limit)), ("blocked MCCs", ", ".join(card.blocked_mccs)),
                  ("tenant", card.tenant or "")])


def issue_card(_: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    with _client(args) as cards:
        card = cards.issue_card(card_token=args.card_token, account_id=args.account, daily_limit=args.daily_limit,
                                monthly_limit=args.monthly_limit, blocked_mccs=args.block_mcc)
    out.emit(card, _human(card))


def show_card(_: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    with _client(args) as cards:
        card = cards.get_card(card_id=args.card_id)
    out.emit(card, _human(card))


def freeze_card(_: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    with _client(args) as cards:
        card = cards.freeze_card(card_id=args.card_id)
    out.emit(card, _human(card))


def unfreeze_card(_: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    with _client(args) as cards:
        card = cards.unfreeze_card(card_id=args.card_id)
    out.emit(card, _human(card))


def close_card(_: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    with _client(args) as cards:
        card = cards.close_card(card_id=args.card_id)
    out.emit(card, _human(card))


def set_controls(_: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    with _client(args) as cards:
        card = cards.set_card_controls(card_id=args.card_id, daily_limit=args.daily_limit,
                                       monthly_limit=args.monthly_limit, blocked_mccs=args.block_mcc)
    out.emit(card, _human(card))
