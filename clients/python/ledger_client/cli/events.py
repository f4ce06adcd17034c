"""`ledgerctl events tail`: follow the ledger's event stream (WatchEvents)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from google.protobuf import json_format

from ledger.v1 import events_pb2
from ledger_client.cli.output import Output
from ledger_client.client import LedgerClient


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser(
        "events", help="follow ledger events", description="Ledger events, in global sequence order."
    )
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")
    tail = verbs.add_parser(
        "tail", parents=[common], help="print events as they commit",
        description="Print events after --after (backlog first, then live). Resume with the last sequence printed.",
    )
    tail.add_argument("--after", type=int, default=0, help="start after this sequence (default: the beginning)")
    tail.add_argument("--type", action="append", default=[], dest="types", metavar="EVENT_TYPE",
                      help="only this event type, e.g. TRANSFER_POSTED (repeatable)")
    tail.add_argument("--account", action="append", default=[], dest="accounts", metavar="ACCOUNT_ID",
                      help="only events of this account (repeatable)")
    tail.add_argument("--limit", type=int, default=0, help="stop after this many events (default: follow)")
    tail.set_defaults(handler=tail_events, parser=tail)


def tail_events(client: LedgerClient, args: argparse.Namespace, out: Output) -> None:
    stream = client.watch_events(after_sequence=args.after, event_types=args.types, account_ids=args.accounts)
    for shown, event in enumerate(stream, start=1):
        if out.as_json:
            out.stdout.write(json.dumps(json_format.MessageToDict(event), sort_keys=True) + "\n")
        else:
            subject = event.WhichOneof("payload") or ""
            detail = ""
            if subject in ("account", "transfer"):
                detail = getattr(event, subject).id
            elif subject == "asset":
                detail = event.asset.code
            kind = events_pb2.EventType.Name(event.type)
            out.stdout.write(f"{event.sequence}  {event.occurred_at.ToJsonString()}  {kind}  {subject} {detail}\n")
        out.stdout.flush()
        if args.limit and shown >= args.limit:
            return
