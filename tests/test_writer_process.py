"""The group-commit writer in its own process: killed under load, stopped with work queued,
orphaned by a killed server, and shared by several servers. Whatever happens to it, nothing
acknowledged is lost and nothing is written twice (clients retry with the same request id, as the SDK does)."""

from __future__ import annotations

import os
import pathlib
import pickle
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import astuple
from multiprocessing.connection import Connection

import grpc
import psutil
import psycopg
import pytest

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from ledger_server import validation
from ledger_server.server import LedgerServer
from ledger_server.writer_process import SEND_TIMEOUT_S, WriterProcessCommitter
from tests.conftest import ServerProcess, open_channel, start_ledger_server
from tests.invariants import assert_ledger_consistent, transfers_by_request_id
from tests.ledger_api import error_reason, new_account, new_asset, rid, transfer

SENDERS = 8
ATTEMPTS_MAX = 100  # per request: retries with the same id while the writer is replaced
STALLED_JOBS = 6000  # their answers, ~200 bytes each, overflow the two sockets' buffers


def _writer(server: LedgerServer) -> WriterProcessCommitter:
    committer = server._committer
    assert isinstance(committer, WriterProcessCommitter)
    return committer


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Payments:
    """SENDERS threads paying 1 from `bank` to `shop` until stopped, each payment retried with its
    request id (as the SDK does) until acknowledged; what the writer's replacement answered meanwhile
    is kept in `refusals`."""

    def __init__(self, stubs: list[ledger_pb2_grpc.LedgerStub], bank: str, shop: str, asset: str) -> None:
        self.acknowledged: list[str] = []
        self.refusals: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(stubs[i % len(stubs)], bank, shop, asset, i))
                         for i in range(SENDERS)]
        for thread in self._threads:
            thread.start()

    def _send(self, stub: ledger_pb2_grpc.LedgerStub, bank: str, shop: str, asset: str, sender: int) -> None:
        while not self._stop.is_set():
            request = pb.CreateTransferRequest(request_id=rid(f"sender-{sender}"), debit_account_id=bank,
                                               credit_account_id=shop, amount="1", asset=asset)
            for _ in range(ATTEMPTS_MAX):
                try:
                    stub.CreateTransfer(request, timeout=10)
                    self.acknowledged.append(request.request_id)
                    break
                except grpc.RpcError as error:
                    self.refusals.append(error_reason(error))
                    time.sleep(0.05)
            else:
                raise AssertionError(f"{request.request_id} never acknowledged")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _assert_each_acknowledged_once(url: str, acknowledged: list[str], shop: str, extra: int) -> None:
    """Every acknowledged payment stored once, none twice, and `shop` credited exactly with them
    (plus `extra` payments made after, not in the list)."""
    stored = transfers_by_request_id(url)
    assert len(acknowledged) > 100
    assert all(len(stored.get(r, [])) == 1 for r in acknowledged)
    assert all(len(ids) == 1 for ids in stored.values()), "a request id written twice"
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT credits_posted FROM accounts WHERE id = %s", (shop,)).fetchone()
    assert row is not None and row[0] == len(acknowledged) + extra, "every acknowledged transfer exactly once"
    assert_ledger_consistent(url)


def test_a_killed_writer_is_replaced_and_nothing_is_lost_or_doubled(new_database: Callable[[], str]) -> None:
    url = new_database()
    server = start_ledger_server(url)
    try:
        with open_channel(server.target) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            asset = new_asset(stub)
            bank, shop = new_account(stub, asset), new_account(stub, asset, no_overdraft=True)
            payments = Payments([stub], bank.id, shop.id, asset)
            pids = []
            for _ in range(2):  # kill the writer twice, each time under load
                time.sleep(0.4)
                pid = _writer(server).writer_pid
                assert pid is not None
                pids.append(pid)
                os.kill(pid, signal.SIGKILL)
                _wait_for(lambda: _writer(server).writer_pid not in pids)
            time.sleep(0.4)
            payments.stop()
            transfer(stub, bank.id, shop.id, 1, asset)  # the replacement serves: a fresh request commits
    finally:
        server.stop(grace_s=5)
    refusals = payments.refusals
    assert refusals and set(refusals) == {"WRITER_RESTARTED"}, "jobs held by a killed writer are refused so"
    _assert_each_acknowledged_once(url, payments.acknowledged, shop.id, extra=1)
    batches = server.metrics.registry.get_sample_value("ledger_batch_seconds_count")
    assert batches is not None and batches > 0, "the writer's metrics reach the server's registry"


