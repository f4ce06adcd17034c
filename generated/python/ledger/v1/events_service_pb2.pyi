from ledger.v1 import events_pb2 as _events_pb2
from ledger.v1 import webhooks_pb2 as _webhooks_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
