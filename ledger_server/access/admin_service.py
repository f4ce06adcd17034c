"""Admin RPCs: API keys and certificate callers, the audit listing, and the invariant check."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import grpc
from psycopg_pool import ConnectionPool

from ledger.v1 import admin_pb2
from ledger_server import pagination, queries, wire
from ledger_server import validation as v
from ledger_server.access import keys
from ledger_server.access.callers import (
    CallerDirectory,
    CreateApiKey,
    CreateCertificateCaller,
    RevokeCaller,
    caller_message,
)
from ledger_server.access.scopes import SCOPES
from ledger_server.commands import Job
from ledger_server.errors import invalid
from ledger_server.ids import new_uuid7
from ledger_server.posting import Outcome
from ledger_server.rpc_handler import rpc, to_datetime
from ledger_server.verify import verify

Q = queries.load("access")
NAME_CHARS_MAX = 128


def _scopes(values: Any) -> tuple[str, ...]:
    scopes = tuple(sorted(set(values)))
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise invalid("INVALID_SCOPE", f"scopes must be a non-empty subset of {sorted(SCOPES)}", field="scopes")
    return scopes


def _name(value: str, field: str = "name") -> str:
    if not 1 <= len(value) <= NAME_CHARS_MAX or not value.isprintable():
        raise invalid("MISSING_FIELD", f"{field} must be 1..{NAME_CHARS_MAX} printable characters", field=field)
    return value


def _audit_key(value: Any) -> tuple[dt.datetime, str]:
    moment, request_id = value
    return dt.datetime.fromisoformat(pagination.text_key(moment)), pagination.text_key(request_id)


class AdminService:
    """Mixed into LedgerService; relies on its committer, pool-backed reads and metrics."""

    callers: CallerDirectory
    database_url: str
    metrics: Any
    pool: ConnectionPool[Any]

    def _submit(self, job: Job, context: grpc.ServicerContext) -> Outcome:  # provided by LedgerService
        raise NotImplementedError

    @rpc
    def CreateApiKey(
        self, request: admin_pb2.CreateApiKeyRequest, context: grpc.ServicerContext
    ) -> admin_pb2.CreateApiKeyResponse:
        new_key = keys.new_key(new_uuid7())
        command = CreateApiKey(v.request_id(request.request_id), _name(request.name), _scopes(request.scopes),
                               request.tenant or None, new_key)
        outcome = self._submit(command, context)
        if outcome.code != 0:
            raise outcome.error()
        response = admin_pb2.CreateApiKeyResponse.FromString(outcome.payload)
        if not outcome.replayed:
            response.key = new_key.key  # shown once; only its salted hash is stored
        return response

    @rpc
    def CreateCertificateCaller(
        self, request: admin_pb2.CreateCertificateCallerRequest, context: grpc.ServicerContext
    ) -> admin_pb2.Caller:
        command = CreateCertificateCaller(
            v.request_id(request.request_id), _name(request.name),
            _name(request.certificate_subject, "certificate_subject"), _scopes(request.scopes),
            request.tenant or None, new_uuid7(),
        )
        outcome = self._submit(command, context)
        if outcome.code != 0:
            raise outcome.error()
        return admin_pb2.Caller.FromString(outcome.payload)

    @rpc
    def RevokeCaller(self, request: admin_pb2.RevokeCallerRequest, context: grpc.ServicerContext) -> admin_pb2.Caller:
        command = RevokeCaller(v.request_id(request.request_id), v.identifier(request.caller_id, "caller_id"))
        outcome = self._submit(command, context)
        self.callers.invalidate()
        if outcome.code != 0:
            raise outcome.error()
        return admin_pb2.Caller.FromString(outcome.payload)

    @rpc
    def ListCallers(
        self, request: admin_pb2.ListCallersRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListCallersResponse:
        size = v.page_size(request.page_size)
        after = pagination.decode(request.page_token, "callers", pagination.uuid_key)
        with self.pool.connection() as conn:
            rows = conn.execute(Q["list_callers"], {"after": after or uuid.UUID(int=0), "limit": size + 1}).fetchall()
        response = admin_pb2.ListCallersResponse(callers=[caller_message(r) for r in rows[:size]])
        if len(rows) > size:
            response.next_page_token = pagination.encode(str(rows[size - 1][0]), "callers")
        return response

    @rpc
    def ListAuditRecords(
        self, request: admin_pb2.ListAuditRecordsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListAuditRecordsResponse:
        size = v.page_size(request.page_size)
        caller = _name(request.caller, "caller") if request.caller else None
        start = to_datetime(request.start_time, "start_time") if request.HasField("start_time") else None
        query = ["audit", caller, start]
        after = pagination.decode(request.page_token, query, _audit_key)
        if after:
            after_time, after_id = after
        else:
            after_time, after_id = (start or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) - dt.timedelta(microseconds=1), ""
        with self.pool.connection() as conn:
            rows = conn.execute(Q["list_audit_records"], {
                "after_time": after_time, "after_id": after_id, "caller": caller, "limit": size + 1}).fetchall()
        records = [
            admin_pb2.AuditRecord(request_id=r[0], operation=r[1], caller=r[2], code=r[3],
                                  created_at=wire.timestamp(r[4]))
            for r in rows[:size]
        ]
        response = admin_pb2.ListAuditRecordsResponse(records=records)
        if len(rows) > size:
            last = rows[size - 1]
            response.next_page_token = pagination.encode([last[4].isoformat(), last[0]], query)
        return response

    @rpc
    def VerifyLedger(
        self, request: admin_pb2.VerifyLedgerRequest, context: grpc.ServicerContext
    ) -> admin_pb2.VerifyLedgerResponse:
        report = verify(self.database_url)
        return admin_pb2.VerifyLedgerResponse(
            ok=report.ok, checked=report.checked,
            violations=[
                admin_pb2.InvariantViolation(invariant=name, rows=[json.dumps(r, default=str) for r in rows])
                for name, rows in report.violations.items()
            ],
        )