def test_stop_answers_everything_sent_and_ends_the_writer(new_database: Callable[[], str]) -> None:
    url = new_database()
    server = start_ledger_server(url)
    writer = psutil.Process(_writer(server).writer_pid)
    with open_channel(server.target) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        asset = new_asset(stub)
        bank, shop = new_account(stub, asset), new_account(stub, asset)
        calls = [
            (request_id, stub.CreateTransfer.future(pb.CreateTransferRequest(
                request_id=request_id, debit_account_id=bank.id, credit_account_id=shop.id, amount="1",
                asset=asset), timeout=30))
            for request_id in (rid("drain") for _ in range(300))
        ]
        server.stop(grace_s=10)
        answered = []
        for request_id, call in calls:
            try:
                call.result()
                answered.append(request_id)
            except grpc.RpcError as error:
                assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), error
    writer.wait(timeout=10)  # raises if the writer outlived its server
    stored = transfers_by_request_id(url)
    assert answered and all(len(stored.get(r, [])) == 1 for r in answered)
    assert_ledger_consistent(url)


def test_the_writer_exits_when_its_server_is_killed(database_url: str) -> None:
    server = ServerProcess(database_url).start()
    try:
        assert server.process is not None
        children = psutil.Process(server.process.pid).children()
        writers = [p for p in children if "ledger_server.writer_process" in p.cmdline()]
        assert len(writers) == 1, [p.cmdline() for p in children]
    finally:
        server.kill()
    writers[0].wait(timeout=15)  # end-of-file on its pipe: no orphan keeps a connection open


def test_servers_given_one_socket_dir_share_one_writer_and_elect_one_again_when_it_dies(
    new_database: Callable[[], str], tmp_path: pathlib.Path
) -> None:
    """Three servers (as `ledger-server --processes 3` runs them) started at once elect one writer
    and all commit through it; killed under load from all three, it is replaced by exactly one new
    writer; every acknowledged transfer is stored once, and the shared writer takes the warm path
    for accounts all three servers write."""
    url = new_database()
    started: list[LedgerServer] = []

    def start() -> None:
        started.append(start_ledger_server(url, writer_socket_dir=str(tmp_path)))

    starting = [threading.Thread(target=start) for _ in range(3)]
    for thread in starting:
        thread.start()
    for thread in starting:
        thread.join(timeout=60)
    servers = list(started)
    try:
        assert len(servers) == 3
        assert len({_writer(s).writer_pid for s in servers}) == 1, "one writer for every server"
        first_writer = _writer(servers[0]).writer_pid
        channels = [open_channel(s.target) for s in servers]
        stubs = [ledger_pb2_grpc.LedgerStub(channel) for channel in channels]
        asset = new_asset(stubs[0])
        bank, shop = new_account(stubs[0], asset), new_account(stubs[0], asset, no_overdraft=True)
        payments = Payments(stubs, bank.id, shop.id, asset)
        time.sleep(0.5)
        os.kill(first_writer, signal.SIGKILL)
        _wait_for(lambda: all(_writer(s).writer_pid != first_writer for s in servers))
        time.sleep(0.5)
        payments.stop()
        assert len({_writer(s).writer_pid for s in servers}) == 1, "one new writer, elected again"
        for stub in stubs:  # each server still commits through it
            transfer(stub, bank.id, shop.id, 1, asset)
        for channel in channels:
            channel.close()
    finally:
        for server in servers:
            server.stop(grace_s=5)
    assert set(payments.refusals) <= {"WRITER_RESTARTED"}, payments.refusals
    _assert_each_acknowledged_once(url, payments.acknowledged, shop.id, extra=len(servers))
    warm = sum(s.metrics.registry.get_sample_value("ledger_batch_path_total", {"path": "warm"}) or 0 for s in servers)
    assert warm > 0, "the shared writer remembers the accounts every server writes"


