"""The JSON body of a webhook: {"type": "transfer.posted", "timestamp": ..., "data": LedgerEvent}.

`data` is the event in the protobuf JSON mapping with the proto field names (snake_case, the same
names as the gRPC API; uint64 and amounts as strings). The body is a pure function of the outbox
row, so every attempt and replay of a delivery sends the same bytes.
"""

from __future__ import annotations

import json

from google.protobuf import json_format

from ledger.v1 import events_pb2
from ledger_server.events.event_types import event_type_name


def webhook_body(sequence: int, payload: bytes) -> bytes:
    event = events_pb2.LedgerEvent.FromString(payload)
    event.sequence = sequence
    document = {
        "type": event_type_name(event.type),
        "timestamp": event.occurred_at.ToJsonString(),
        "data": json_format.MessageToDict(event, preserving_proto_field_name=True),
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