def test_a_server_with_other_writer_settings_is_refused_by_the_shared_writer(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    server = start_ledger_server(database_url, writer_socket_dir=str(tmp_path))
    try:
        with pytest.raises(RuntimeError, match="refused: settings differ from this writer's: warm_path"):
            start_ledger_server(database_url, writer_socket_dir=str(tmp_path), warm_path=False)
        writer = psutil.Process(_writer(server).writer_pid)
    finally:
        server.stop(grace_s=5)
    writer.wait(timeout=10)  # its last server said goodbye: the shared writer exits
    assert not (tmp_path / "writer.sock").exists() or _nobody_listens(tmp_path / "writer.sock")


def _nobody_listens(path: pathlib.Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except ConnectionRefusedError:
            return True
    return False


def test_a_server_that_stops_reading_its_answers_is_dropped_and_the_others_are_served(
    database_url: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server sharing the writer that takes no answers (stopped, or stuck) would fill its socket
    and block the writer for every server: after SEND_TIMEOUT_S the writer drops it instead. Here a
    raw connection sends thousands of jobs and never reads; a real server beside it keeps
    committing, and the books balance."""
    server = start_ledger_server(database_url, writer_socket_dir=str(tmp_path))
    stalled = Connection(_connect_unix(tmp_path / "writer.sock"))
    try:
        with open_channel(server.target) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            asset = new_asset(stub)
            bank, shop = new_account(stub, asset), new_account(stub, asset)
            stalled.send(astuple(_writer(server)._settings))
            assert stalled.recv_bytes().startswith(b"ready ")
            for key in range(STALLED_JOBS):  # answers far beyond what the sockets buffer
                job = validation.create_transfer(pb.CreateTransferRequest(
                    request_id=rid("stalled"), debit_account_id=bank.id, credit_account_id=shop.id, amount="1",
                    asset=asset))
                try:
                    stalled.send_bytes(key.to_bytes(8, "little") + pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
                except (ConnectionResetError, BrokenPipeError):
                    break  # dropped already
            started = time.monotonic()
            for _ in range(20):  # the server beside it is served (after at most one send timeout)
                transfer(stub, bank.id, shop.id, 1, asset)
            assert time.monotonic() - started < SEND_TIMEOUT_S + 20
    finally:
        server.stop(grace_s=5)
    deadline = time.monotonic() + 30
    with pytest.raises((EOFError, OSError)):  # the writer dropped it: its answers end (mid-message too)
        while time.monotonic() < deadline:
            if stalled.poll(max(0.0, deadline - time.monotonic())):
                stalled.recv_bytes()
    stalled.close()
    assert_ledger_consistent(database_url)


def test_a_server_stuck_half_way_through_a_message_is_dropped_and_the_others_are_served(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    """A server stopped in the middle of sending a job would hold the writer in its read: after
    SEND_TIMEOUT_S the writer drops it instead, and a server beside it keeps committing."""
    server = start_ledger_server(database_url, writer_socket_dir=str(tmp_path))
    stuck = socket.socket(fileno=_connect_unix(tmp_path / "writer.sock"))
    try:
        hello = pickle.dumps(astuple(_writer(server)._settings))
        stuck.sendall(len(hello).to_bytes(4, "big") + hello)  # multiprocessing's framing: a length, the bytes
        with open_channel(server.target) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            asset = new_asset(stub)
            bank, shop = new_account(stub, asset), new_account(stub, asset)
            stuck.sendall((1000).to_bytes(4, "big") + b"half")  # a job of 1,000 bytes, 4 of them sent
            started = time.monotonic()
            for _ in range(20):
                transfer(stub, bank.id, shop.id, 1, asset)
            assert time.monotonic() - started < SEND_TIMEOUT_S + 20
        stuck.settimeout(30)  # raises if the writer never drops it
        received = b""
        while chunk := stuck.recv(4096):
            received += chunk
        assert b"ready " in received, "greeted, then dropped"
    finally:
        stuck.close()
        server.stop(grace_s=5)
    assert_ledger_consistent(database_url)


def _connect_unix(path: pathlib.Path) -> int:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    return sock.detach()
